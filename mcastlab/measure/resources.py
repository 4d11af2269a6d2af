"""Which resource gives out first: the busy fraction of each resource a run uses.

Live runs read process CPU time (user + system, via psutil) of the coordinator's own process and of
the local servers the run started, at the start and end of the measured interval: ``busy = cpu seconds
/ wall seconds`` (1.0 = one core saturated; a single-threaded Redis or asyncio process cannot exceed
it by much). Simulated runs report the same names from the model: each simulated server's (and the
coordinator CPU's) total service time over the simulated interval.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("mcastlab.measure.resources")


def _cpu_seconds(pid: int | None) -> float | None:
    import psutil

    try:
        t = psutil.Process(pid).cpu_times()
    except (psutil.Error, OSError):
        log.debug("cannot read CPU times of pid %s", pid, exc_info=True)
        return None
    return float(t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0))


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds every thread of process ``pid`` has run so far, in nanoseconds' resolution from
    ``/proc/PID/task/*/schedstat`` (psutil's user + system count 10 ms clock ticks: too coarse to time a
    probe of a tenth of a second); psutil where there is no schedstat."""
    tasks = Path(f"/proc/{pid}/task")
    total = 0
    if tasks.is_dir():
        for task in tasks.iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # a thread that ended meanwhile
    return total / 1e9 if total > 0 else _cpu_seconds(pid)


def usable_cpus() -> int:
    """The number of CPUs this process may run on (its affinity; all of them off Linux)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class CpuMeter:
    """CPU time of named processes between :meth:`start` and :meth:`stop` (``None`` = this process)."""

    pids: Mapping[str, int | None]
    _t0: float = 0.0
    _cpu0: dict[str, float | None] = field(default_factory=dict)
    busy: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0

    def start(self) -> CpuMeter:
        self._t0 = time.perf_counter()
        self._cpu0 = {name: _cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def stop(self) -> dict[str, Any]:
        """Busy fraction per process over the interval (a process that vanished is left out)."""
        self.wall_s = time.perf_counter() - self._t0
        for name, pid in self.pids.items():
            c0, c1 = self._cpu0.get(name), _cpu_seconds(pid)
            if c0 is None or c1 is None or self.wall_s <= 0:
                continue
            self.cpu_s[name] = c1 - c0
            self.busy[name] = (c1 - c0) / self.wall_s
        return self.report()

    def report(self) -> dict[str, Any]:
        return {"source": "process CPU time (psutil)", "wall_s": round(self.wall_s, 3),
                "busy": {k: round(v, 4) for k, v in self.busy.items()},
                "cpu_s": {k: round(v, 3) for k, v in self.cpu_s.items()}}


def simulated(busy_s: Mapping[str, tuple[float, int]], span: float) -> dict[str, Any]:
    """The same report for a simulated run: per resource, its service time over ``span`` seconds and its
    servers (``busy`` is a utilisation: 1.0 = every core / shard of that resource busy all the time)."""
    return {"source": "simulation model (service time / simulated time / servers)", "wall_s": round(span, 3),
            "busy": {k: round(v / (span * n), 4) if span > 0 else 0.0 for k, (v, n) in busy_s.items()},
            "cpu_s": {k: round(v, 3) for k, (v, _n) in busy_s.items()},
            "servers": {k: n for k, (_v, n) in busy_s.items()}}


def first_to_give_out(report: Mapping[str, Any]) -> tuple[str, float] | None:
    """The busiest resource and its busy fraction, or None when nothing was measured."""
    busy = dict(report.get("busy") or {})
    if not busy:
        return None
    name = max(busy, key=lambda k: busy[k])
    return name, float(busy[name])


__all__ = ["CpuMeter", "first_to_give_out", "simulated"]
