"""Faults declared as data: outage windows, error and drop probabilities, slow periods.

A :class:`FaultSpec` is one window ``[start, start + duration)`` on one target (``registry`` or
``messaging``), optionally limited to some operations. :class:`FaultPlan` answers, for an operation
arriving at time ``t``, what happens to it; probabilistic faults draw from the plan's own seeded stream
only while they are active, so a plan without them consumes no randomness.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mcastlab.errors import ConfigError, preview

TARGETS = ("registry", "messaging")
FAULT_KINDS = ("outage", "slow", "errors", "drop")
REGISTRY_OPS = (
    "register",
    "heartbeat",
    "unregister",
    "get",
    "query",
    "count",
    "ids",
    "claim",
    "next_deadline",
    "batch",
)
MESSAGING_OPS = ("send", "flush")
_KEYS = ("target", "kind", "start", "duration", "end", "probability", "factor", "ops", "delay")

# decisions
OK, OUTAGE, ERROR, DROP = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault window on one target; see the module docstring."""

    target: str
    kind: str
    start: float = 0.0
    duration: float = math.inf
    probability: float = 1.0
    factor: float = 1.0
    ops: tuple[str, ...] | None = None
    delay: float | None = None  # outage: seconds before the failure surfaces (default: connect_timeout)

    @property
    def end(self) -> float:
        return self.start + self.duration

    def covers(self, op: str, t: float) -> bool:
        return self.start <= t < self.start + self.duration and (self.ops is None or op in self.ops)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"target": self.target, "kind": self.kind, "start": self.start}
        if math.isfinite(self.duration):
            d["duration"] = self.duration
        if self.kind in ("errors", "drop"):
            d["probability"] = self.probability
        if self.kind == "slow":
            d["factor"] = self.factor
        if self.ops is not None:
            d["ops"] = list(self.ops)
        if self.delay is not None:
            d["delay"] = self.delay
        return d


def _number(d: Mapping[str, Any], key: str, path: str, lo: float, hi: float = math.inf) -> float:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v or not lo <= v <= hi \
            or (isinstance(v, int) and abs(v) > sys.float_info.max):  # an int float(v) cannot convert
        raise ConfigError(f"{path}.{key} must be a number in [{lo}, {hi}], got {preview(v)}",
                          key=f"{path}.{key}")
    return float(v)


def parse_fault(d: Any, path: str) -> FaultSpec:
    """Build a FaultSpec from a mapping; bad or unknown keys raise ConfigError naming them."""
    if isinstance(d, FaultSpec):
        return d
    if not isinstance(d, Mapping):
        raise ConfigError(
            f"{path} must be a mapping like {{target: messaging, kind: outage, start: 600, "
            f"duration: 30}}, got {d!r:.60}",
            key=path,
        )
    for k in d:
        if k not in _KEYS:
            close = difflib.get_close_matches(str(k), _KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown key {path}.{k}{hint}; a fault takes {', '.join(_KEYS)}", key=f"{path}.{k}"
            )
    target, kind = d.get("target"), d.get("kind")
    if target not in TARGETS:
        raise ConfigError(
            f"{path}.target must be one of {', '.join(TARGETS)}, got {target!r}", key=f"{path}.target"
        )
    if kind not in FAULT_KINDS:
        close = difflib.get_close_matches(str(kind), FAULT_KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{path}.kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}{hint}", key=f"{path}.kind"
        )
    start = _number(d, "start", path, 0.0) if "start" in d else 0.0
    if "duration" in d and "end" in d:
        raise ConfigError(f"{path}: give either duration or end, not both", key=f"{path}.end")
    duration = math.inf
    if "duration" in d:
        duration = _number(d, "duration", path, 0.0)
    elif "end" in d:
        duration = _number(d, "end", path, start) - start
    probability = 1.0
    if kind in ("errors", "drop"):
        if "probability" not in d:
            raise ConfigError(
                f"{path}: a {kind} fault needs probability (0..1), e.g. probability: 0.01",
                key=f"{path}.probability",
            )
        probability = _number(d, "probability", path, 0.0, 1.0)
    elif "probability" in d:
        raise ConfigError(
            f"{path}.probability applies only to errors and drop faults", key=f"{path}.probability"
        )
    factor = 1.0
    if kind == "slow":
        if "factor" not in d:
            raise ConfigError(
                f"{path}: a slow fault needs factor (> 0), e.g. factor: 5", key=f"{path}.factor"
            )
        factor = _number(d, "factor", path, 0.0)
    elif "factor" in d:
        raise ConfigError(f"{path}.factor applies only to slow faults", key=f"{path}.factor")
    ops = None
    if "ops" in d and d["ops"] is not None:
        known = REGISTRY_OPS if target == "registry" else MESSAGING_OPS
        raw = d["ops"]
        if isinstance(raw, str) or not isinstance(raw, Sequence):
            raise ConfigError(
                f"{path}.ops must be a list of operations, e.g. [{known[0]}]", key=f"{path}.ops"
            )
        for op in raw:
            if op not in known:
                raise ConfigError(
                    f"{path}.ops: unknown {target} operation {op!r}; known: {', '.join(known)}",
                    key=f"{path}.ops",
                )
        ops = tuple(raw)
    delay = _number(d, "delay", path, 0.0) if d.get("delay") is not None else None
    return FaultSpec(target, kind, start, duration, probability, factor, ops, delay)


class FaultPlan:
    """The faults of one target, queried per operation with the arrival time."""

    __slots__ = ("_buf", "_i", "_rng", "faults", "outages")

    def __init__(self, faults: Sequence[FaultSpec], rng: np.random.Generator | None) -> None:
        self.faults = tuple(faults)
        self.outages = tuple(f for f in self.faults if f.kind == "outage")
        self._rng = rng
        self._buf: list[float] = []
        self._i = 0

    def __bool__(self) -> bool:
        return bool(self.faults)

    def _uniform(self) -> float:
        if self._i >= len(self._buf):
            assert self._rng is not None
            self._buf = self._rng.random(256).tolist()
            self._i = 0
        u = self._buf[self._i]
        self._i += 1
        return u

    def decide(self, op: str, t: float) -> tuple[int, float, float | None]:
        """``(decision, slow factor, outage delay)`` for ``op`` arriving at ``t``."""
        factor = 1.0
        decision = OK
        delay = None
        for f in self.faults:
            if not f.covers(op, t):
                continue
            k = f.kind
            if k == "outage":
                return OUTAGE, 1.0, f.delay
            if k == "slow":
                factor *= f.factor
            elif decision == OK and self._uniform() < f.probability:
                decision = ERROR if k == "errors" else DROP
        return decision, factor, delay

    def down(self, t: float) -> bool:
        """True if an outage (of any op) covers time ``t``: in-flight deliveries then are lost."""
        return any(f.start <= t < f.start + f.duration and f.ops is None for f in self.outages)


__all__ = [
    "DROP",
    "ERROR",
    "FAULT_KINDS",
    "MESSAGING_OPS",
    "OK",
    "OUTAGE",
    "REGISTRY_OPS",
    "TARGETS",
    "FaultPlan",
    "FaultSpec",
    "parse_fault",
]
