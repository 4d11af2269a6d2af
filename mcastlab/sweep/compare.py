"""Compare N runs side by side, each named by the scenario keys that differ between them.

``compare(*runs_or_sweeps)`` (and ``mcastlab compare RUN_OR_SWEEP...``) takes run directories (``mcastlab
run --out``), sweep directories (``mcastlab sweep --out``) or the objects themselves. **A sweep expands
into its runs** (the successful ones: a failed run measured nothing to compare), so a sweep can be
compared with a baseline run, or two sweeps with each other.

**Names.** Each run's scenario — the manifest's ``scenario_config``, or for a sweep's run the sweep's
scenario with that run's grid values and seed — is flattened to dotted keys (``workload.devices``,
``targets.0.below``), with the mode the run really used (``--mode`` can change it). The keys whose values
differ between the runs name them (``workload.devices=2000, seed=43``; at most four keys in a name, all
of them in the header); when nothing differs, the run id does.

**Output.** A legend ``[i] name (run id)``, then per run and measure the sample count, errors and the
latency percentiles with units (µs / ms / s; warm-up excluded), then each target's verdict per run
(PASS / FAIL / insufficient / n/a) with the achieved figure and the samples behind it.
:func:`mcastlab.measure.compare_runs` (two runs, with ratios) is unchanged.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mcastlab.errors import UsageError
from mcastlab.measure.store import RunResult, load_run
from mcastlab.measure.targets import _fmt
from mcastlab.sweep._store import SweepResult, is_sweep_dir, load_sweep
from mcastlab.sweep._text import VERDICT_TEXT, fmt_s, table

NAME_KEYS = 4
_ABSENT = object()


@dataclass
class Comparison:
    """Runs side by side: ``names`` (by ``keys``, the differing scenario keys), ``latency`` (one row per
    run and measure) and ``targets`` (one row per target and run)."""

    runs: list[RunResult]
    names: list[str]
    keys: list[str]
    latency: pd.DataFrame
    targets: pd.DataFrame

    def __str__(self) -> str:
        return format_comparison(self)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "l": [{"x": 2}]}`` -> ``{"a.b": 1, "l.0.x": 2}`` (as ``--set`` addresses them)."""
    if isinstance(obj, Mapping):
        items: Any = ((str(k), v) for k, v in obj.items())
    elif isinstance(obj, list | tuple):
        items = ((str(i), v) for i, v in enumerate(obj))
    else:
        return {prefix: obj}
    out: dict[str, Any] = {}
    for k, v in items:
        out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
    return out


def differing(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The dotted keys whose values are not the same in every config (absent counts as a value)."""
    flat = [flatten(c) for c in configs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    return [k for k in keys if len({repr(f.get(k, _ABSENT)) for f in flat}) > 1]


def _expand(item: Any) -> list[tuple[RunResult, dict[str, Any]]]:
    """A run or sweep (object or directory) -> [(run, its scenario config)]."""
    if isinstance(item, str | Path) and is_sweep_dir(item):
        item = load_sweep(item)
    if isinstance(item, SweepResult):
        if "ops" not in item.frames:
            raise UsageError(f"sweep {item.out_dir or item.manifest.get('scenario')} was saved without its "
                             "runs' frames (--no-frames); compare needs them. "
                             "Fix: compare a sweep run with frames")
        from mcastlab.workloads.scenario import set_path

        out = []
        for _, r in item.points[item.points["ok"]].iterrows():
            run = item.run(str(r["run"]))
            config = copy.deepcopy(item.manifest.get("scenario_config") or {})
            for k, v in {**run.manifest["sweep_values"], "seed": int(r["seed"])}.items():
                set_path(config, k, v)
            config["mode"] = item.manifest.get("mode")
            out.append((run, config))
        return out
    run = item if isinstance(item, RunResult) else load_run(item)
    config = copy.deepcopy(run.manifest.get("scenario_config") or {})
    config["mode"] = run.manifest.get("mode", config.get("mode"))
    return [(run, config)]


def _names(runs: list[RunResult], configs: list[dict[str, Any]], keys: list[str]) -> list[str]:
    flat = [flatten(c) for c in configs]
    names = []
    for run, f in zip(runs, flat, strict=True):
        parts = [f"{k}={f[k]}" if k in f else f"{k} unset" for k in keys[:NAME_KEYS]]
        more = f" (+{len(keys) - NAME_KEYS} more)" if len(keys) > NAME_KEYS else ""
        names.append(", ".join(parts) + more if parts else run.run or "run")
    if len(set(names)) < len(names):  # same settings, different runs: the run id tells them apart
        names = [f"{n} ({r.run})" if names.count(n) > 1 and n != r.run else n
                 for n, r in zip(names, runs, strict=True)]
    return [f"{n} #{names[:i].count(n) + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def compare(*items: Any) -> Comparison:
    """Compare runs and sweeps (objects or directories); see the module docstring."""
    pairs = [pair for item in items for pair in _expand(item)]
    if len(pairs) < 2:
        raise UsageError(f"compare needs at least two runs, got {len(pairs)}. Fix: pass two or more run "
                         "directories, or a sweep directory with two or more successful runs")
    runs, configs = [p[0] for p in pairs], [p[1] for p in pairs]
    keys = differing(configs)
    names = _names(runs, configs, keys)
    lat, tgt = [], []
    for i, (run, name) in enumerate(zip(runs, names, strict=True)):
        s = run.summary().reset_index()
        lat.append(s.assign(index=i + 1, run=name, run_id=run.run))
        t = run.targets
        tgt.append(t.assign(index=i + 1, run=name, run_id=run.run))
    return Comparison(runs, names, keys, pd.concat(lat, ignore_index=True), pd.concat(tgt, ignore_index=True))


def format_comparison(c: Comparison) -> str:
    lines = [f"{len(c.runs)} runs, named by what differs between them: " + (", ".join(c.keys) or "nothing "
             "(named by run id)")]
    lines += [f"  [{i}] {name}  ({run.run})"
              for i, (name, run) in enumerate(zip(c.names, c.runs, strict=True), 1)]
    rows = [["run", "measure", "count", "errors", "p50", "p90", "p99", "max"]]
    for r in c.latency.itertuples(index=False):
        rows.append([f"[{r.index}]", str(r.measure), f"{int(r.count):,}", f"{int(r.errors):,}",
                     fmt_s(r.p50), fmt_s(r.p90), fmt_s(r.p99), fmt_s(r.max)])
    lines += ["", "latency from the scheduled start (warm-up excluded; count: samples behind percentiles)",
              table(rows, left=2) if len(rows) > 1 else "(no operations measured)", "", "targets:"]
    t = c.targets
    for metric in dict.fromkeys(t["metric"]):
        g = t[t["metric"] == metric]
        first = g.iloc[0]
        lines.append(f"  {metric}  ({first['comparison']} {_fmt(first['target'], first['unit'])})")
        for r in g.itertuples(index=False):
            verdict = VERDICT_TEXT.get(str(r.verdict), str(r.verdict))
            need = f" (needs {int(r.min_samples):,})" if r.verdict == "insufficient" else ""
            achieved = _fmt(r.achieved, r.unit)
            lines.append(f"    [{r.index}] {verdict:<12} {achieved:>10}  n = {int(r.n):,}{need}")
    return "\n".join(lines)


def cli_compare(paths: Sequence[str], *, plot: str | None = None) -> int:
    """``mcastlab compare RUN_OR_SWEEP... [--plot FILE]``."""
    for p in paths:
        if not Path(p).is_dir():
            raise UsageError(f"{p}: no such directory. Fix: pass run or sweep directories (their --out)")
    c = compare(*paths)
    print(format_comparison(c), flush=True)
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        from mcastlab.plots import overlay

        overlay(c.runs, labels=[f"[{i}] {n}" for i, n in enumerate(c.names, 1)]).savefig(plot)
        print(f"\noverlay written to {plot}", file=sys.stdout, flush=True)
    return 0


__all__ = ["Comparison", "cli_compare", "compare", "differing", "flatten", "format_comparison"]
