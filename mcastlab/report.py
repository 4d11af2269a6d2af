"""What ``mcastlab run`` and ``mcastlab report`` print about a run: latency summary, offered vs achieved
throughput, busy resources, per-process figures of replicated runs, the audit, targets and warnings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _print(text: str = "") -> None:
    print(text, flush=True)


def _fmt_s(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if abs(v) < 1e-3:
        return f"{v * 1e6:.0f} µs"
    if abs(v) < 1:
        return f"{v * 1e3:.2f} ms"
    return f"{v:.2f} s"


def summary_text(run: Any) -> str:
    """The percentile summary as text (times with units)."""
    s = run.summary()
    if not len(s):
        return "(no operations measured)"
    rows: list[tuple[str, ...]] = [
        ("measure", "count", "errors", "mean", "p50", "p90", "p99", "p99.9", "max")
    ]
    for measure, r in s.iterrows():
        rows.append(
            (
                str(measure),
                f"{int(r['count']):,}",
                f"{int(r['errors']):,}",
                *(_fmt_s(float(r[c])) for c in ("mean", "p50", "p90", "p99", "p99.9", "max")),
            )
        )
    w = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(row)).rstrip()
        for row in rows
    )


def reference_text(run: Any) -> str:
    """Our figures beside a scenario's published reference figures (``reference.ops``), if any."""
    ref = (run.manifest.get("reference") or {}).get("ops") or {}
    if not ref:
        return ""
    ops = run.ops[run.ops["t_start"] >= run.warmup]
    mc = run.multicasts[run.multicasts["t_start"] >= run.warmup]
    rows = [
        ("operation", "count", "errors", "mean", "max", "reference count", "reference mean", "reference max")
    ]
    for op, r in ref.items():
        g = ops[(ops["op"] == op) & ops["ok"]]["latency_s"]
        errors = int(((ops["op"] == op) & ~ops["ok"]).sum())
        rows.append(
            (
                op,
                f"{len(g):,}",
                f"{errors:,}",
                _fmt_s(float(g.mean())) if len(g) else "n/a",
                _fmt_s(float(g.max())) if len(g) else "n/a",
                f"{r.get('count', 'n/a'):,}"
                if isinstance(r.get("count"), int)
                else str(r.get("count", "n/a")),
                _fmt_s(float(r["mean"])) if "mean" in r else "n/a",
                _fmt_s(float(r["max"])) if "max" in r else "n/a",
            )
        )
    w = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(row)).rstrip()
        for row in rows
    ]
    extra = run.manifest.get("reference") or {}
    if len(mc) and mc["targeted"].sum():
        ratio = mc["delivered"].sum() / mc["targeted"].sum()
        lines.append(
            f"multicast: {mc['targeted'].mean():,.0f} targets each on average, {ratio:.2%} delivered"
            + (f" (reference: {extra['delivered_ratio']:.2%})" if "delivered_ratio" in extra else "")
        )
    if extra.get("note"):
        lines.append(f"reference: {extra['note']}")
    return "\n".join(lines)


def throughput_text(run: Any) -> str:
    """Offered vs achieved operations per second, per operation (from the timeseries frame)."""
    from mcastlab.measure.timeseries import throughput

    t = throughput(run.timeseries, warmup=run.warmup)
    if not len(t):
        return ""
    rows = [("operation", "offered/s", "achieved/s", "errors/s")]
    for op, r in t.iterrows():
        rows.append((str(op), f"{r['offered_rate']:,.2f}", f"{r['achieved_rate']:,.2f}",
                     f"{r['errors_rate']:,.2f}"))
    w = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(row))
                     for row in rows)


def resources_text(run: Any) -> str:
    """Busy fraction of each resource (which one gives out first)."""
    from mcastlab.measure.resources import first_to_give_out

    res = run.manifest.get("resources") or {}
    busy = res.get("busy") or {}
    if not busy:
        return ""
    parts = ", ".join(f"{k} {v:.0%}" for k, v in sorted(busy.items(), key=lambda kv: -kv[1]))
    top = first_to_give_out(res)
    lead = f"; busiest: {top[0]}" if top else ""
    return f"resources busy ({res.get('source', '?')}): {parts}{lead}"


def processes_text(run: Any) -> str:
    """Per coordinator replica: operations, generator lag (p50 / p99 with n) and CPU busy ('' for one)."""
    ops = run.ops
    if "process" not in ops or not len(ops) or int(ops["process"].max()) == 0:
        return ""
    busy = (run.manifest.get("resources") or {}).get("busy") or {}
    rows = [("process", "ops", "lag p50", "lag p99", "n", "CPU busy")]
    for proc, g in ops[~ops["warmup"]].groupby("process"):
        lag = g["lag_s"].to_numpy()
        p99 = _fmt_s(float(np.percentile(lag, 99))) if len(lag) >= 100 else "n<100"
        cpu = busy.get(f"coordinator-{proc}")
        rows.append((str(proc), f"{len(g):,}", _fmt_s(float(np.median(lag))) if len(lag) else "n/a", p99,
                     f"{len(lag):,}", "n/a" if cpu is None else f"{cpu:.0%}"))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w[i]) for i, c in enumerate(r)) for r in rows)


def report_text(run: Any, *, header: bool = True) -> None:
    """Print a run's summary, throughput, resources, audit, expirations, targets and warnings."""
    from mcastlab.measure import format_table

    m = run.manifest
    if header:
        state = f", INTERRUPTED by {m.get('signal') or 'a signal'}" if m.get("interrupted") else ""
        state += ", FAILED" if m.get("error") else ""
        _print(
            f"run {m.get('run')}  ({m.get('mode')}, {m.get('backend')}, seed {m.get('seed')}, "
            f"{m.get('wall_s', 0):.1f} s wall{state})"
        )
    _print()
    _print(summary_text(run))
    tp = throughput_text(run)
    if tp:
        _print()
        _print(tp)
    rs = resources_text(run)
    if rs:
        _print(rs)
    pt = processes_text(run)
    if pt:
        _print()
        _print("coordinator replicas (generator lag = scheduled start to actual call):")
        _print(pt)
    a = run.audit()
    _print()
    _print(
        f"targeting audit: {a['targeted']:,} targeted, {a['delivered']:,} delivered, {a['failed']:,} failed; "
        f"stale {a['stale']:,}, missed {a['missed']:,}, duplicated {a['duplicated']:,}, "
        f"wrong {a['wrong']:,}, uncertain {a['uncertain']:,}"
    )
    c = m.get("counts", {})
    if c:
        _print(
            f"expirations: {c.get('expirations', 0):,} reported, "
            f"{c.get('expected_expirations', 0):,} expected by the ground truth "
            f"({c.get('deaths', 0):,} deaths injected)"
        )
    ref = reference_text(run)
    if ref:
        _print()
        _print("beside the reference's published figures:")
        _print(ref)
    _print()
    _print(format_table(run.targets))
    for w in m.get("warnings") or []:
        _print(f"warning: {w}")
    err = m.get("error")
    if err:
        _print(f"error: the run stopped on {err.get('type')}: {err.get('message')}")


__all__ = ["processes_text", "report_text", "resources_text", "summary_text", "throughput_text"]
