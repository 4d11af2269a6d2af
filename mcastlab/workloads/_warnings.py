"""Warnings about what a run could not observe: it ended before expected events could happen.

A run shorter than its deaths window injects fewer deaths than planned; a death whose TTL runs past the
end can never be seen to expire; a multicast stream whose rate expects less than one multicast in the
measured window says nothing about multicasts. The summary prints these instead of letting a quiet
"0 expected" pass for a result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mcastlab.workloads.context import Context
    from mcastlab.workloads.scenario import Scenario


def run_warnings(scn: Scenario, frames: Mapping[str, pd.DataFrame], ctx: Context | None,
                 t_end: float) -> list[str]:
    """Human-readable warnings (empty when the run saw everything it was set up to show)."""
    out: list[str] = []
    wl = scn.workload
    planned = wl.planned_deaths()
    deaths = list(ctx.deaths) if ctx is not None else []
    if planned and len(deaths) < planned:
        out.append(f"{planned - len(deaths):,} of {planned:,} planned deaths were not injected: the run "
                   f"ended at {t_end:,.0f} s, before the deaths window ({_deaths_window(wl)}) closed; run "
                   "longer to see them")
    if deaths and ctx is not None:
        settle = scn.config.sweep_interval + 1.0
        deadlines = np.array([float(ctx.truth.deadline[c]) for c in deaths])
        late = deadlines > t_end - settle
        if late.any():
            need = float(deadlines[late].max() - t_end + settle)
            out.append(f"{int(late.sum()):,} of {len(deaths):,} injected deaths could not expire before the "
                       f"run ended (their TTL runs past {t_end:,.0f} s); run at least {need:,.0f} s longer "
                       "to observe their expirations")
    mc = frames["multicasts"]
    for stream, arrival in wl.multicast_streams().items():
        expected = arrival.expected(min(t_end, scn.duration), since=scn.warmup)
        seen = int((mc["stream"] == stream).sum()) if len(mc) else 0
        if 0 < expected < 1 and seen == 0:
            out.append(f"multicast stream {stream!r} expects {expected:.2f} multicasts in the measured "
                       f"{max(0.0, min(t_end, scn.duration) - scn.warmup):,.0f} s and none happened: "
                       "run longer or raise its rate to measure it")
    counts = frames["expirations"]
    if ctx is not None:
        expected_exp = len(ctx.truth.expected_expiries)
        if len(counts) < expected_exp:
            missing = expected_exp - len(counts)
            out.append(f"{missing:,} expirations the ground truth expects were not reported")
    t = frames["targets"]
    if len(t) and "verdict" in t:
        thin = t[t["verdict"] == "insufficient"]
        for r in thin.itertuples(index=False):
            out.append(f"target {r.metric!r} rests on {int(r.n):,} samples; it needs {int(r.min_samples):,} "
                       "to pass or fail: run longer")
    return out


def _deaths_window(wl: Any) -> str:
    d = getattr(wl, "deaths", None)
    return f"{d.start:,.0f}-{d.end:,.0f} s" if d is not None else "n/a"


__all__ = ["run_warnings"]
