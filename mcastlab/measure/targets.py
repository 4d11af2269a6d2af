"""Targets: the spec's production targets and a scenario's own, evaluated into a pass/fail frame.

A target names a metric, a statistic and a threshold::

    - metric: latency      # see METRICS
      op: enumerate
      stat: p99            # count, sum, mean, min, max, p50, p90, p99, p99.9 ...
      min_matched: 1000    # only operations that matched at least this many identities
      below: 0.020         # or at_most / at_least / above

The spec's targets (on unless ``spec_targets: false``): enumerate 1,000 < 20 ms, multicast to 100 <
100 ms, the SlowEnumerateLatency alert (enumerate p99 < 20 ms) and the HighTTLExpirationRate alert
(expirations per second over any 5-minute window <= 100).

**Targets that do not overclaim.** A figure resting on too few samples is ``insufficient``, never PASS
(``passed`` is then NA, and a sweep or knee counts it as not passed). The minimum (``min_samples``,
settable per target) defaults by statistic: a percentile ``pq`` needs enough samples for about one to lie
beyond it — 20 for p50..p95 and the mean, 100 for p99, 1,000 for p99.9 (``ceil(1 / (1 - q/100))``, at
least 20); counts and sums over multicasts need at least one multicast; the expiration-rate alert needs
at least one expiration and a run at least one window long.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from mcastlab.errors import UsageError
from mcastlab.measure.frames import conform
from mcastlab.measure.stats import rolling_rate, stat

METRICS = {
    "latency": "seconds from an operation's scheduled start to its end (successful ops)",
    "service": "seconds from the actual call to the end (excludes generator lag)",
    "lag": "generator lag: actual call minus scheduled start",
    "error_rate": "fraction of operations that raised",
    "delivery_latency": "seconds from a multicast's scheduled start to a recipient's receipt",
    "makespan": "seconds from a multicast's scheduled start to its last recipient's receipt",
    "delivered_ratio": "delivered / targeted over all multicasts",
    "stale": "recipients targeted after their deadline (sum over multicasts)",
    "wrong": "recipients targeted that were alive but did not match (sum)",
    "missed": "alive, matching recipients not reached (sum)",
    "duplicated": "recipients that received a message more than once (sum)",
    "expiry_lag": "seconds from deadline to the expiration event",
    "gone_lag": "seconds from deadline to the identity no longer being returned",
    "expiration_rate": "highest expirations per second over any 'window' seconds",
}
COMPARISONS = {"below": "<", "at_most": "<=", "at_least": ">=", "above": ">"}
_TIME_METRICS = {"latency", "service", "lag", "delivery_latency", "makespan", "expiry_lag", "gone_lag"}


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One target: ``metric``'s ``stat`` compared with ``threshold``."""

    metric: str
    threshold: float
    comparison: str = "<"
    stat: str = "p99"
    op: str | None = None
    min_matched: int | None = None
    max_matched: int | None = None
    window: float = 300.0
    name: str = ""
    source: str = "scenario"
    min_samples: int | None = None  # None: the default for the statistic (see the module docstring)

    @property
    def required(self) -> int:
        """Samples needed before the target may pass or fail."""
        return self.min_samples if self.min_samples is not None else default_min_samples(self)

    @property
    def unit(self) -> str:
        """s for times, 1/s for rates, ratio for fractions, '' for counts."""
        if self.metric in _TIME_METRICS:
            return "s"
        if self.metric in ("delivered_ratio", "error_rate"):
            return "ratio"
        return "1/s" if self.metric == "expiration_rate" else ""

    @property
    def label(self) -> str:
        """Human-readable name of the target."""
        if self.name:
            return self.name
        what = self.metric if self.op is None else f"{self.op} {self.metric}"
        band = ""
        if self.min_matched is not None or self.max_matched is not None:
            lo = f"{self.min_matched:,}" if self.min_matched is not None else "0"
            band = (
                f" ({lo}–{self.max_matched:,} matched)"
                if self.max_matched is not None
                else f" (≥{lo} matched)"
            )
        if self.metric in ("delivered_ratio", "stale", "wrong", "missed", "duplicated", "error_rate"):
            return f"{what}{band}"
        if self.metric == "expiration_rate":
            return f"expiration rate, max over {self.window:g} s"
        return f"{what} {self.stat}{band}"


_SUMS = ("stale", "wrong", "missed", "duplicated", "delivered_ratio", "error_rate")


def default_min_samples(t: TargetSpec) -> int:
    """The default ``min_samples`` of a target (see the module docstring)."""
    if t.metric in _SUMS or t.metric == "expiration_rate":
        return 1
    stat = t.stat
    if stat.startswith("p"):
        q = float(stat[1:])
        return max(20, math.ceil(1.0 / (1.0 - q / 100.0) - 1e-9)) if q < 100 else 1000
    if stat in ("mean", "min", "max"):
        return 20
    return 1  # count, sum


SPEC_TARGETS = (
    TargetSpec(
        "latency",
        0.020,
        "<",
        "p99",
        "enumerate",
        1000,
        9999,
        name="enumerate 1,000 identities p99 (1,000–9,999 matched)",
        source="spec",
    ),
    TargetSpec(
        "latency",
        0.100,
        "<",
        "p99",
        "multicast",
        100,
        999,
        name="multicast to 100 identities p99 (100–999 matched)",
        source="spec",
    ),
    TargetSpec(
        "latency",
        0.020,
        "<",
        "p99",
        "enumerate",
        name="enumerate p99 (SlowEnumerateLatency alert)",
        source="spec",
    ),
    TargetSpec(
        "expiration_rate",
        100.0,
        "<=",
        "max",
        window=300.0,
        name="TTL expirations/s over 5 min (HighTTLExpirationRate alert)",
        source="spec",
    ),
)


def _band(df: pd.DataFrame, col: str, t: TargetSpec) -> pd.DataFrame:
    if t.min_matched is not None:
        df = df[df[col] >= t.min_matched]
    if t.max_matched is not None:
        df = df[df[col] <= t.max_matched]
    return df


def measure(t: TargetSpec, frames: Mapping[str, pd.DataFrame], warmup: float = 0.0) -> tuple[float, int]:
    """The achieved value of target ``t`` and how many samples it rests on."""
    ops = frames["ops"]
    ops = ops[ops["t_start"] >= warmup]
    if t.op is not None:
        ops = ops[ops["op"] == t.op]
    mc = frames["multicasts"]
    mc = mc[mc["t_start"] >= warmup]
    m = t.metric
    if m in ("latency", "service", "lag", "error_rate"):
        ops = _band(ops, "matched", t)
        if m == "error_rate":
            return (float((~ops["ok"]).mean()) if len(ops) else math.nan), len(ops)
        ok = ops[ops["ok"]] if m != "lag" else ops
        col = {"latency": "latency_s", "service": "service_s", "lag": "lag_s"}[m]
        return stat(ok[col], t.stat), len(ok)
    if m == "delivery_latency":
        d = frames["deliveries"]
        d = d[(d["t_sent"] >= warmup) & (d["status"] == "delivered")]
        return stat(d["latency_s"], t.stat), len(d)
    if m == "makespan":
        mc = _band(mc, "targeted", t)
        return stat(mc["makespan_s"], t.stat), len(mc)
    if m == "delivered_ratio":
        mc = _band(mc, "targeted", t)
        total = int(mc["targeted"].sum())
        return (float(mc["delivered"].sum() / total) if total else math.nan), len(mc)
    if m in ("stale", "wrong", "missed", "duplicated"):
        mc = _band(mc, "targeted", t)
        return float(mc[m].sum()), len(mc)
    ex = frames["expirations"]
    ex = ex[ex["deadline"] >= warmup]
    if m == "expiry_lag":
        return stat(ex["lag_s"], t.stat), len(ex)
    if m == "gone_lag":
        g = ex["gone_lag_s"].dropna()
        return stat(g, t.stat), len(g)
    if m == "expiration_rate":
        return rolling_rate(ex["t_detected"].to_numpy(), t.window), len(ex)
    raise UsageError(f"unknown metric {m!r}; known: {', '.join(METRICS)}")


def _passes(value: float, comparison: str, threshold: float) -> bool:
    return {
        "<": value < threshold,
        "<=": value <= threshold,
        ">=": value >= threshold,
        ">": value > threshold,
    }[comparison]


VERDICTS = ("pass", "fail", "insufficient", "no data")


def verdict(t: TargetSpec, value: float, n: int, span: float = math.inf) -> str:
    """``pass``/``fail``, ``insufficient`` (fewer than ``t.required`` samples, or for the expiration-rate
    alert a run shorter than its window) or ``no data``."""
    if n == 0 and (t.metric not in _SUMS and t.metric != "expiration_rate"):
        return "no data"
    if n < t.required or (t.metric == "expiration_rate" and span < t.window):
        return "insufficient"
    if isinstance(value, float) and math.isnan(value):
        return "no data"
    return "pass" if _passes(value, t.comparison, t.threshold) else "fail"


def evaluate(
    targets: list[TargetSpec], frames: Mapping[str, pd.DataFrame], *, warmup: float = 0.0, run: str = "",
    span: float = math.inf,
) -> pd.DataFrame:
    """The ``targets`` frame: one row per target with the achieved figure, the samples behind it, its
    verdict and ``passed`` (True/False only for pass/fail; NA when insufficient or without data).
    ``span`` is the measured time after warm-up (seconds)."""
    rows = []
    for t in targets:
        value, n = measure(t, frames, warmup)
        v = verdict(t, value, n, span)
        rows.append(
            {
                "metric": t.label,
                "target": t.threshold,
                "achieved": value,
                "passed": pd.NA if v in ("insufficient", "no data") else v == "pass",
                "comparison": t.comparison,
                "unit": t.unit,
                "n": n,
                "source": t.source,
                "run": run,
                "verdict": v,
                "min_samples": t.required,
            }
        )
    cols = ["metric", "target", "achieved", "passed", "comparison", "unit", "n", "source", "run", "verdict",
            "min_samples"]
    return conform(pd.DataFrame(rows, columns=cols), "targets")


def _fmt(value: float, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "s":
        if abs(value) < 1e-3:
            return f"{value * 1e6:.0f} µs"
        if abs(value) < 1:
            return f"{value * 1e3:.2f} ms"
        return f"{value:.3f} s"
    if unit == "ratio":
        return f"{value:.2%}"
    if unit == "1/s":
        return f"{value:.2f}/s"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4g}"


def format_table(targets: pd.DataFrame) -> str:
    """The targets frame as a fixed-width text table (PASS / FAIL / n/a beside each achieved figure)."""
    rows = [("target", "threshold", "achieved", "n", "result")]
    for r in targets.itertuples(index=False):
        v = str(r.verdict) if not pd.isna(r.verdict) else ("n/a" if pd.isna(r.passed) else
                                                         ("pass" if r.passed else "fail"))
        result = {"pass": "PASS", "fail": "FAIL", "no data": "n/a"}.get(
            v, f"insufficient (n < {int(r.min_samples):,})" if v == "insufficient" else v)
        rows.append(
            (
                str(r.metric),
                f"{r.comparison} {_fmt(r.target, r.unit)}",
                _fmt(r.achieved, r.unit),
                f"{int(r.n):,}",
                result,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for j, row in enumerate(rows):
        cells = [
            row[0].ljust(widths[0]),
            row[1].rjust(widths[1]),
            row[2].rjust(widths[2]),
            row[3].rjust(widths[3]),
            row[4].ljust(widths[4]),
        ]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


__all__ = [
    "COMPARISONS",
    "METRICS",
    "SPEC_TARGETS",
    "VERDICTS",
    "TargetSpec",
    "default_min_samples",
    "evaluate",
    "format_table",
    "measure",
    "verdict",
]
