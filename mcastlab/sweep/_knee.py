"""knee(): the largest value of a numeric key at which every target passes on every seed, by bisection.

**The monotone assumption.** The search assumes that once the targets fail at some value of KEY they
fail at every larger one (more devices, a higher rate, a shorter heartbeat interval expressed as a
larger rate ...). Under it, the pass/fail boundary is one point and bisection finds it. When the probes
contradict it (a value passes above one that failed) the search keeps the *lowest* failure found, so
the knee it reports is conservative, and ``warnings`` says where the assumption broke.

**The pass rule** is the sweep's ``all_passed`` on every seed (:mod:`mcastlab.sweep._points`): every
target with data passes; ``insufficient`` counts as not passed; ``no data`` is left out. A run that
raised counts as not passed.

**Probing.** Step 0 probes LOW, HIGH and ``probes`` evenly spaced values between them, all at once
(x ``seeds``) on the cluster. If LOW already fails or HIGH still passes there is no knee in the range:
the result says which (``status``), and the command exits 1. Otherwise each step keeps the bracket
``passed_at < knee boundary <= failed_at`` and probes ``probes`` evenly spaced values strictly inside it,
in parallel; the bracket shrinks by a factor ``probes + 1`` per step. It stops when
``failed_at - passed_at <= tolerance x |passed_at|`` (relative), or, for an integer key (LOW and HIGH
both integers: ints stay ints), when they are adjacent. The probes are a function of LOW, HIGH,
``probes`` and the results only, never of the cluster's size, so a knee is reproducible.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mcastlab.errors import UsageError
from mcastlab.sweep._exec import client_for, execute, progress_bar
from mcastlab.sweep._grid import check_grid, seeds_from
from mcastlab.sweep._points import PointRecord, points_frame, unique_labels
from mcastlab.sweep._sweep import base_scenario, check_point, sweep_manifest
from mcastlab.sweep._task import PointTask

MAX_STEPS = 40

Number = int | float


@dataclass
class KneeResult:
    """The knee of KEY: ``value`` (= ``passed_at``, the largest value found passing; None if LOW already
    fails), ``failed_at`` (the smallest value found failing; None if HIGH still passes), the target that
    fails first above the knee, and every probe run in ``points`` (points.parquet's columns + ``step``)."""

    key: str
    value: Number | None
    passed_at: Number | None
    failed_at: Number | None
    first_failing_target: str | None
    points: pd.DataFrame
    status: str = "found"  # found | low fails | high passes
    failing: pd.DataFrame = field(default_factory=pd.DataFrame)  # verdicts at failed_at that did not pass
    targets: pd.DataFrame = field(default_factory=pd.DataFrame)  # every probe run's targets frame
    warnings: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.status == "found"


def _number(name: str, v: Any) -> Number:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise UsageError(f"--{name} {v!r}: expected a finite number. Fix: e.g. --{name} 1000")
    return v


def _interior(lo: Number, hi: Number, k: int, integer: bool) -> list[Number]:
    """``k`` evenly spaced values strictly between ``lo`` and ``hi`` (integers: the distinct ones)."""
    out: list[Number] = []
    for i in range(1, k + 1):
        v: Number = lo + (hi - lo) * i / (k + 1)
        v = round(v) if integer else float(f"{v:.6g}")
        if lo < v < hi and v not in out:
            out.append(v)
    return out


def _done(lo: Number, hi: Number, tolerance: float, integer: bool) -> bool:
    scale = abs(lo) if lo != 0 else abs(hi)
    return (integer and hi - lo <= 1) or hi - lo <= tolerance * scale


def knee(
    scenario: Any,
    key: str,
    low: Number,
    high: Number,
    *,
    seeds: int = 1,
    tolerance: float = 0.05,
    probes: int = 3,
    overrides: Mapping[str, Any] | None = None,
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    mode: str = "sim",
    progress: bool = True,
    guard_memory: bool = True,
) -> KneeResult:
    """Find the largest ``key`` in [``low``, ``high``] at which every target passes on every seed (see
    the module docstring for the rule, the probing and the monotone assumption). Cluster arguments as in
    :func:`mcastlab.sweep`. Raises a typed :class:`~mcastlab.errors.UsageError` for bad input."""
    low, high = _number("low", low), _number("high", high)
    if not low < high:
        raise UsageError(f"--low {low} must be below --high {high}. Fix: swap them or widen the range")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 <= tolerance < 1:
        raise UsageError(f"--tolerance {tolerance!r}: expected a relative tolerance in [0, 1), e.g. 0.05")
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise UsageError(f"--probes {probes!r}: expected a whole number >= 1 of values probed per step")
    integer = isinstance(low, int) and isinstance(high, int)
    if not integer and tolerance <= 0:
        raise UsageError("--tolerance 0 with a non-integer range never ends. Fix: e.g. --tolerance 0.01")
    overrides = dict(overrides or {})
    check_grid({key: [low, high]}, overrides)
    base = base_scenario(scenario, overrides)
    if not base.all_targets:
        raise UsageError(f"{base.source}: the scenario has no targets, so nothing can pass or fail. "
                         "Fix: add targets (or keep spec_targets: true)")
    seed_list = seeds_from(base.seed, seeds)
    judged: dict[Number, bool] = {}
    records: list[PointRecord] = []
    steps: dict[int, int] = {}
    warnings: list[str] = []
    started, wall0 = datetime.now(UTC), time.perf_counter()
    with client_for(client, workers, scheduler) as c:
        from mcastlab.dask_cluster import describe

        info = {**describe(c), "startup_s": round(time.perf_counter() - wall0, 3)}
        bar = progress_bar(0, enabled=progress, desc=f"knee {key}")
        try:
            values = [low, high, *_interior(low, high, probes, integer)]
            lo, hi = low, high
            for step in range(MAX_STEPS):
                for v in values:
                    check_point(base, ((key, v),))
                tasks = [PointTask(len(records) + i * len(seed_list) + j, len(judged) + i, ((key, v),), s,
                                   base.raw, mode, False, guard_memory, base.source)
                         for i, v in enumerate(values) for j, s in enumerate(seed_list)]
                bar.total += len(tasks)
                bar.refresh()
                new, interrupted = execute(c, tasks, bar)
                if interrupted:
                    raise KeyboardInterrupt
                records += new
                steps.update({r.index: step for r in new})
                for v in values:
                    judged[v] = all(r.ok and r.flags.get("all_passed", False)
                                    for r in new if r.values[0][1] == v)
                if step == 0 and (not judged[low] or judged[high]):
                    break
                fails = [v for v, ok in judged.items() if not ok and v > lo]
                hi = min(fails)
                lo = max(v for v, ok in judged.items() if ok and v < hi)
                values = [] if _done(lo, hi, tolerance, integer) else _interior(lo, hi, probes, integer)
                if not values:
                    break
            else:
                warnings.append(f"stopped after {MAX_STEPS} steps with {key} in ({lo}, {hi}]")
        finally:
            bar.close()
    pf = points_frame(records, [key])
    pf.insert(0, "step", pd.Series([steps[i] for i in range(len(pf))], dtype="int64"))
    status = "low fails" if not judged[low] else ("high passes" if judged[high] else "found")
    passed_at = None if status == "low fails" else (high if status == "high passes" else lo)
    failed_at = None if status == "high passes" else (low if status == "low fails" else hi)
    if failed_at is not None:
        warnings += [f"the monotone assumption does not hold: {key}={v} passed above a failure at {failed_at}"
                     for v, ok in sorted(judged.items()) if ok and v > failed_at]
    failing, first = _failing(records, failed_at)
    manifest = sweep_manifest(base, overrides, {key: sorted(judged)}, seed_list, mode, info, started,
                              time.perf_counter() - wall0, False, records, kind="knee")
    manifest.update({"low": low, "high": high, "tolerance": tolerance, "probes": probes, "status": status,
                     "passed_at": passed_at, "failed_at": failed_at, "first_failing_target": first})
    targets = [r.targets.assign(**{key: r.values[0][1], "seed": r.seed}) for r in records
               if r.targets is not None]
    frame = pd.concat(targets, ignore_index=True) if targets else pd.DataFrame()
    return KneeResult(key, passed_at, passed_at, failed_at, first, pf, status, failing, frame, warnings,
                      manifest)


def _failing(records: list[PointRecord], at: Number | None) -> tuple[pd.DataFrame, str | None]:
    """The verdicts at ``at`` that did not pass (targets in scenario order, then seed), and the first."""
    cols = ["target", "seed", "verdict", "achieved", "target_value", "comparison", "unit", "n", "min_samples"]
    if at is None:
        return pd.DataFrame(columns=cols), None
    rows = []
    order: list[str] = []  # targets in scenario order (runs that raised first)
    for r in sorted((r for r in records if r.values[0][1] == at), key=lambda r: r.seed):
        if not r.ok:
            error = f"run failed: {r.error}"
            rows.append({"target": error, "seed": r.seed, "verdict": "error"})
            order.insert(0, error)
            continue
        t = r.targets if r.targets is not None else pd.DataFrame(columns=["metric"])
        for name, row in zip(unique_labels(t["metric"]), t.itertuples(index=False), strict=True):
            order += [name] if name not in order else []
            if row.verdict in ("fail", "insufficient"):
                rows.append({"target": name, "seed": r.seed, "verdict": row.verdict, "achieved": row.achieved,
                             "target_value": row.target, "comparison": row.comparison, "unit": row.unit,
                             "n": row.n, "min_samples": row.min_samples})
    df = pd.DataFrame(rows, columns=cols)
    if not len(df):
        return df, None
    # first: the target that did not pass on the most seeds; ties in scenario order
    seeds_failing = df.groupby("target")["seed"].nunique()
    df["_rank"] = [(-seeds_failing[t], order.index(t)) for t in df["target"]]
    df = df.sort_values(["_rank", "seed"], kind="stable").drop(columns="_rank").reset_index(drop=True)
    return df, str(df["target"].iloc[0])


__all__ = ["MAX_STEPS", "KneeResult", "knee"]
