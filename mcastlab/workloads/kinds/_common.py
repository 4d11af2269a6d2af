"""Parameter blocks shared by workload kinds: heartbeats, deaths, payloads, weighted choices."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from mcastlab.workloads._schema import fail, join, spec


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Heartbeat every ``period`` seconds, each gap varied uniformly by ±``jitter`` (a fraction)."""

    period: float = spec(60.0, doc="seconds between heartbeats", gt=0)
    jitter: float = spec(0.1, doc="fraction of the period, 0..1", min=0, max=1)

    def check_against(self, ttl: float, key: str, source: str) -> None:
        """Refuse heartbeats whose longest gap reaches the TTL: live identities would expire."""
        if self.period * (1 + self.jitter) >= ttl:
            fail(
                source,
                f"{key}.heartbeat.period",
                f"heartbeats every {self.period} s ±{self.jitter:.0%} can exceed the TTL of {ttl} s, "
                "so live identities would expire",
                "make the period well below the ttl",
            )


@dataclass(frozen=True, slots=True)
class Deaths:
    """A ``fraction`` of identities die (stop heartbeating, never unregister) in ``[start, end]``."""

    fraction: float = spec(0.0, doc="fraction of identities that die, 0..1", min=0, max=1)
    start: float = spec(0.0, doc="earliest death, seconds from the run start", min=0)
    end: float = spec(0.0, doc="latest death, seconds from the run start", min=0)

    def check(self, key: str, source: str) -> None:
        if self.fraction > 0 and self.end < self.start:
            fail(
                source,
                join(key, "end"),
                f"end ({self.end}) is before start ({self.start})",
                "make end >= start",
            )

    def schedule(self, rng: np.random.Generator, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of ``codes`` die, and when (sorted by time)."""
        k = round(self.fraction * len(codes))
        if k == 0:
            return np.empty(0, np.int64), np.empty(0)
        who = rng.choice(codes, size=k, replace=False)
        when = rng.uniform(self.start, self.end, size=k) if self.end > self.start else np.full(k, self.start)
        order = np.argsort(when, kind="stable")
        return who[order], when[order]


def check_range(value: Any, key: str, source: str) -> tuple[float, float]:
    """A ``[low, high]`` pair of seconds."""
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        fail(
            source,
            key,
            f"expected [low, high] seconds, got {value!r:.60}",
            f"write e.g. '{key.rsplit('.', 1)[-1]}: [30, 120]'",
        )
    lo, hi = float(value[0]), float(value[1])
    if lo < 0 or hi < lo:
        fail(
            source,
            key,
            f"expected 0 <= low <= high, got [{lo}, {hi}]",
            "give a non-negative range, low first",
        )
    return lo, hi


def seconds_range(default: tuple[float, float], doc: str) -> Any:
    """A dataclass field holding a ``[low, high]`` range of seconds."""
    return spec(default, doc=doc, parse=check_range)


def check_weights(weights: dict[str, float], key: str, source: str) -> None:
    """Weights must be >= 0 with a positive sum."""
    for k, w in weights.items():
        if w < 0:
            fail(source, join(key, k), f"weight must not be negative, got {w}", "use a weight >= 0")
    if not weights or sum(weights.values()) <= 0:
        fail(source, key, "weights must have a positive sum", "give at least one weight > 0")


def choose_index(rng: np.random.Generator, weights: dict[str, float], size: int) -> np.ndarray:
    """``size`` positions into ``list(weights)``, drawn with probability proportional to the weights."""
    p = np.asarray(list(weights.values()), dtype=float)
    return rng.choice(len(p), size=size, p=p / p.sum())


def choose(rng: np.random.Generator, weights: dict[str, float], size: int) -> list[str]:
    """``size`` keys drawn with probability proportional to their weight."""
    keys = list(weights)
    return [keys[i] for i in choose_index(rng, weights, size)]


def payload(command: str, size: int, **fields: Any) -> bytes:
    """A JSON command padded to about ``size`` bytes."""
    body = json.dumps({"cmd": command, **fields})
    pad = max(0, size - len(body) - 10)
    return json.dumps({"cmd": command, **fields, "pad": "x" * pad}).encode()


def letters(i: int) -> str:
    """0 -> 'a', 25 -> 'z', 26 -> 'ba' ... (short stable labels)."""
    s = ""
    while True:
        s = chr(ord("a") + i % 26) + s
        i //= 26
        if i == 0:
            return s


__all__ = [
    "Deaths",
    "Heartbeat",
    "check_range",
    "check_weights",
    "choose",
    "choose_index",
    "letters",
    "payload",
    "seconds_range",
]
