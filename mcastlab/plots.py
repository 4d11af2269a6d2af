"""Matplotlib figures over a run's frames (fixed size and dpi, so saved images are reproducible).

Each function takes a :class:`~mcastlab.measure.RunResult` (or a run directory) and returns a
``matplotlib.figure.Figure``; :func:`save_all` writes every figure of a run as PNG. Figures are built
with the object API (no pyplot state), so they work under the Agg backend and in notebooks alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mcastlab.measure.stats import PERCENTILES
from mcastlab.measure.store import RunResult, as_run

FIGSIZE = (8.0, 4.5)
TALL_FIGSIZE = (8.0, 7.2)  # stacked panels over time
DPI = 100


def _figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    return fig, ax


def _label(run: RunResult) -> str:
    m = run.manifest
    return f"{m.get('scenario', '?')} · {m.get('mode', '?')} · {m.get('backend', '?')}"


def _empty(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this run", ha="center", va="center", transform=ax.transAxes)


def latency_percentiles(run: RunResult | str | Path) -> Figure:
    """p50/p90/p99/p99.9/max latency per operation (log scale), warm-up excluded."""
    run = as_run(run)
    fig, ax = _figure(f"Latency percentiles per operation — {_label(run)}")
    s = run.summary()
    ops = [m for m in s.index if m in set(run.ops["op"].dropna().unique())]
    if not ops:
        _empty(ax, "operations")
        return fig
    cols = [*PERCENTILES, "max"]
    x = np.arange(len(ops))
    w = 0.8 / len(cols)
    for i, c in enumerate(cols):
        vals = s.loc[ops, c].to_numpy(dtype=float) * 1e3
        ax.bar(x + (i - (len(cols) - 1) / 2) * w, vals, w, label=c)
    ax.set_xticks(x, ops)
    ax.set_yscale("log")
    ax.set_ylabel("latency from scheduled start (ms)")
    ax.legend(ncols=len(cols), fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def delivery_histogram(run: RunResult | str | Path) -> Figure:
    """Histogram of delivery latency (scheduled multicast start to receipt), log-spaced bins."""
    run = as_run(run)
    fig, ax = _figure(f"Delivery latency — {_label(run)}")
    d = run.deliveries
    lat = d.loc[(d["status"] == "delivered") & (d["t_sent"] >= run.warmup), "latency_s"].to_numpy(float)
    lat = lat[np.isfinite(lat) & (lat > 0)] * 1e3
    if not len(lat):
        _empty(ax, "deliveries")
        return fig
    lo, hi = max(lat.min(), 1e-3), max(lat.max(), lat.min() * 1.01 + 1e-3)
    ax.hist(lat, bins=list(np.geomspace(lo, hi, 50)), color="tab:blue", alpha=0.8)
    ax.set_xscale("log")
    for name, q in (("p50", 50), ("p99", 99)):
        v = np.percentile(lat, q)
        ax.axvline(v, color="k", ls="--" if name == "p50" else ":", lw=1)
        ax.text(v, ax.get_ylim()[1] * 0.95, f" {name} {v:.3g} ms", fontsize=8, va="top")
    ax.set_xlabel("delivery latency (ms)")
    ax.set_ylabel("recipients")
    return fig


def population(run: RunResult | str | Path) -> Figure:
    """Registered identities over time (registry and ground truth), with expirations per bin."""
    run = as_run(run)
    fig, ax = _figure(f"Registered population — {_label(run)}")
    p = run.population
    if not len(p):
        _empty(ax, "population samples")
        return fig
    reg = p["registered"].where(p["registered"] >= 0)
    ax.plot(p["t"], reg, label="registered (count)", color="tab:blue")
    ax.plot(p["t"], p["alive"], label="alive (ground truth)", color="tab:green", ls="--", lw=1)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("identities")
    ex = run.expirations["t_detected"].to_numpy(float)
    ax2 = ax.twinx()
    if len(ex):
        width = max(float(p["t"].diff().median() or 1.0), 1e-3)
        bins = np.arange(0.0, float(max(ex.max(), p["t"].max())) + width, width)
        ax2.hist(ex, bins=list(bins), color="tab:red", alpha=0.35, label="expirations")
    ax2.set_ylabel("expirations per bin", color="tab:red")
    lines = ax.get_legend_handles_labels()
    l2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + l2[0], lines[1] + l2[1], fontsize=8, loc="lower right")
    return fig


def expiry_lag(run: RunResult | str | Path) -> Figure:
    """Distribution (ECDF) of the lag from deadline to expiration event and to no longer being returned."""
    run = as_run(run)
    fig, ax = _figure(f"Expiry lag — {_label(run)}")
    ex = run.expirations
    drawn = False
    for col, label in (("lag_s", "deadline → expiration event"), ("gone_lag_s", "deadline → not returned")):
        v = np.sort(ex[col].dropna().to_numpy(float)) * 1e3
        if len(v):
            ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", label=f"{label} (n={len(v)})")
            drawn = True
    if not drawn:
        _empty(ax, "expirations")
        return fig
    ax.set_xlabel("lag (ms)")
    ax.set_ylabel("fraction of expirations")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def makespan_vs_fanout(run: RunResult | str | Path) -> Figure:
    """Multicast makespan (scheduled start to last receipt) against the number of recipients."""
    run = as_run(run)
    fig, ax = _figure(f"Multicast makespan vs fan-out — {_label(run)}")
    mc = run.multicasts.dropna(subset=["makespan_s"])
    if not len(mc):
        _empty(ax, "multicasts")
        return fig
    for stream, g in mc.groupby("stream", observed=True):
        ax.scatter(g["targeted"], g["makespan_s"] * 1e3, s=12, label=str(stream), alpha=0.7)
    ax.set_xlabel("recipients targeted")
    ax.set_ylabel("makespan (ms)")
    if mc["targeted"].max() > 10 * max(mc["targeted"].min(), 1):
        ax.set_xscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def fault_windows(run: RunResult) -> list[tuple[float, float, str]]:
    """``(start, end, label)`` of the scenario's faults (an instant fault has start == end)."""
    out = []
    for f in (run.manifest.get("scenario_config") or {}).get("faults") or []:
        if not isinstance(f, dict) or "at" not in f:
            continue
        at = float(f["at"])
        label = f"{f.get('kind', 'fault')} ({f.get('target', '')})".replace(" ()", "")
        out.append((at, at + float(f.get("duration", 0.0) or 0.0), label))
    return out


def _shade(ax: Axes, windows: list[tuple[float, float, str]], legend: bool = False) -> None:
    for i, (a, b, label) in enumerate(windows):
        name = label if legend and i < 4 else None
        if b > a:
            ax.axvspan(a, b, color="tab:red", alpha=0.12, label=name)
        else:
            ax.axvline(a, color="tab:red", ls=":", lw=1, label=name)


def timeseries(run: RunResult | str | Path) -> Figure:
    """The run over time, fault windows shaded: offered vs achieved rate, p99 latency per operation,
    and the registered population with deliveries per second."""
    run = as_run(run)
    fig = Figure(figsize=TALL_FIGSIZE, dpi=DPI, layout="constrained")
    a1, a2, a3 = fig.subplots(3, 1, sharex=True)
    a1.set_title(f"Over time — {_label(run)}", fontsize=11)
    ts = run.timeseries
    if not len(ts):
        _empty(a1, "timeseries")
        return fig
    windows = fault_windows(run)
    for i, (op, g) in enumerate(ts.groupby("op", sort=True, observed=True)):
        color = f"C{i % 10}"
        a1.plot(g["t"], g["achieved_rate"], color=color, lw=1.2, label=f"{op} achieved")
        a1.plot(g["t"], g["offered_rate"], color=color, lw=0.8, ls="--", label=f"{op} offered")
        a2.plot(g["t"], g["p99_s"] * 1e3, color=color, lw=1.0, label=str(op))
    a1.set_ylabel("operations / s")
    a1.legend(fontsize=6, ncols=2)
    a2.set_ylabel("p99 latency (ms)")
    a2.set_yscale("log")
    a2.legend(fontsize=6)
    first = ts.drop_duplicates("t")
    a3.plot(first["t"], first["population"], color="tab:blue", label="registered")
    a3.set_ylabel("registered")
    a4 = a3.twinx()
    a4.plot(first["t"], first["deliveries"] / first["window"], color="tab:green", lw=0.8)
    a4.set_ylabel("deliveries / s", color="tab:green")
    a3.set_xlabel("time since start (s)")
    for k, ax in enumerate((a1, a2, a3)):
        _shade(ax, windows, legend=k == 2)
        ax.grid(alpha=0.3)
    if windows:
        a3.legend(fontsize=7, loc="lower right")
    return fig


def overlay(
    runs: Sequence[RunResult | str | Path],
    labels: Sequence[str] | None = None,
    ops: Sequence[str] = ("enumerate", "multicast", "register", "heartbeat"),
) -> Figure:
    """Latency ECDFs of several runs on one figure (e.g. sim vs live), one panel per operation."""
    rs = [as_run(r) for r in runs]
    labels = (
        list(labels)
        if labels is not None
        else [f"{r.manifest.get('mode')} {r.manifest.get('backend')}" for r in rs]
    )
    present = [o for o in ops if any((r.ops["op"] == o).any() for r in rs)] or list(ops[:1])
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(present), squeeze=False)[0]
    fig.suptitle("Latency ECDF: " + " vs ".join(labels), fontsize=11)
    for ax, op in zip(axes, present, strict=True):
        for r, label in zip(rs, labels, strict=True):
            o = r.ops
            v = (
                np.sort(
                    o.loc[(o["op"] == op) & o["ok"] & (o["t_start"] >= r.warmup), "latency_s"].to_numpy(float)
                )
                * 1e3
            )
            if len(v):
                ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", label=label)
        ax.set_title(op, fontsize=10)
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of operations")
    axes[0].legend(fontsize=7)
    return fig


FIGURES = {
    "latency_percentiles": latency_percentiles,
    "delivery_histogram": delivery_histogram,
    "population": population,
    "expiry_lag": expiry_lag,
    "makespan_vs_fanout": makespan_vs_fanout,
    "timeseries": timeseries,
}


def save_all(run: RunResult | str | Path, out_dir: str | Path) -> list[Path]:
    """Write every single-run figure as ``<name>.png`` into ``out_dir``; returns the paths."""
    run = as_run(run)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fn in FIGURES.items():
        fig = fn(run)
        p = out / f"{name}.png"
        fig.savefig(p, dpi=DPI)
        paths.append(p)
    return paths


__all__ = [
    "DPI",
    "FIGSIZE",
    "FIGURES",
    "TALL_FIGSIZE",
    "delivery_histogram",
    "expiry_lag",
    "latency_percentiles",
    "makespan_vs_fanout",
    "overlay",
    "population",
    "save_all",
    "timeseries",
]
