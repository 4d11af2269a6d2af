"""``mcastlab calibrate --validate-load``: the simulator judged at load, against live, rate by rate.

One operation at a time is not where a capacity answer is made: it is made at the knee. This runs the
reference load test (``scenarios/prism-loadtest.yaml``: 50 % register, 30 % enumerate, 20 % multicast)
live — real Redis + NATS started for each run — and in sim with a calibration file, at each offered
rate, and puts them side by side: p50, p99 and error rate per operation (with the samples behind them),
whether each operation is *healthy* (p99 < 100 ms and < 1 % errors), the busiest resource of each run,
and a verdict per rate: ``both healthy``, ``both overloaded`` or ``disagree`` (some operation is
healthy in one and not in the other).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mcastlab.measure.resources import first_to_give_out

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "prism-loadtest.yaml"
HEALTHY_P99 = 0.100
HEALTHY_ERRORS = 0.01
OPS = ("register", "enumerate", "multicast")


def _stats(run: Any) -> dict[str, dict[str, float]]:
    ops = run.ops[run.ops["t_start"] >= run.warmup]
    out = {}
    for op in OPS:
        g = ops[ops["op"] == op]
        ok = g.loc[g["ok"], "latency_s"]
        n = len(g)
        out[op] = {
            "n": float(n),
            "p50": float(ok.quantile(0.5)) if len(ok) else math.nan,
            "p99": float(ok.quantile(0.99)) if len(ok) >= 100 else math.nan,
            "errors": float((~g["ok"]).mean()) if n else math.nan,
        }
    return out


def healthy(p99: float, errors: float) -> bool:
    """p99 below 100 ms (an overload that left too few successes to compute one is not healthy) and
    under 1 % errors."""
    return not math.isnan(p99) and p99 < HEALTHY_P99 and not (errors >= HEALTHY_ERRORS)


def validate_load(calibration: str | Path = "default", *, rates: Sequence[float] = (50, 150, 400),
                  duration: float = 20.0, seed: int = 2024, scenario: str | Path = SCENARIO,
                  progress: bool = False, echo: Callable[[str], Any] | None = print) -> pd.DataFrame:
    """One row per rate and operation: live vs sim p50/p99/errors, health, busiest resource, verdict."""
    from mcastlab.workloads import load_scenario, run_scenario

    rows = []
    for rate in rates:
        over = {"workload.rate.rate": float(rate), "duration": float(duration),
                "warmup": min(2.0, duration / 10), "drain": 5.0, "seed": seed,
                "sim.calibration": str(calibration)}
        scn = load_scenario(scenario, over)
        if echo:
            echo(f"  {rate:g} req/s: live ...")
        live = run_scenario(scn, mode="live", progress=progress, guard_memory=False)
        if echo:
            echo(f"  {rate:g} req/s: sim ...")
        sim = run_scenario(scn, mode="sim", progress=progress, guard_memory=False)
        ls, ss = _stats(live), _stats(sim)
        lb, sb = first_to_give_out(live.manifest["resources"]), first_to_give_out(sim.manifest["resources"])
        for op in OPS:
            lo, so = ls[op], ss[op]
            rows.append({
                "rate": float(rate), "op": op, "n_live": int(lo["n"]), "n_sim": int(so["n"]),
                "live_p50": lo["p50"], "sim_p50": so["p50"], "live_p99": lo["p99"], "sim_p99": so["p99"],
                "live_errors": lo["errors"], "sim_errors": so["errors"],
                "live_healthy": healthy(lo["p99"], lo["errors"]),
                "sim_healthy": healthy(so["p99"], so["errors"]),
                "live_busiest": f"{lb[0]} {lb[1]:.0%}" if lb else "n/a",
                "sim_busiest": f"{sb[0]} {sb[1]:.0%}" if sb else "n/a",
            })
    df = pd.DataFrame(rows)
    verdicts = {}
    for rate, g in df.groupby("rate", sort=False):
        if (g["live_healthy"] != g["sim_healthy"]).any():
            verdicts[rate] = "disagree"
        else:
            verdicts[rate] = "both healthy" if g["live_healthy"].all() else "both overloaded"
    df["verdict"] = df["rate"].map(verdicts)
    return df


def _ms(v: float) -> str:
    return "n/a" if v != v else (f"{v * 1e3:.2f}ms" if v < 1 else f"{v:.2f}s")


def format_load_table(df: pd.DataFrame) -> str:
    """The validation table: per rate and operation, live vs sim, with the verdict per rate."""
    head = (f"{'rate':>6} {'op':10} {'n live/sim':>11} {'live p50':>9} {'sim p50':>9} {'live p99':>9} "
            f"{'sim p99':>9} {'live err':>8} {'sim err':>8}  healthy live/sim  busiest live | sim")
    lines = [head]
    for rate, g in df.groupby("rate", sort=False):
        for r in g.itertuples(index=False):
            lines.append(
                f"{r.rate:6g} {r.op:10} {r.n_live:>5}/{r.n_sim:<5} {_ms(r.live_p50):>9} {_ms(r.sim_p50):>9} "
                f"{_ms(r.live_p99):>9} {_ms(r.sim_p99):>9} {r.live_errors:8.1%} {r.sim_errors:8.1%}  "
                f"{'yes' if r.live_healthy else 'NO':>7}/{'yes' if r.sim_healthy else 'NO':<8} "
                f"{r.live_busiest} | {r.sim_busiest}")
        lines.append(f"{'':6} verdict at {rate:g} req/s: {g['verdict'].iloc[0]}")
    return "\n".join(lines)


__all__ = ["HEALTHY_ERRORS", "HEALTHY_P99", "format_load_table", "healthy", "validate_load"]
