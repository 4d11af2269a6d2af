"""Pure timing policies shared by live and simulated runs (cf. redis-py's backoff.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``base * 2**(failures-1)`` capped at ``cap`` seconds."""

    base: float = 0.05
    cap: float = 1.0

    def compute(self, failures: int) -> float:
        if failures <= 0 or self.base <= 0:
            return 0.0
        return float(min(self.cap, self.base * (2.0 ** (failures - 1))))


def sweep_delay(next_deadline: float | None, now: float, *, interval: float, resolution: float) -> float:
    """How long the expiry sweeper sleeps: until the next deadline, within [resolution, interval]."""
    if next_deadline is None:
        return interval
    return min(interval, max(resolution, next_deadline - now))


__all__ = ["Backoff", "sweep_delay"]
