"""JSON for stored metadata: orjson (several times faster) with the standard library as the fallback for
what orjson refuses (integers beyond 64 bits), so every value ``validate_metadata`` accepts round-trips."""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """Parse JSON text (bytes or str)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(obj: Any) -> str:
    """Compact JSON text (str), for storing."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError:  # orjson: "Integer exceeds 64-bit range" and the like
        return json.dumps(obj, separators=(",", ":"), allow_nan=False)


__all__ = ["dumps", "loads"]
