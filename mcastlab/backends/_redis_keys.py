"""Key material shared by RedisRegistry and RedisClusterRegistry: index key suffixes, index plans as
programs for the Lua scripts, and the safety-net TTL of an identity hash (see ``redis_registry``)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

from mcastlab.backends._subjects import encode_token
from mcastlab.filters import AllOf, AnyOf, Term, index_token

_MAX_SUFFIX = 200
_EMPTY = "nil"  # a key suffix nothing ever writes: the empty candidate set
_MAX_PEXPIRE_MS = 2.0**62  # Redis refuses PEXPIRE values whose absolute time overflows 64-bit ms


def index_suffix(field: str, token: str) -> str:
    """Key suffix (after ``base``) of the index set for ``field`` having index token ``token``."""
    suffix = f"ix:{encode_token(field)}:{encode_token(token)}"
    if len(suffix) > _MAX_SUFFIX:
        digest = hashlib.blake2b(f"{field}\0{token}".encode(), digest_size=16).hexdigest()
        suffix = f"ix#{digest}"
    return suffix


def index_suffixes(metadata: Mapping[str, Any]) -> str:
    """The index key suffixes of ``metadata``, newline separated (the hash's ``x`` field)."""
    return "\n".join(index_suffix(f, t) for f, v in metadata.items() if (t := index_token(v)) is not None)


def plan_program(plan: Any) -> list[str] | None:
    """The postfix program of an index plan for the query script, or None when it cannot narrow.

    Mirrors ``MemoryRegistry._candidates``: an ``AllOf`` ignores parts that cannot narrow; an ``AnyOf``
    with such a part cannot narrow at all.
    """
    if isinstance(plan, Term):
        return ["T", index_suffix(plan.field, plan.token)]
    if isinstance(plan, AnyOf | AllOf):
        progs = [plan_program(p) for p in plan.parts]
        if isinstance(plan, AnyOf):
            if any(p is None for p in progs):
                return None
            if not progs:
                return ["T", _EMPTY]
        usable = [p for p in progs if p is not None]
        if not usable:
            return None
        out = [tok for p in usable for tok in p]
        if len(usable) > 1:
            out += ["|" if isinstance(plan, AnyOf) else "&", str(len(usable))]
        return out
    return None


def ids_program(flt: Any) -> list[str] | None:
    """The plan program the ids-only script runs for ``flt`` (``[]``: every identity), or None when the
    filter's plan is not exact: its candidates must then be read and tested."""
    if flt.matches_all:
        return []
    if flt.exact and flt.plan is not None:
        return plan_program(flt.plan) or None
    return None


def ttl_ms(expires_at: float | None, now: float, grace: float | None) -> str:
    """The safety-net PEXPIRE of an identity hash: deadline + ``grace`` from ``now``, in ms ("0": none)."""
    if expires_at is None or grace is None:
        return "0"
    ms = (expires_at - now + grace) * 1000
    if not ms < _MAX_PEXPIRE_MS:
        return "0"  # beyond what PEXPIRE accepts: no safety-net TTL (the deadline still applies)
    return str(max(1, math.ceil(ms)))


__all__ = ["ids_program", "index_suffix", "index_suffixes", "plan_program", "ttl_ms"]
