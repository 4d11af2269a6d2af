"""Where calibration files are and how their ``sim`` section is read (``sim: {calibration: ...}``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcastlab.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CALIBRATION = REPO_ROOT / "data" / "calibration" / "default.json"


def resolve_calibration(ref: str | Path) -> Path:
    """A calibration path as given, relative to the repository, or ``default`` for the committed one."""
    if str(ref) == "default":
        return DEFAULT_CALIBRATION
    p = Path(ref)
    if p.is_absolute() or p.exists():
        return p
    return REPO_ROOT / p


def load_calibration_sim(ref: str | Path, source: str | None = None) -> dict[str, Any]:
    """The ``sim`` section (registry/messaging models) of a calibration file."""
    p = resolve_calibration(ref)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"calibration file {p} does not exist; run 'mcastlab calibrate --out {p}' or use "
            "calibration: default",
            key="calibration",
            source=source,
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"calibration file {p} is not valid JSON: {exc}", key="calibration", source=source
        ) from None
    except (OSError, ValueError) as exc:  # a directory, unreadable, not UTF-8, an int json cannot convert
        raise ConfigError(
            f"calibration file {p} cannot be read: {exc}; pass a calibration .json file or 'default'",
            key="calibration", source=source,
        ) from None
    sim = data.get("sim") if isinstance(data, Mapping) else None
    if not isinstance(sim, Mapping):
        raise ConfigError(
            f"calibration file {p} has no 'sim' section; regenerate it with 'mcastlab calibrate'",
            key="calibration",
            source=source,
        )
    return dict(sim)


__all__ = ["DEFAULT_CALIBRATION", "REPO_ROOT", "load_calibration_sim", "resolve_calibration"]
