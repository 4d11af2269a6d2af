"""Percentiles from raw rows (never from averages) and the per-measure summary table."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from mcastlab.errors import UsageError

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}
STATS = ("count", "mean", "p50", "p90", "p99", "p99.9", "max")


def describe(values: np.ndarray | pd.Series) -> dict[str, float]:
    """count, mean, p50, p90, p99, p99.9 and max of the finite values (NaN when there are none)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    out: dict[str, float] = {"count": float(len(x))}
    if not len(x):
        return out | {k: float("nan") for k in STATS[1:]}
    q = np.percentile(x, list(PERCENTILES.values()), method="linear")
    out["mean"] = float(x.mean())
    out.update({k: float(v) for k, v in zip(PERCENTILES, q, strict=True)})
    out["max"] = float(x.max())
    return out


def stat(values: np.ndarray | pd.Series, name: str) -> float:
    """One statistic by name: count, mean, sum, min, max or a percentile such as p99 or p99.9."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if name == "count":
        return float(len(x))
    if name == "sum":
        return float(x.sum())
    if not len(x):
        return float("nan")
    if name == "mean":
        return float(x.mean())
    if name == "max":
        return float(x.max())
    if name == "min":
        return float(x.min())
    if name.startswith("p"):
        return float(np.percentile(x, float(name[1:])))
    raise UsageError(f"unknown statistic {name!r}; use count, sum, mean, min, max or pNN")


def summary(frames: Mapping[str, pd.DataFrame], *, warmup: float = 0.0) -> pd.DataFrame:
    """One row per measure (each op's latency, generator lag, delivery latency, makespan, expiry lags).

    Warm-up rows (scheduled before ``warmup`` seconds) are excluded. Columns: measure, count, errors,
    mean, p50, p90, p99, p99.9, max (seconds).
    """
    rows = []
    ops = frames["ops"]
    ops = ops[ops["t_start"] >= warmup]
    for op, g in ops.groupby("op", sort=True, observed=True):
        d = describe(g.loc[g["ok"], "latency_s"])
        rows.append({"measure": f"{op}", "errors": int((~g["ok"]).sum()), **d})
    if len(ops):
        rows.append({"measure": "generator lag", "errors": 0, **describe(ops["lag_s"])})
    dl = frames["deliveries"]
    dl = dl[dl["t_sent"] >= warmup]
    if len(dl):
        rows.append(
            {
                "measure": "delivery",
                "errors": int((dl["status"] != "delivered").sum()),
                **describe(dl["latency_s"]),
            }
        )
    mc = frames["multicasts"]
    mc = mc[mc["t_start"] >= warmup]
    if len(mc):
        rows.append({"measure": "makespan", "errors": int(mc["failed"].sum()), **describe(mc["makespan_s"])})
    ex = frames["expirations"]
    ex = ex[ex["deadline"] >= warmup]
    if len(ex):
        rows.append({"measure": "expiry lag (event)", "errors": 0, **describe(ex["lag_s"])})
        if ex["gone_lag_s"].notna().any():
            rows.append({"measure": "expiry lag (gone)", "errors": 0, **describe(ex["gone_lag_s"])})
    cols = ["measure", "count", "errors", "mean", "p50", "p90", "p99", "p99.9", "max"]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="string" if c == "measure" else "float64") for c in cols})
    df = pd.DataFrame(rows)[cols]
    df["measure"] = df["measure"].astype("string")
    df["count"] = df["count"].astype("int64")
    df["errors"] = df["errors"].astype("int64")
    return df.set_index("measure")


def audit_totals(multicasts: pd.DataFrame) -> dict[str, int]:
    """Sums over all multicasts of the targeting-audit columns."""
    cols = (
        "targeted",
        "delivered",
        "failed",
        "expected",
        "stale",
        "wrong",
        "missed",
        "duplicated",
        "uncertain",
    )
    return {c: int(multicasts[c].sum()) if len(multicasts) else 0 for c in cols}


def rolling_rate(times: np.ndarray | pd.Series, window: float) -> float:
    """The highest event rate (per second) over any ``window``-second interval."""
    t = np.sort(np.asarray(times, dtype=np.float64))
    t = t[np.isfinite(t)]
    if not len(t):
        return 0.0
    ends = np.searchsorted(t, t + window, side="left")
    return float((ends - np.arange(len(t))).max() / window)


__all__ = ["PERCENTILES", "STATS", "audit_totals", "describe", "rolling_rate", "stat", "summary"]
