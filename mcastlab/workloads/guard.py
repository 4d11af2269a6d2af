"""The memory guard: estimate a run's peak memory before it starts, refuse what cannot fit.

``peak = baseline + identities x bytes per identity + expected frame rows x bytes per row``. The
constants were measured on this project's machine (Python 3.11, 64-bit) with ``ru_maxrss`` of runs of
``scenarios/iot-device-management.yaml`` at several sizes (agents off), fitted to that line:

* 2,000 devices, 60 s  (2.4k rows)   -> 134 MB peak RSS
* 20,000 devices, 60 s (23k rows)    -> 172 MB
* 2,000 devices, 600 s at a 5 s heartbeat (230k rows) -> 245 MB

giving ~490 bytes per frame row (recorder columns, then the pandas frames built from them) and ~1.5 kB
per identity in the per-identity engine (name, metadata dict, ground-truth columns, the registry's
record and indexes, scheduler entries). Identities with an inbox agent add a coroutine each (~2 kB).
The cohort engine keeps a fleet in columns: 200,000 devices (185k rows) peaked at 310 MB and
1,000,000 (878k rows) at 960 MB, i.e. ~390 bytes per identity (its name and index entry dominate);
its agents are a sink, not coroutines, and its heartbeats are recorded one row per batch.
The estimate errs on the generous side; a run refused by it can be forced with ``--no-guard``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcastlab.errors import ResourceLimitError

if TYPE_CHECKING:
    from mcastlab.workloads.scenario import Scenario

BASELINE_BYTES = 140e6  # the interpreter with numpy, pandas, simpy and mcastlab imported
BYTES_PER_IDENTITY = 1_500.0  # per-identity engine (measured, see the module docstring)
BYTES_PER_AGENT = 2_000.0  # an inbox agent coroutine per identity
BYTES_PER_ROW = 490.0  # a frame row: recorder columns + the pandas frame built from them (measured)
BYTES_PER_IDENTITY_COHORT = 390.0  # the cohort engine (measured, see the module docstring)


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """Expected size of a run and the peak memory that implies."""

    identities: float
    agents: float
    rows: float
    peak_bytes: float

    def to_dict(self) -> dict[str, Any]:
        return {"identities": round(self.identities), "agents": round(self.agents), "rows": round(self.rows),
                "peak_bytes": round(self.peak_bytes)}


def estimate(scn: Scenario, mode: str | None = None) -> MemoryEstimate:
    """The memory a run of ``scn`` (in ``mode``, default the scenario's) needs at its peak."""
    cohort = scn.resolved_engine(mode) == "cohort"
    batch = getattr(scn.workload, "gateway_batch", 1) if cohort else 1
    e = scn.workload.estimate(scn.duration, batch=batch)
    identities = float(e["identities"])
    policy = scn.measure.agents
    agents = identities if policy == "all" else (0.0 if policy == "none" else min(identities, float(policy)))
    rows = float(e["ops"]) + float(e["deliveries"])
    if cohort:
        per_identity, agents = BYTES_PER_IDENTITY_COHORT, 0.0
    else:
        per_identity = BYTES_PER_IDENTITY
    peak = BASELINE_BYTES + identities * per_identity + agents * BYTES_PER_AGENT + rows * BYTES_PER_ROW
    return MemoryEstimate(identities, agents, rows, peak)


def available_bytes() -> float:
    """Memory available to a new run now (MemAvailable; psutil elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return float(psutil.virtual_memory().available)


def _gb(x: float) -> str:
    return f"{x / 1e9:,.1f} GB" if x >= 1e8 else f"{x / 1e6:,.0f} MB"


def check(scn: Scenario, mode: str | None = None, *, available: float | None = None) -> MemoryEstimate:
    """Raise ResourceLimitError when ``scn`` would not fit in the available memory; return the estimate."""
    est = estimate(scn, mode)
    limit = available_bytes() if available is None else available
    if est.peak_bytes > limit:
        raise ResourceLimitError(
            f"{scn.source}: this run would need about {_gb(est.peak_bytes)} of memory "
            f"({est.identities:,.0f} identities, {est.rows:,.0f} frame rows) but {_gb(limit)} is available. "
            "Fix: a smaller workload or shorter duration, measure.agents: none, or --no-guard to try anyway",
            needed=est.peak_bytes, limit=limit)
    return est


__all__ = ["BYTES_PER_IDENTITY", "BYTES_PER_ROW", "MemoryEstimate", "available_bytes", "check", "estimate"]
