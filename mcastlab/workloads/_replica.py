"""One coordinator replica of a live run, as a Dask task: :func:`run_replica` (see ``workloads.replicas``).

The task builds the scenario's backends on the shared servers (the same key and subject prefixes as every
other replica), opens coordinator ``coord-<index>``, sets the workload up with its :class:`Partition`,
says it is ready, waits for the run's shared origin (wall clock), runs its share and returns everything it
measured — also when it was stopped early or failed. Replicas talk through Dask's scheduler only: a queue
each for multicast reactions, a ready queue, a variable for the origin and an event for "stop now".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mcastlab.measure.recorder import Recorder
from mcastlab.measure.resources import CpuMeter
from mcastlab.workloads._journal import JournaledTruth
from mcastlab.workloads._partition import Partition

log = logging.getLogger("mcastlab.workloads.replica")
READY_TIMEOUT = 300.0  # seconds a replica waits for the others to be ready (big fleets take a while)
POLL_S = 0.05  # how often a replica looks for multicast reactions from the others


@dataclass(frozen=True)
class ReplicaSpec:
    """What replica ``index`` of ``count`` needs: the scenario (as data), where the servers are, the shared
    prefix token, and the names of the run's Dask queues, variable and event."""

    raw: dict[str, Any]
    index: int
    count: int
    urls: dict[str, Any]
    token: str
    names: dict[str, str]  # "bus" (queue prefix), "ready" (queue), "origin" (variable), "stop" (event)


@dataclass
class ReplicaResult:
    """What a replica measured and journaled (pickled back to the parent)."""

    index: int
    recorder: Recorder
    journal: list[tuple[Any, ...]]
    groups: list[dict[str, Any]]
    deaths: list[int]
    end_s: float = 0.0
    agent_errors: int = 0
    expired_total: int = 0
    resources: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    host: str = ""
    pid: int = 0


class DaskBus:
    """Multicast reactions between replicas: one Dask queue per replica; a thread feeds ours to the loop."""

    def __init__(self, prefix: str, index: int, count: int) -> None:
        from distributed import Queue

        self.queues = [Queue(f"{prefix}-{i}") for i in range(count)]
        self.mine = self.queues[index]
        self._closed = threading.Event()

    def publish(self, seq: int, t: float, codes: list[int]) -> None:
        for q in self.queues:
            q.put([seq, t, codes])

    def listen(self, loop: asyncio.AbstractEventLoop, part: Partition) -> threading.Thread:
        def run() -> None:
            # polled without a timeout: a Dask queue get that times out logs an error on the scheduler
            while not self._closed.wait(POLL_S):
                try:
                    batch = self.mine.get(batch=True)
                except Exception:  # the scheduler going away ends the run anyway
                    log.debug("reaction queue unreachable", exc_info=True)
                    continue
                for seq, t, codes in batch:
                    loop.call_soon_threadsafe(part.react, int(seq), float(t), list(codes))

        th = threading.Thread(target=run, name="mcastlab-reactions", daemon=True)
        th.start()
        return th

    def close(self) -> None:
        self._closed.set()


def run_replica(spec: ReplicaSpec) -> ReplicaResult:
    """The Dask task of one replica (see the module docstring)."""
    import os
    import socket

    from distributed import Event, Queue, Variable

    from mcastlab.coordinator import Coordinator
    from mcastlab.runtime import AsyncioRuntime
    from mcastlab.workloads._drive import record_expirations
    from mcastlab.workloads.backends import make_slot
    from mcastlab.workloads.context import Context
    from mcastlab.workloads.scenario import load_scenario

    scn = load_scenario(spec.raw)
    rec = Recorder()
    bus = DaskBus(spec.names["bus"], spec.index, spec.count)
    part = Partition(spec.index, spec.count, bus)
    stop_event, ready = Event(spec.names["stop"]), Queue(spec.names["ready"])
    origin_var = Variable(spec.names["origin"])
    out: dict[str, Any] = {}

    async def main() -> None:
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        assert task is not None
        registry = make_slot("registry", scn, spec.token, spec.urls)
        messaging = make_slot("messaging", scn, spec.token, spec.urls)
        durability = (make_slot("durability", scn, spec.token, spec.urls) if "durability" in scn.slots
                      else None)
        rt = AsyncioRuntime()
        coord = Coordinator(scn.config, registry=registry, messaging=messaging, durability=durability,
                            runtime=rt, name=f"coord-{spec.index}")
        await coord.open()
        m = scn.measure
        ctx = Context(coordinator=coord, seed=scn.seed, recorder=rec, duration=scn.duration, ttl=scn.ttl,
                      agents=m.agents, tol=0.01 if m.tolerance is None else m.tolerance,
                      probe_interval=m.probe_interval, probe_max=m.probe_max, yield_every=64,
                      partition=part, origin=time.time() + 3600.0)
        out["ctx"], out["coord"] = ctx, coord
        record_expirations(coord, rec, ctx)
        scn.workload.setup(ctx)
        for fault in scn.faults:
            fault.setup(ctx)
        ctx.sample_population(m.population_interval)
        listener = bus.listen(loop, part)
        stopper = _watch_stop(stop_event, loop, task)
        meter = CpuMeter({f"coordinator-{spec.index}": None})
        try:
            await asyncio.to_thread(ready.put, spec.index)
            ctx.origin = float(await asyncio.to_thread(origin_var.get, READY_TIMEOUT))
            meter.start()
            await ctx.run_loop(scn.duration)
            end = scn.duration + scn.drain
            while ctx.now() < end and ctx.failure is None:
                await rt.sleep(min(0.1, end - ctx.now()))
            if ctx.failure is not None:
                out["error"] = ctx.failure
        finally:
            out["resources"] = meter.stop()
            out["end"] = ctx.now()
            bus.close()
            stopper.set()
            ctx.stop()
            await coord.close()
            listener.join(1.0)

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        log.info("replica %d stopped before the end", spec.index)
    except Exception as exc:
        log.error("replica %d failed", spec.index, exc_info=True)
        out["error"] = exc
    ctx = out.get("ctx")
    err = out.get("error")
    if err is not None:  # tell the others: one replica failing ends the run
        with contextlib.suppress(Exception):
            stop_event.set()
    truth = ctx.truth if ctx is not None else None
    return ReplicaResult(
        index=spec.index, recorder=rec,
        journal=list(truth.journal) if isinstance(truth, JournaledTruth) else [],
        groups=[dict(g) for g in truth.groups] if truth is not None else [],
        deaths=[c for c in ctx.deaths if part.owns(c)] if ctx is not None else [],
        end_s=float(out.get("end", 0.0)), agent_errors=ctx.agent_errors if ctx is not None else 0,
        expired_total=out["coord"].expired_total if "coord" in out else 0,
        resources=out.get("resources", {}),
        error=None if err is None else f"{type(err).__name__}: {err}",
        host=socket.gethostname(), pid=os.getpid())


def _watch_stop(event: Any, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> threading.Event:
    """Cancel ``task`` when the run's stop event is set; set the returned flag to stop watching."""
    done = threading.Event()

    def run() -> None:
        while not done.is_set():
            try:
                if event.wait(timeout=0.5):
                    loop.call_soon_threadsafe(task.cancel)
                    return
            except Exception:  # the scheduler is gone: nothing left to wait for
                return

    threading.Thread(target=run, name="mcastlab-stop-watch", daemon=True).start()
    return done


__all__ = ["DaskBus", "ReplicaResult", "ReplicaSpec", "run_replica"]
