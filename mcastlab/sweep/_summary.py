"""``summary.parquet``: one row per grid point over its seeds, with a 95 % interval of each figure.

For each figure ``F`` of ``points.parquet`` (``<op>_p50_s``, ``<op>_p99_s``, ``<op>_error_rate``,
``<op>_achieved_rate``) the summary has ``F`` (the mean over the point's successful seeds where ``F``
exists — a p99 resting on fewer than 100 samples is NaN and left out), ``F_lo`` / ``F_hi`` (the 95 %
confidence interval of that mean: Student's t with n-1 degrees of freedom, ``mean ± t·s/√n``, the
lower end clipped at 0 since latencies and rates are never negative) and
``F_n`` (the seeds behind it). With fewer than two seeds the interval is NaN and ``note`` says so.
``<op>_count`` is the total of successful operations over those seeds, ``n_seeds`` the successful runs,
``n_failed`` the runs that raised. A target's column is True iff it passed on every seed (and no run
failed); ``all_passed`` likewise, which is the knee's criterion.

The intervals measure seed-to-seed variation of the simulated system (different arrivals, deaths,
service times), not the error of a single run's percentile estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mcastlab.sweep._points import op_names, target_names

# Two-sided 95 % critical values of Student's t (the 0.975 quantile) by degrees of freedom; between
# tabulated rows the smaller df's (larger, so conservative) value is used. scipy is not a dependency.
_T975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
    11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
    20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
    29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980,
}
Z975 = 1.960
INTERVAL_STATS = ("p50_s", "p99_s", "error_rate", "achieved_rate")


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (see ``_T975``)."""
    if df < 1:
        return math.nan
    if df in _T975:
        return _T975[df]
    below = [k for k in _T975 if k < df]
    return _T975[max(below)] if df <= 120 else (_T975[120] if df < 1000 else Z975)


def interval(values: Sequence[float] | np.ndarray | pd.Series) -> tuple[float, float, float, int]:
    """``(mean, lo, hi, n)`` of the finite values: the mean and its 95 % t interval (NaN if n < 2)."""
    x = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, 1
    half = t975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def summarize(points: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The summary frame of a points frame (see the module docstring); rows in grid order."""
    ops = op_names(points)
    targets = target_names(points, keys)
    rows = []
    for values, g in points.groupby(list(keys), sort=False, dropna=False):
        ok = g[g["ok"]]
        n_ok, n_failed = len(ok), len(g) - len(ok)
        row: dict[str, object] = dict(zip(keys, values, strict=True))
        row["n_seeds"], row["n_failed"] = n_ok, n_failed
        for op in ops:
            row[f"{op}_count"] = int(ok[f"{op}_count"].fillna(0).sum())
            for s in INTERVAL_STATS:
                col = f"{op}_{s}"
                mean, lo, hi, n = interval(ok[col])
                lo = max(lo, 0.0) if n > 1 else lo  # the figures are never negative
                row[col], row[f"{col}_lo"], row[f"{col}_hi"], row[f"{col}_n"] = mean, lo, hi, n
        clean = n_ok > 0 and n_failed == 0
        for t in targets:
            row[t] = clean and bool(ok[t].fillna(False).all())
        row["all_passed"] = clean and bool(ok["all_passed"].all())
        row["passed_seeds"] = int(ok["all_passed"].sum())
        notes = []
        if n_failed:
            notes.append(f"{n_failed} of {len(g)} runs failed")
        if n_ok < 2:
            notes.append(f"{n_ok} successful seed{'s' if n_ok != 1 else ''}: no interval")
        row["note"] = "; ".join(notes)
        rows.append(row)
    df = pd.DataFrame(rows)
    if not len(df):
        return df
    for key in keys:
        df[key] = df[key].astype(points[key].dtype)
    for c in ("n_seeds", "n_failed", "passed_seeds", *(f"{op}_count" for op in ops),
              *(f"{op}_{s}_n" for op in ops for s in INTERVAL_STATS)):
        df[c] = df[c].astype("int64")
    for t in (*targets, "all_passed"):
        df[t] = df[t].astype("bool")
    df["note"] = df["note"].astype("string")
    return df


__all__ = ["INTERVAL_STATS", "Z975", "interval", "summarize", "t975"]
