"""run_scenario: drive a workload through one coordinator, in SimPy virtual time or live, and measure it.

Only this module chooses the runtime: sim mode is one ``simpy.Environment`` with a ``SimPyRuntime``
and simulated backends; live mode is an ``AsyncioRuntime`` against real servers (started here when
the scenario gives no URL). Everything random comes from the scenario's seed, and the coordinator is
named ``coord-0``, so a sim run with the same seed produces identical frames. Ctrl-C stops the run
and keeps everything measured so far (the manifest says ``interrupted: true``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import simpy

from mcastlab import __version__
from mcastlab.coordinator import Coordinator
from mcastlab.errors import BackendError
from mcastlab.measure.frames import build
from mcastlab.measure.recorder import Recorder
from mcastlab.measure.store import RunResult, git_revision, jsonable, machine, package_versions, save_run
from mcastlab.measure.targets import evaluate
from mcastlab.results import ExpirationEvent
from mcastlab.runtime import AsyncioRuntime, SimPyRuntime
from mcastlab.runtime._asyncio import run_blocking
from mcastlab.workloads.backends import Backends, live_backends, sim_backends
from mcastlab.workloads.context import Context, stream_rng
from mcastlab.workloads.faults import Outage
from mcastlab.workloads.scenario import Scenario, load_scenario


class _NoBar:
    """Stands in for a tqdm bar when progress is off (importing tqdm.auto warns in notebooks)."""

    n: float = 0.0

    def __init__(self, total: float) -> None:
        self.total = total

    def update(self, n: float = 1) -> None:
        self.n += n

    def close(self) -> None:
        return None


def _progress(total: float, desc: str, enabled: bool) -> Any:
    if not enabled:
        return _NoBar(round(total, 3))
    from tqdm.auto import tqdm

    return tqdm(
        total=round(total, 3),
        desc=desc,
        unit="s",
        file=sys.stderr,
        disable=not enabled,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]",
        leave=False,
    )


def _context(scn: Scenario, coord: Coordinator, rec: Recorder, tol: float, yield_every: int) -> Context:
    m = scn.measure
    ctx = Context(
        coordinator=coord,
        seed=scn.seed,
        recorder=rec,
        duration=scn.duration,
        ttl=scn.ttl,
        agents=m.agents,
        tol=tol,
        probe_interval=m.probe_interval,
        probe_max=m.probe_max,
        yield_every=yield_every,
    )
    origin = ctx.origin

    def on_event(ev: Any) -> None:
        if type(ev) is ExpirationEvent:
            rec.expiration(ev.identity, ev.deadline - origin, ev.t_detected - origin, ev.coordinator)

    coord.add_listener(on_event)
    scn.workload.setup(ctx)
    for fault in scn.faults:
        fault.setup(ctx)
    ctx.sample_population(m.population_interval)
    return ctx


def _run_sim(scn: Scenario, rec: Recorder, progress: bool) -> tuple[Context, Backends, bool]:
    env = simpy.Environment()
    rt = SimPyRuntime(env)
    backends = sim_backends(scn, stream_rng(scn.seed, "sim-backends"))
    coord = Coordinator(
        scn.config,
        registry=backends.registry,
        messaging=backends.messaging,
        durability=backends.durability,
        runtime=rt,
        name="coord-0",
    )
    rt.run(coord.open())
    ctx = _context(scn, coord, rec, scn.measure.tolerance or 0.0, 0)
    rt.spawn(ctx.run_loop(scn.duration))
    end = ctx.origin + scn.duration + scn.drain
    bar = _progress(scn.duration + scn.drain, f"{scn.name} [sim]", progress)
    interrupted = False
    try:
        step = max((end - env.now) / 200, 1e-3)
        while env.now < end - 1e-12:
            env.run(until=min(end, env.now + step))
            bar.update(round(env.now - ctx.origin - bar.n, 3))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    ctx.stop()
    return ctx, backends, interrupted


def _run_live(scn: Scenario, rec: Recorder, progress: bool, run_id: str) -> tuple[Context, Backends, bool]:
    state: dict[str, Any] = {}
    with live_backends(scn, run_id) as backends:
        rt = AsyncioRuntime()

        async def main() -> None:
            state["loop"] = asyncio.get_running_loop()
            state["task"] = asyncio.current_task()
            coord = Coordinator(
                scn.config,
                registry=backends.registry,
                messaging=backends.messaging,
                durability=backends.durability,
                runtime=rt,
                name="coord-0",
            )
            await coord.open()
            ctx = state["ctx"] = _context(
                scn, coord, rec, 0.01 if scn.measure.tolerance is None else scn.measure.tolerance, 64
            )
            for fault in scn.faults:
                if isinstance(fault, Outage) and fault.target in ("registry", "messaging"):
                    server = backends.servers.get("redis" if fault.target == "registry" else "nats")
                    if server is not None:
                        ctx.at(fault.at, lambda _t, s=server: s.pause())
                        ctx.at(fault.at + fault.duration, lambda _t, s=server: s.resume())
            bar = _progress(scn.duration + scn.drain, f"{scn.name} [live]", progress)

            async def ticker() -> None:
                while True:
                    bar.update(round(min(ctx.now(), bar.total) - bar.n, 3))
                    await rt.sleep(0.5)

            tick = rt.spawn(ticker())
            try:
                await ctx.run_loop(scn.duration)
                end = scn.duration + scn.drain
                while ctx.now() < end:
                    await rt.sleep(min(0.1, end - ctx.now()))
            finally:
                state["t_end"] = ctx.now()
                tick.cancel()
                bar.close()
                ctx.stop()
                for s in backends.servers.values():
                    s.resume()
                await coord.close()

        interrupted = False
        try:
            run_blocking(main(), state=state)
        except KeyboardInterrupt:
            interrupted = True
    if "ctx" not in state:
        raise BackendError("the live run stopped before it started (see the error above)")
    return state["ctx"], backends, interrupted


def run_scenario(
    scenario: Scenario | str | Path | dict[str, Any],
    *,
    mode: str | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
) -> RunResult:
    """Run a scenario (object, YAML path or dict); return its frames; save them to ``out`` if given."""
    if isinstance(scenario, Scenario):
        scn = scenario if not overrides else load_scenario(scenario.raw, overrides)
    else:
        scn = load_scenario(scenario, overrides)
    mode = mode or scn.mode
    if mode not in ("sim", "live"):
        from mcastlab.errors import ScenarioError

        raise ScenarioError(
            f"mode must be 'sim' or 'live', got {mode!r}. Fix: --mode sim or --mode live", key="mode"
        )
    started = datetime.now(UTC)
    run_id = f"{scn.name}-{mode}-s{scn.seed}-{started.strftime('%Y%m%dT%H%M%S')}"
    rec = Recorder()
    wall0 = time.perf_counter()
    if mode == "sim":
        ctx, backends, interrupted = _run_sim(scn, rec, progress)
    else:
        ctx, backends, interrupted = _run_live(scn, rec, progress, run_id)
    wall = time.perf_counter() - wall0
    t_end = ctx.now()
    truth = ctx.truth
    truth.close(t_end, settle=scn.config.sweep_interval + 1.0 + 20 * ctx.tol)
    frames = build(
        rec, truth.names, run=run_id, scenario=scn.name, mode=mode, backend=backends.label, warmup=scn.warmup
    )
    frames["targets"] = evaluate(scn.all_targets, frames, warmup=scn.warmup, run=run_id)
    names = truth.names
    manifest = {
        "run": run_id,
        "scenario": scn.name,
        "source": scn.source,
        "description": scn.description,
        "mode": mode,
        "seed": scn.seed,
        "duration": scn.duration,
        "warmup": scn.warmup,
        "drain": scn.drain,
        "backend": backends.label,
        "backend_versions": {**package_versions(), **backends.versions},
        "mcastlab_version": __version__,
        "git_revision": git_revision(),
        "machine": machine(),
        "started_at": started.isoformat(timespec="seconds"),
        "wall_s": round(wall, 3),
        "end_s": t_end,
        "interrupted": interrupted,
        "counts": {
            "identities": len(names),
            "ops": len(frames["ops"]),
            "multicasts": len(frames["multicasts"]),
            "deliveries": len(frames["deliveries"]),
            "expirations": len(frames["expirations"]),
            "deaths": len(ctx.deaths),
            "expected_expirations": len(truth.expected_expiries),
            "ambiguous_expirations": len(truth.ambiguous),
            "agents": len(rec.agents),
            "agent_errors": ctx.agent_errors,
            "registry_anomalies": truth.anomalies,
        },
        "reference": scn.reference,
        "scenario_config": jsonable(scn.raw),
    }
    result = RunResult(
        frames,
        manifest,
        truth={
            "deaths": [names[c] for c in ctx.deaths],
            "expected_expirations": [(names[c], d) for c, d in truth.expected_expiries],
            "ambiguous": sorted(names[c] for c in truth.ambiguous),
        },
    )
    if out is not None:
        save_run(result, out)
    return result


__all__ = ["run_scenario"]
