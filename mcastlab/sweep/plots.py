"""Figures of a sweep: each latency percentile against the swept key, with interval bands and targets.

Same conventions as :mod:`mcastlab.plots`: fixed size and dpi, the object API (``Figure``, no pyplot
state), so they render under Agg and in notebooks alike. :func:`percentiles` draws one operation:
p50 (solid) and p99 (dashed) means over the seeds against the first swept key (or ``key``), the 95 %
interval as a band, one line per combination of the other swept keys, and the scenario's latency targets
on that operation's p50/p99 as horizontal lines. :func:`save_all` writes one PNG per operation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mcastlab.plots import DPI, FIGSIZE
from mcastlab.sweep._points import op_names
from mcastlab.sweep._store import SweepResult, load_sweep

_STATS = (("p50_s", "-", "o"), ("p99_s", "--", "s"))


def latency_targets(result: SweepResult, op: str) -> list[tuple[str, float, str]]:
    """(label, threshold in seconds, stat) of the scenario's latency targets on ``op``'s p50/p99."""
    from mcastlab.workloads.scenario import load_scenario

    config = result.manifest.get("scenario_config")
    if not config:
        return []
    try:
        targets = load_scenario(config).all_targets
    except Exception:  # a sweep written by another version: draw without target lines
        return []
    return [(t.label, t.threshold, t.stat) for t in targets
            if t.metric == "latency" and t.op == op and t.stat in ("p50", "p99")]


def percentiles(result: SweepResult | str | Path, op: str, key: str | None = None) -> Figure:
    """p50/p99 latency of ``op`` against ``key`` (default: the first swept key); see the module docstring."""
    res = result if isinstance(result, SweepResult) else load_sweep(result)
    s = res.summary
    key = key or res.keys[0]
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    n_seeds = len(res.manifest.get("seeds", []))
    ax.set_title(f"{op} latency vs {key} — {res.manifest.get('scenario', '?')}\n"
                 f"mean over {n_seeds} seed(s) per point, band: 95 % interval", fontsize=10)
    others = [k for k in res.keys if k != key]
    numeric = pd.api.types.is_numeric_dtype(s[key]) and not pd.api.types.is_bool_dtype(s[key])
    cats = list(dict.fromkeys(s[key].astype(str))) if not numeric else []
    groups = s.groupby(others, sort=False) if others else [((), s)]
    drawn = False
    for i, (combo, g) in enumerate(groups):
        g = g.sort_values(key) if numeric else g
        x = g[key].to_numpy(float) if numeric else np.array([cats.index(str(v)) for v in g[key]], float)
        combo = combo if isinstance(combo, tuple) else (combo,)
        where = ", ".join(f"{k}={v}" for k, v in zip(others, combo, strict=True))
        for stat, ls, marker in _STATS:
            col = f"{op}_{stat}"
            if col not in g.columns or not np.isfinite(g[col].to_numpy(float)).any():
                continue
            y = g[col].to_numpy(float) * 1e3
            lo, hi = g[f"{col}_lo"].to_numpy(float) * 1e3, g[f"{col}_hi"].to_numpy(float) * 1e3
            label = f"{stat[:-2]}" + (f" ({where})" if where else "")
            ax.plot(x, y, ls=ls, marker=marker, color=f"C{i}", label=label)
            ax.fill_between(x, np.maximum(lo, y * 1e-3), hi, color=f"C{i}", alpha=0.15, lw=0)
            drawn = True
    if not drawn:
        ax.text(0.5, 0.5, f"no {op} percentiles (too few samples per run)", ha="center", va="center",
                transform=ax.transAxes)
        return fig
    reds = ("tab:red", "darkred", "salmon", "maroon")
    for j, (label, threshold, stat) in enumerate(latency_targets(res, op)):
        ax.axhline(threshold * 1e3, color=reds[j % len(reds)], ls=":" if stat == "p50" else "--", lw=1,
                   label=f"target: {label}" if j < len(reds) else None)
    if numeric:
        vals = s[key].to_numpy(float)
        if (vals > 0).all() and vals.max() / vals.min() >= 10:
            ax.set_xscale("log")
    else:
        ax.set_xticks(range(len(cats)), cats)
    ys = s[[c for c in (f"{op}_p50_s", f"{op}_p99_s") if c in s.columns]].to_numpy(float)
    ys = ys[np.isfinite(ys) & (ys > 0)]
    if len(ys) and ys.max() / ys.min() >= 10:
        ax.set_yscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(f"{op} latency from scheduled start (ms)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def save_all(result: SweepResult | str | Path, out_dir: str | Path) -> list[Path]:
    """Write ``<op>-percentiles.png`` for every operation of the sweep into ``out_dir``."""
    res = result if isinstance(result, SweepResult) else load_sweep(result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if not len(res.summary):
        return paths
    for op in op_names(res.summary):
        fig = percentiles(res, op)
        p = out / f"{op}-percentiles.png"
        fig.savefig(p, dpi=DPI)
        paths.append(p)
    return paths


__all__ = ["latency_targets", "percentiles", "save_all"]
