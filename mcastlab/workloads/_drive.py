"""Driving a scenario's workload through one coordinator, in SimPy virtual time or live.

Only this module chooses the runtime: sim mode is one ``simpy.Environment`` with a ``SimPyRuntime``
and simulated backends; live mode is an ``AsyncioRuntime`` against real servers (started here when
the scenario gives no URL, and always stopped on the way out). Both stop early, cleanly, when the
:class:`~mcastlab.workloads.interrupt.Interruption` asks, and both catch an unexpected exception so
that what was measured until then is kept (:attr:`Drive.error`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

import simpy

from mcastlab.coordinator import Coordinator
from mcastlab.measure.recorder import Recorder
from mcastlab.measure.resources import CpuMeter, simulated
from mcastlab.results import ExpirationEvent
from mcastlab.runtime import AsyncioRuntime, SimPyRuntime
from mcastlab.runtime._asyncio import run_blocking
from mcastlab.workloads.backends import Backends, live_backends, sim_backends
from mcastlab.workloads.cohort import FleetContext
from mcastlab.workloads.context import Context, stream_rng
from mcastlab.workloads.faults import server_pauses
from mcastlab.workloads.interrupt import Interruption
from mcastlab.workloads.scenario import Scenario

log = logging.getLogger("mcastlab.workloads.drive")


@dataclass
class Drive:
    """What a drive leaves behind: the context (truth, deaths), the backends, how far it got."""

    ctx: Context | None
    backends: Backends | None
    error: BaseException | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    recorder: Recorder | None = None  # replicas: the merged recorder (else the one the runner passed)


class _NoBar:
    """Stands in for a tqdm bar when progress is off (importing tqdm.auto warns in notebooks)."""

    n: float = 0.0

    def __init__(self, total: float) -> None:
        self.total = total

    def update(self, n: float = 1) -> None:
        self.n += n

    def close(self) -> None:
        return None


def progress_bar(total: float, desc: str, enabled: bool, unit: str = "s") -> Any:
    """A tqdm bar on stderr (seconds of run time by default), or a silent stand-in."""
    if not enabled:
        return _NoBar(round(total, 3))
    from tqdm.auto import tqdm

    fmt = "{l_bar}{bar}| {n:.0f}/{total:.0f} " + unit + " [{elapsed}<{remaining}]"
    return tqdm(total=round(total, 3), desc=desc, unit=unit, file=sys.stderr, bar_format=fmt, leave=False)


def _context(scn: Scenario, coord: Coordinator, rec: Recorder, tol: float, yield_every: int,
             backends: Backends | None = None, cohort: bool = False) -> Context:
    m = scn.measure
    cpu = getattr(backends.registry, "cpu", None) if backends is not None else None
    kw: dict[str, Any] = {"coordinator": coord, "seed": scn.seed, "recorder": rec, "duration": scn.duration,
                          "ttl": scn.ttl, "agents": m.agents, "tol": tol, "probe_interval": m.probe_interval,
                          "probe_max": m.probe_max, "yield_every": yield_every, "cpu": cpu}
    if cohort and backends is not None:
        ctx: Context = FleetContext(registry=backends.registry, messaging=backends.messaging, **kw)
    else:
        ctx = Context(**kw)
    record_expirations(coord, rec, ctx)
    scn.workload.setup(ctx)
    for fault in scn.faults:
        fault.setup(ctx)
    ctx.sample_population(m.population_interval)
    return ctx


def record_expirations(coord: Coordinator, rec: Recorder, ctx: Context) -> None:
    """Record the coordinator's expiration events, in seconds since ``ctx``'s origin (read when each
    arrives: a replica learns its origin after it is set up)."""

    def on_event(ev: Any) -> None:
        if type(ev) is ExpirationEvent:
            origin = ctx.origin
            rec.expiration(ev.identity, ev.deadline - origin, ev.t_detected - origin, ev.coordinator)

    coord.add_listener(on_event)


def drive_sim(scn: Scenario, rec: Recorder, *, progress: bool, stop: Interruption) -> Drive:
    """Run the scenario in virtual time, stepping so that a stop request is seen within 1/200 of it."""
    env = simpy.Environment()
    rt = SimPyRuntime(env)
    backends = sim_backends(scn, stream_rng(scn.seed, "sim-backends"))
    coord = Coordinator(scn.config, registry=backends.registry, messaging=backends.messaging,
                        durability=backends.durability, runtime=rt, name="coord-0")
    drive = Drive(None, backends)
    rt.run(coord.open())
    bar = progress_bar(scn.duration + scn.drain, f"{scn.name} [sim]", progress)
    try:
        cohort = scn.resolved_engine("sim") == "cohort"
        ctx = drive.ctx = _context(scn, coord, rec, scn.measure.tolerance or 0.0, 0, backends, cohort)
        rt.spawn(ctx.run_loop(scn.duration))
        end = ctx.origin + scn.duration + scn.drain
        step = max((end - env.now) / 200, 1e-3)
        while env.now < end - 1e-12 and not stop.requested and ctx.failure is None:
            env.run(until=min(end, env.now + step))
            bar.update(round(env.now - ctx.origin - bar.n, 3))
        drive.error = ctx.failure
    except KeyboardInterrupt:  # a KeyboardInterrupt not raised by our handler (e.g. a debugger's)
        stop.request("SIGINT")
    except Exception as exc:  # keep what was measured; the runner reports the error
        log.error("the simulated run failed at t=%.3f s", env.now, exc_info=True)
        drive.error = exc
    finally:
        bar.close()
    if drive.ctx is not None:
        drive.ctx.stop()
        span = max(env.now - drive.ctx.origin, 0.0)
        drive.resources = simulated(backends.busy_s(), span)
    return drive


def _lane_busy(registry: Any) -> tuple[float, int] | None:
    """A live Redis registry's auto-pipeline lane-seconds so far and its lanes (None for other registries)."""
    from mcastlab.backends.redis_registry import RedisRegistry

    return registry.lane_busy() if isinstance(registry, RedisRegistry) else None


def _add_lanes(report: dict[str, Any], registry: Any, before: tuple[float, int] | None) -> None:
    """Add the pipeline lanes' busy fraction to a live resource report, as the simulator reports it."""
    after = _lane_busy(registry)
    wall = report.get("wall_s") or 0.0
    if before is None or after is None or wall <= 0:
        return
    used, lanes = after[0] - before[0], after[1]
    report.setdefault("busy", {})["registry-lanes"] = round(used / (wall * lanes), 4)
    report.setdefault("cpu_s", {})["registry-lanes"] = round(used, 3)


def drive_live(scn: Scenario, rec: Recorder, *, progress: bool, stop: Interruption, run_id: str) -> Drive:
    """Run the scenario against real servers (started here if the scenario names none)."""
    state: dict[str, Any] = {}
    drive = Drive(None, None)
    with live_backends(scn, run_id) as backends:
        drive.backends = backends
        rt = AsyncioRuntime()
        meter = CpuMeter({"coordinator": None, **{f"{k}-server": s.pid for k, s in backends.servers.items()},
                          **{f"{k}-node{i}": n.pid for k, c in backends.clusters.items()
                             for i, n in enumerate(c.nodes)}})

        async def main() -> None:
            loop, task = asyncio.get_running_loop(), asyncio.current_task()
            assert task is not None
            state["loop"], state["task"] = loop, task
            stop.on_stop(lambda: loop.call_soon_threadsafe(task.cancel))
            coord = Coordinator(scn.config, registry=backends.registry, messaging=backends.messaging,
                                durability=backends.durability, runtime=rt, name="coord-0")
            await coord.open()
            tol = 0.01 if scn.measure.tolerance is None else scn.measure.tolerance
            ctx = drive.ctx = _context(scn, coord, rec, tol, 64)
            for at, action in server_pauses(scn.faults, backends.servers, backends.clusters):
                ctx.at(at, lambda _t, act=action: act())
            bar = progress_bar(scn.duration + scn.drain, f"{scn.name} [live]", progress)

            async def ticker() -> None:
                while True:
                    bar.update(round(min(ctx.now(), bar.total) - bar.n, 3))
                    await rt.sleep(0.5)

            tick = rt.spawn(ticker())
            lanes0 = _lane_busy(backends.registry)
            meter.start()
            try:
                await ctx.run_loop(scn.duration)
                end = scn.duration + scn.drain
                while ctx.now() < end and ctx.failure is None:
                    await rt.sleep(min(0.1, end - ctx.now()))
                if ctx.failure is not None:
                    drive.error = ctx.failure
            finally:
                drive.resources = meter.stop()
                _add_lanes(drive.resources, backends.registry, lanes0)
                tick.cancel()
                bar.close()
                ctx.stop()
                nodes = [n for c in backends.clusters.values() for n in c.nodes]
                for s in [*backends.servers.values(), *nodes]:
                    s.resume()
                await coord.close()

        try:
            run_blocking(main(), state=state)
        except KeyboardInterrupt:  # Ctrl-C in a notebook (run_blocking cancelled the task)
            stop.request("SIGINT")
        except asyncio.CancelledError:
            if not stop.requested:
                stop.request("SIGINT")
        except Exception as exc:
            log.error("the live run failed", exc_info=True)
            drive.error = exc
    return drive


__all__ = ["Drive", "drive_live", "drive_sim", "progress_bar"]
