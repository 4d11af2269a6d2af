"""The ``timeseries`` frame: a run seen over time, one row per window and operation.

Columns: run, t (window start, seconds since the origin), window, op, offered_rate (operations
*scheduled* in the window, per second: the load the workload asked for), achieved_rate (operations that
*completed successfully* in the window, per second), p50_s / p99_s (latency of the operations scheduled
in the window; NaN when fewer than ``min_p99`` samples stand behind a p99, 20 for a p50), n (those
samples), errors (failed operations scheduled in the window), deliveries (receipts at inboxes in the
window, all operations alike) and population (the registered count last sampled at or before the
window's end). Offered vs achieved is what a load-test tool shows first: when achieved falls below
offered, the system is not keeping up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

MIN_P50 = 20
MIN_P99 = 100


def build_timeseries(frames: Mapping[str, pd.DataFrame], *, window: float, end: float,
                     run: str = "") -> pd.DataFrame:
    """The timeseries frame from a run's frames (see the module docstring); ``end``: the run's last
    instant (seconds since the origin)."""
    from mcastlab.measure.frames import conform, empty

    if window <= 0 or not math.isfinite(end) or end <= 0:
        return empty("timeseries")
    n_win = max(1, math.ceil(end / window - 1e-9))
    edges = np.arange(n_win + 1) * window
    ops = frames["ops"]
    d = frames["deliveries"]
    recv = d["t_received"].to_numpy(float)
    recv = recv[np.isfinite(recv)]
    deliveries = np.histogram(recv, bins=edges)[0] if len(recv) else np.zeros(n_win, int)
    pop = frames["population"].sort_values("t")
    pop_t, pop_n = pop["t"].to_numpy(float), pop["registered"].to_numpy(np.int64)
    idx = np.searchsorted(pop_t, edges[1:], side="right") - 1
    population = np.where(idx >= 0, pop_n[np.clip(idx, 0, None)] if len(pop_n) else 0, 0)
    rows = []
    for op, g in ops.groupby("op", sort=True, observed=True):
        start = g["t_start"].to_numpy(float)
        ok = g["ok"].to_numpy(bool)
        lat = g["latency_s"].to_numpy(float)
        done = start + lat
        w_start = np.clip((start // window).astype(np.int64), 0, n_win - 1)
        offered = np.bincount(w_start, minlength=n_win)
        w_done = np.clip((done[ok] // window).astype(np.int64), 0, n_win - 1)
        achieved = np.bincount(w_done, minlength=n_win)
        errors = np.bincount(w_start[~ok], minlength=n_win)
        p50 = np.full(n_win, np.nan)
        p99 = np.full(n_win, np.nan)
        count = np.zeros(n_win, np.int64)
        order = np.argsort(w_start[ok], kind="stable")
        ws, ls = w_start[ok][order], lat[ok][order]
        bounds = np.searchsorted(ws, np.arange(n_win + 1))
        for w in range(n_win):
            x = ls[bounds[w]:bounds[w + 1]]
            count[w] = len(x)
            if len(x) >= MIN_P50:
                p50[w] = float(np.percentile(x, 50))
            if len(x) >= MIN_P99:
                p99[w] = float(np.percentile(x, 99))
        rows.append(pd.DataFrame({
            "t": edges[:-1], "window": window, "op": str(op), "offered_rate": offered / window,
            "achieved_rate": achieved / window, "p50_s": p50, "p99_s": p99, "n": count, "errors": errors,
            "deliveries": deliveries, "population": population,
        }))
    if not rows:
        return empty("timeseries")
    df = pd.concat(rows, ignore_index=True)
    df["run"] = run
    return conform(df, "timeseries")


def throughput(ts: pd.DataFrame, *, warmup: float = 0.0) -> pd.DataFrame:
    """Offered vs achieved rate per operation over the run after warm-up (mean of the windows), with
    errors per second; index: op."""
    cols = ["offered_rate", "achieved_rate", "errors_rate"]
    if not len(ts):
        return pd.DataFrame(columns=cols)
    t = ts[ts["t"] >= warmup]
    g = t.groupby("op", sort=True, observed=True)
    out = pd.DataFrame({
        "offered_rate": g["offered_rate"].mean(),
        "achieved_rate": g["achieved_rate"].mean(),
        "errors_rate": g["errors"].sum() / (g["window"].sum()).clip(lower=1e-12),
    })
    out.index = out.index.astype("string")
    return out


__all__ = ["MIN_P50", "MIN_P99", "build_timeseries", "throughput"]
