"""Per-run figures of a sweep: one row per run in ``points.parquet``.

Each row starts with the swept keys (by their dotted names), ``seed``, ``point`` (grid point number),
``run`` (the run id), ``ok`` and ``error`` (``"<Type>: <message>"`` of a run that raised), and the
clock columns ``wall_s`` and ``cpu_s`` (the run's wall and CPU time on its worker: the only columns,
with ``run``, that differ between two sweeps of the same grid and seeds).

For each operation (``op`` in the ops frame), over the operations scheduled after the warm-up:

* ``<op>_count`` — successful operations: the samples behind the percentiles;
* ``<op>_p50_s`` / ``<op>_p99_s`` — latency percentiles (seconds, from the scheduled start), NaN when
  fewer samples stand behind them than the targets' rule asks (20 for a p50, 100 for a p99:
  :func:`mcastlab.measure.targets.default_min_samples`);
* ``<op>_error_rate`` — failed / all operations;
* ``<op>_achieved_rate`` — successful operations per measured second (measured: from the warm-up to the
  end of the workload, as the targets use).

Targets: one boolean column per target, named by its label, True iff its verdict is ``pass`` (``fail``,
``insufficient`` and ``no data`` are all False; the verdicts themselves are in the targets frame).
``all_passed`` is True iff every target *with data* passed: a target whose verdict is ``no data`` (nothing
in its band in this run, e.g. "enumerate 1,000 identities" in a fleet of 500) is left out, while
``insufficient`` (too few samples to judge) counts as not passed. A run in which no target had data has
``all_passed`` False: nothing was shown to pass. A failed run has NA figures and ``all_passed`` False.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mcastlab.measure.stats import stat
from mcastlab.measure.targets import TargetSpec, default_min_samples
from mcastlab.sweep._grid import Point, column

MIN_P50 = default_min_samples(TargetSpec("latency", 0.0, stat="p50"))
MIN_P99 = default_min_samples(TargetSpec("latency", 0.0, stat="p99"))
OP_STATS = ("count", "p50_s", "p99_s", "error_rate", "achieved_rate")
PERCENTILE_STATS = ("p50_s", "p99_s")


@dataclass
class PointRecord:
    """What one run of a sweep sends back from its worker (small and picklable)."""

    index: int  # position in the sweep's run order (grid point, then seed)
    point: int  # grid point number
    values: Point
    seed: int
    ok: bool = False
    error: str | None = None
    run: str = ""
    wall_s: float = math.nan  # wall time of the run on its worker
    cpu_s: float = math.nan  # CPU time of the worker thread during the run
    figures: dict[str, Any] = field(default_factory=dict)  # <op>_count, <op>_p50_s, ... (op_metrics)
    flags: dict[str, Any] = field(default_factory=dict)  # target label -> passed, and all_passed
    targets: pd.DataFrame | None = None  # the run's targets frame (verdicts, achieved, n)
    frames: dict[str, pd.DataFrame] | None = None  # the run's frames, when asked for


def op_metrics(result: Any) -> dict[str, Any]:
    """The per-operation figures of a :class:`~mcastlab.measure.RunResult` (see the module docstring)."""
    m = result.manifest
    warmup = float(m.get("warmup", 0.0))
    end = min(float(m.get("end_s", 0.0)), float(m.get("duration", math.inf)))
    span = max(0.0, end - warmup)
    ops = result.ops
    ops = ops[ops["t_start"] >= warmup]
    out: dict[str, Any] = {}
    for op, g in ops.groupby("op", sort=True, observed=True):
        ok = g["ok"].to_numpy(bool)
        lat = g["latency_s"].to_numpy(float)[ok]
        lat = lat[np.isfinite(lat)]
        n = len(lat)
        in_span = g["t_start"].to_numpy(float)[ok] < warmup + span
        out[f"{op}_count"] = n
        out[f"{op}_p50_s"] = stat(lat, "p50") if n >= MIN_P50 else math.nan
        out[f"{op}_p99_s"] = stat(lat, "p99") if n >= MIN_P99 else math.nan
        out[f"{op}_error_rate"] = float((~ok).mean()) if len(ok) else math.nan
        out[f"{op}_achieved_rate"] = float(in_span.sum() / span) if span > 0 else math.nan
    return out


def target_flags(targets: pd.DataFrame) -> dict[str, Any]:
    """One flag per target (verdict == pass) and ``all_passed`` (see the module docstring)."""
    flags: dict[str, Any] = {}
    judged: list[bool] = []
    for name, verdict in zip(unique_labels(targets["metric"]), targets["verdict"], strict=True):
        flags[name] = verdict == "pass"
        if verdict != "no data":
            judged.append(verdict == "pass")
    flags["all_passed"] = bool(judged) and all(judged)
    return flags


def unique_labels(labels: Any) -> list[str]:
    """Target labels, a repeated one suffixed `` (2)``, `` (3)`` so each names one column."""
    out: list[str] = []
    for lab in (str(x) for x in labels):
        name, k = lab, 1
        while name in out:
            k += 1
            name = f"{lab} ({k})"
        out.append(name)
    return out


def points_frame(records: Sequence[PointRecord], keys: Sequence[str]) -> pd.DataFrame:
    """``points.parquet``: one row per run in run order; see the module docstring for the columns."""
    records = sorted(records, key=lambda r: r.index)
    ops = sorted({k[: -len("_count")] for r in records for k in r.figures if k.endswith("_count")})
    targets: list[str] = []
    for r in records:
        if r.targets is not None:
            targets += [t for t in unique_labels(r.targets["metric"]) if t not in targets]
    cols: dict[str, Any] = {}
    for i, key in enumerate(keys):
        cols[key] = column([r.values[i][1] for r in records])
    cols["seed"] = pd.Series([r.seed for r in records], dtype="int64")
    cols["point"] = pd.Series([r.point for r in records], dtype="int64")
    cols["run"] = pd.Series([r.run or None for r in records], dtype="string")
    cols["ok"] = pd.Series([r.ok for r in records], dtype="bool")
    cols["error"] = pd.Series([r.error for r in records], dtype="string")
    cols["wall_s"] = pd.Series([r.wall_s for r in records], dtype="float64")
    cols["cpu_s"] = pd.Series([r.cpu_s for r in records], dtype="float64")
    for op in ops:
        for s in OP_STATS:
            k = f"{op}_{s}"
            if s == "count":
                vals = [r.figures.get(k, 0) if r.ok else pd.NA for r in records]
                cols[k] = pd.Series(vals, dtype="Int64")
            else:
                default = 0.0 if s == "achieved_rate" else math.nan
                cols[k] = pd.Series([r.figures.get(k, default) if r.ok else math.nan for r in records],
                                    dtype="float64")
    for t in targets:
        cols[t] = pd.Series([r.flags.get(t, pd.NA) if r.ok else pd.NA for r in records], dtype="boolean")
    cols["all_passed"] = pd.Series([bool(r.ok and r.flags.get("all_passed", False)) for r in records],
                                   dtype="bool")
    return pd.DataFrame(cols)


def op_names(points: pd.DataFrame) -> list[str]:
    """The operations that have figures in a points (or summary) frame."""
    return [c[: -len("_count")] for c in points.columns
            if c.endswith("_count") and f"{c[: -len('_count')]}_p50_s" in points.columns]


def target_names(points: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """The target columns of a points frame (after the op figures, before ``all_passed``)."""
    fixed = {*keys, "seed", "point", "run", "ok", "error", "wall_s", "cpu_s", "all_passed", "n_seeds",
             "n_failed", "passed_seeds", "note"}
    ops = tuple(f"{op}_" for op in op_names(points))
    return [c for c in points.columns if c not in fixed and not c.startswith(ops)]


__all__ = ["MIN_P50", "MIN_P99", "OP_STATS", "PointRecord", "op_metrics", "op_names", "points_frame",
           "target_flags", "target_names", "unique_labels"]
