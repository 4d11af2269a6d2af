"""Text tables of sweeps and knees for the command line (times with units, every figure with its count)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mcastlab.measure.targets import _fmt
from mcastlab.sweep._points import MIN_P50, MIN_P99, op_names, unique_labels
from mcastlab.sweep._store import SweepResult

VERDICT_TEXT = {"pass": "PASS", "fail": "FAIL", "insufficient": "insufficient", "no data": "n/a",
                "error": "ERROR"}


def table(rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Fixed-width columns: the first ``left`` left-justified, the others right-justified; a rule under
    the header row."""
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w[i]) if i < left else c.rjust(w[i]) for i, c in enumerate(r)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


def fmt_s(v: Any) -> str:
    return _fmt(float(v), "s") if v is not None and not pd.isna(v) else "n/a"


def with_interval(mean: Any, lo: Any, hi: Any, n: Any, fmt: Any = fmt_s) -> str:
    """``1.20 ms [1.05 ms, 1.35 ms]``, ``1.20 ms (1 seed)`` or ``n/a``."""
    if mean is None or pd.isna(mean):
        return "n/a"
    if lo is None or pd.isna(lo) or math.isnan(float(lo)):
        return f"{fmt(mean)} ({int(n)} seed{'s' if int(n) != 1 else ''})"
    return f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"


def point_label(row: Any, keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={_value(row[k])}" for k in keys) if len(keys) > 1 else _value(row[keys[0]])


def _value(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}" if abs(v) >= 10_000 else str(int(v))
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def latency_table(result: SweepResult) -> str:
    """One row per grid point and operation: samples, p50 and p99 with their 95 % intervals, errors, rate."""
    s, keys = result.summary, result.keys
    head = [*keys, "seeds", "op", "count", "p50 (mean [95 % interval])", "p99 (mean [95 % interval])",
            "errors", "achieved/s"]
    rows = [head]
    for _, r in s[s["n_seeds"] > 0].iterrows():  # points without a successful run: see the failed runs
        for op in op_names(s):
            rows.append([*(_value(r[k]) for k in keys), str(int(r["n_seeds"])), op,
                         f"{int(r[f'{op}_count']):,}",
                         *(with_interval(r[f"{op}_{p}"], r[f"{op}_{p}_lo"], r[f"{op}_{p}_hi"],
                                         r[f"{op}_{p}_n"]) for p in ("p50_s", "p99_s")),
                         _fmt(r[f"{op}_error_rate"], "ratio"), _rate(r[f"{op}_achieved_rate"])])
    return table(rows, left=len(keys) + 2)


def _rate(v: Any) -> str:
    return "n/a" if pd.isna(v) else f"{float(v):,.2f}"


def verdict_matrix(result: SweepResult) -> str:
    """Targets (rows) by grid point (columns): PASS on every seed, else the worst verdict and the seeds
    that passed (``FAIL 1/3``); a failed run counts as ERROR."""
    keys, t = result.keys, result.frames.get("targets")
    if t is None or not len(t):
        return "(no target verdicts)"
    names = unique_labels(dict.fromkeys(t["metric"]))
    cols = []
    for _, r in result.summary.iterrows():
        sel = t
        for k in keys:
            sel = sel[sel[k] == r[k]]
        n_err = int(r["n_failed"])
        cells = []
        for name in names:
            v = sel.loc[sel["metric"] == name, "verdict"].astype(str).tolist() + ["error"] * n_err
            cells.append(_cell(v))
        cols.append(("/".join(_value(r[k]) for k in keys), cells))  # values only: the header names the keys
    rows = [["target", *(c[0] for c in cols)]]
    rows += [[name, *(c[1][i] for c in cols)] for i, name in enumerate(names)]
    rows.append(["all targets with data pass",
                 *("PASS" if ok else "no" for ok in result.summary["all_passed"])])
    head = f"({' / '.join(keys)})" if len(keys) > 1 else f"({keys[0]})"
    n_seeds = len(result.manifest.get("seeds", []))
    return f"targets by grid point {head}; over {n_seeds} seed(s):\n" + table(rows)


def _cell(verdicts: list[str]) -> str:
    if not verdicts:
        return "n/a"
    if all(v == "pass" for v in verdicts):
        return "PASS"
    if all(v == "no data" for v in verdicts):
        return "n/a"
    worst = next(v for v in ("error", "fail", "insufficient", "no data") if v in verdicts)
    passed = sum(v == "pass" for v in verdicts)
    return f"{VERDICT_TEXT[worst]} {passed}/{len(verdicts)}"


def sweep_text(result: SweepResult) -> str:
    m = result.manifest
    n_pts, seeds = len(result.summary), m.get("seeds", [])
    state = ", INTERRUPTED" if m.get("interrupted") else ""
    lines = [f"sweep {m.get('scenario')} ({m.get('mode')}): {n_pts} grid point{'s' if n_pts != 1 else ''} x "
             f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}) = "
             f"{m.get('runs')} runs on {m.get('engine')} at {m.get('scheduler')} "
             f"({m.get('workers')} workers), {float(m.get('wall_s', 0)):.1f} s wall "
             f"(cluster start {float(m.get('startup_s', 0)):.1f} s){state}",
             ""]
    if len(result.summary) and op_names(result.summary):
        lines += [latency_table(result),
                  "(latency from the scheduled start, warm-up excluded; count: successful operations over "
                  f"the seeds; a p50 needs {MIN_P50} and a p99 {MIN_P99} samples in a run, else n/a)", ""]
    lines.append(verdict_matrix(result))
    bad = result.failed
    if len(bad):
        lines += ["", f"{len(bad)} run{'s' if len(bad) != 1 else ''} failed (recorded in points.parquet):"]
        for _, r in bad.head(10).iterrows():
            err = str(r["error"])
            lines.append(f"  {point_label(r, result.keys)}, seed {int(r['seed'])}: "
                         f"{err[:300] + ' ...' if len(err) > 300 else err}")
        if len(bad) > 10:
            lines.append(f"  ... and {len(bad) - 10} more")
    return "\n".join(lines)


def knee_text(k: Any) -> str:
    """The probes step by step, then the knee (or why there is none) and the target that fails first."""
    p = k.points
    lines = []
    for step, g in p.groupby("step", sort=True):
        cells = []
        for v, gv in g.groupby(k.key, sort=True):
            ok = bool(gv["ok"].all() and gv["all_passed"].all())
            cells.append(f"{_value(v)} {'pass' if ok else ('FAIL' if gv['ok'].all() else 'ERROR')}")
        lines.append(f"step {step}: " + ", ".join(cells))
    for _, r in p[~p["ok"]].iterrows():
        lines.append(f"  run {k.key}={_value(r[k.key])}, seed {int(r['seed'])} raised (counts as not "
                     f"passed): {str(r['error'])[:300]}")
    lines.append(f"({len(p)} runs; pass = every target with data passed on every seed of "
                 f"{len(k.manifest.get('seeds', []))}; insufficient counts as not passed)")
    lines.append("")
    if k.status == "low fails":
        thin = len(k.failing) and (k.failing["verdict"] == "insufficient").all()
        fix = ("a higher --low or a longer duration (too few samples to judge at --low)" if thin
               else "a lower --low")
        lines.append(f"no knee in [{_value(k.manifest['low'])}, {_value(k.manifest['high'])}]: {k.key} = "
                     f"{_value(k.failed_at)} (--low) already fails. Fix: {fix}")
    elif k.status == "high passes":
        lines.append(f"no knee in [{_value(k.manifest['low'])}, {_value(k.manifest['high'])}]: {k.key} = "
                     f"{_value(k.passed_at)} (--high) still passes on every seed. Fix: a higher --high")
    else:
        lines.append(f"knee: {k.key} = {_value(k.value)}")
    if k.failed_at is not None and k.first_failing_target:
        where = "at" if k.status == "low fails" else "above it, at"
        lines.append(f"{where} {k.key} = {_value(k.failed_at)}, fails first: {k.first_failing_target}")
        for _, r in k.failing.iterrows():
            if r["verdict"] == "error":
                continue
            need = f" (needs {int(r['min_samples']):,})" if r["verdict"] == "insufficient" else ""
            threshold = _fmt(r["target_value"], r["unit"])
            lines.append(f"  {r['target']}, seed {int(r['seed'])}: {VERDICT_TEXT[r['verdict']]}, achieved "
                         f"{_fmt(r['achieved'], r['unit'])} vs {r['comparison']} {threshold},"
                         f" n = {int(r['n']):,}{need}")
    lines += [f"warning: {w}" for w in k.warnings]
    return "\n".join(lines)


__all__ = ["knee_text", "latency_table", "sweep_text", "table", "verdict_matrix", "with_interval"]
