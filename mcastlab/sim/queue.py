"""Server capacity as an analytic FCFS queue (Lindley's recursion) plus per-operation counters.

A request arriving at ``now`` with service time ``s`` starts at ``max(now, earliest free server)`` and
holds that server until ``start + s``. Service times are drawn on arrival, so the start time is known at
once: the caller waits with one timeout instead of a SimPy Resource request/release pair. For FCFS this
is exact (M/M/1 waits match ``rho / (mu (1 - rho))``).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


class FcfsServer:
    """``servers`` identical servers taking requests first come, first served."""

    __slots__ = ("_free", "_heap", "busy", "servers")

    def __init__(self, servers: int = 1) -> None:
        self.servers = servers
        self._free = 0.0
        self._heap = [0.0] * servers if servers > 1 else []
        self.busy = 0.0  # total service time handed out

    def admit(self, now: float, service: float) -> float:
        """Queue a request; return when its service starts."""
        self.busy += service
        if self.servers == 1:
            start = self._free if self._free > now else now
            self._free = start + service
            return start
        free = heapq.heappop(self._heap)
        start = free if free > now else now
        heapq.heappush(self._heap, start + service)
        return start

    @property
    def first_free(self) -> float:
        """When the first server is free (a request arriving later finds a server idle)."""
        return self._free if self.servers == 1 else min(self._heap)

    @property
    def free_at(self) -> float:
        """When the last queued request will have been served."""
        return self._free if self.servers == 1 else max(self._heap)


@dataclass(slots=True)
class OpCounters:
    """Counts and summed times for one operation kind."""

    count: int = 0
    items: int = 0
    wait_s: float = 0.0
    service_s: float = 0.0
    failed: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + 1

    @property
    def mean_wait(self) -> float:
        return self.wait_s / self.count if self.count else 0.0


class OpStats:
    """Per-operation counters of a simulated backend (``stats["register"].count`` ...)."""

    def __init__(self) -> None:
        self.ops: dict[str, OpCounters] = {}

    def __getitem__(self, op: str) -> OpCounters:
        c = self.ops.get(op)
        if c is None:
            c = self.ops[op] = OpCounters()
        return c

    def failures(self, op: str | None = None) -> int:
        """Failed operations (of one kind, or all)."""
        ops = (
            [self.ops[op]]
            if op is not None and op in self.ops
            else ([] if op is not None else list(self.ops.values()))
        )
        return sum(sum(c.failed.values()) for c in ops)

    def to_frame(self) -> object:
        """One row per operation kind: op, count, items, failed, mean_wait_s, mean_service_s."""
        import pandas as pd

        rows = [
            {
                "op": op,
                "count": c.count,
                "items": c.items,
                "failed": sum(c.failed.values()),
                "mean_wait_s": c.mean_wait,
                "mean_service_s": c.service_s / c.count if c.count else 0.0,
            }
            for op, c in sorted(self.ops.items())
            if c.count or c.failed
        ]
        return pd.DataFrame(rows, columns=["op", "count", "items", "failed", "mean_wait_s", "mean_service_s"])


__all__ = ["FcfsServer", "OpCounters", "OpStats"]
