"""Open-loop arrival schedules: constant, Poisson and linear-ramp rates, precomputed from a seeded rng.

An arrival schedule is fixed before the run starts, so an operation's scheduled start never depends
on how fast the previous one finished (no coordinated omission). In a scenario a rate is written as a
number (Poisson at that many per second) or as a mapping::

    rate: {process: ramp, rate: 10, to: 200, start: 60, end: 300}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mcastlab.workloads._schema import fail, join, parse, spec


@dataclass(frozen=True, slots=True)
class Arrival:
    """A stream of scheduled instants: ``rate`` per second (ramping linearly to ``to`` for a ramp)."""

    rate: float = spec(doc="events per second", min=0)
    process: Literal["poisson", "constant", "ramp"] = spec("poisson", doc="arrival process")
    to: float | None = spec(None, doc="ramp: rate at 'end'", min=0)
    start: float = spec(0.0, doc="first instant, seconds from the run start", min=0)
    end: float | None = spec(None, doc="last instant (default: the run's duration)", min=0)

    def check(self, key: str, source: str) -> None:
        """Cross-field checks, called by the schema parser."""
        if self.process == "ramp" and self.to is None:
            fail(
                source, join(key, "to"), "a ramp needs the rate it ramps to", f"add 'to: <events/s>' to {key}"
            )
        if self.end is not None and self.end < self.start:
            fail(
                source,
                join(key, "end"),
                f"end ({self.end}) is before start ({self.start})",
                "make end >= start",
            )

    def scaled(self, share: float) -> Arrival:
        """The same schedule thinned to ``share`` of its events (e.g. one operation of a request mix)."""
        to = None if self.to is None else self.to * share
        return Arrival(self.rate * share, self.process, to, self.start, self.end)

    def expected(self, horizon: float, since: float = 0.0) -> float:
        """Expected events in ``[since, horizon)``."""
        lo, hi = max(self.start, since), horizon if self.end is None else min(self.end, horizon)
        if hi <= lo:
            return 0.0
        if self.process != "ramp" or self.to is None:
            return self.rate * (hi - lo)
        end = horizon if self.end is None else self.end
        slope = (self.to - self.rate) / max(end - self.start, 1e-12)
        r = lambda t: self.rate + slope * (t - self.start)  # noqa: E731
        return (r(lo) + r(hi)) / 2 * (hi - lo)

    @property
    def mean_rate(self) -> float:
        """Average events per second over the active window."""
        return self.rate if self.to is None or self.process != "ramp" else (self.rate + self.to) / 2

    def times(self, rng: np.random.Generator, horizon: float) -> np.ndarray:
        """Scheduled instants in ``[start, min(end, horizon))`` as a float64 array."""
        start = self.start
        end = horizon if self.end is None else min(self.end, horizon)
        span = end - start
        if span <= 0:
            return np.empty(0)
        if self.process == "constant":
            if self.rate <= 0:
                return np.empty(0)
            return start + np.arange(int(np.ceil(span * self.rate - 1e-9))) / self.rate
        if self.process == "poisson":
            return _poisson(rng, self.rate, start, end)
        r0, r1 = self.rate, float(self.to if self.to is not None else self.rate)
        total = (r0 + r1) / 2 * span  # integrated rate over the window
        if total <= 0:
            return np.empty(0)
        unit = np.cumsum(rng.exponential(1.0, size=int(total + 6 * np.sqrt(total) + 16)))
        while unit[-1] < total:
            unit = np.concatenate([unit, unit[-1] + np.cumsum(rng.exponential(1.0, size=len(unit)))])
        lam = unit[unit < total]
        a = (r1 - r0) / (2 * span)  # invert Lambda(x) = r0*x + a*x^2
        x = 2 * lam / (r0 + np.sqrt(np.maximum(r0 * r0 + 4 * a * lam, 0.0)))
        return start + x


def _poisson(rng: np.random.Generator, rate: float, start: float, end: float) -> np.ndarray:
    if rate <= 0:
        return np.empty(0)
    n = (end - start) * rate
    gaps = rng.exponential(1.0 / rate, size=int(n + 6 * np.sqrt(n) + 16))
    t = start + np.cumsum(gaps)
    while t[-1] < end:
        t = np.concatenate([t, t[-1] + np.cumsum(rng.exponential(1.0 / rate, size=len(t)))])
    return t[t < end]


def parse_arrival(value: Any, *, key: str, source: str) -> Arrival:
    """A number (Poisson rate per second) or an :class:`Arrival` mapping."""
    if isinstance(value, bool):
        fail(
            source,
            key,
            f"expected a rate per second or a mapping, got {value!r}",
            f"write e.g. '{key.rsplit('.', 1)[-1]}: 2.5' or a mapping with rate/process",
        )
    if isinstance(value, int | float):
        return parse(Arrival, {"rate": value}, key=key, source=source)
    return parse(Arrival, value, key=key, source=source)


def rate(default: float | dict[str, Any], doc: str = "events per second") -> Any:
    """A dataclass field holding an :class:`Arrival` (written as a number or a mapping)."""
    value = parse_arrival(default, key="(default)", source="")
    return spec(value, doc=doc, parse=parse_arrival)


__all__ = ["Arrival", "parse_arrival", "rate"]
