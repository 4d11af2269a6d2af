"""The calibration workload: every operation measured at known sizes, live or in sim, with its CPU time.

Ordinary coordinator code, so the same function measures live servers (asyncio) and the simulation
(SimPy). At two population sizes it times register, heartbeat, enumerate (every live identity), count
and multicast by an exact filter (ids only), multicast in publish mode with and without in-process
inbox agents listening, and multicast in ack mode; then a batch of concurrent registers. Around each
phase it reads the process's CPU seconds (``cpu_seconds``: ``time.process_time`` live, the simulated
CPU's busy time in sim) and the registry server's busy time (``server_usec``), so the fit can split
each operation's latency into client CPU (per call and per item), server time and the rest (network
and scheduling).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mcastlab.workloads.agents import AgentPool, DeliveryLog

EXACT = {"status": "online"}  # matches everyone, through an exact index plan: the ids-only path


async def run_workload(
    coord: Any, *, n: int, n_small: int, reps: int, batch: int, seed: int,
    server_usec: Callable[[], float] | None = None, cpu_seconds: Callable[[], float] | None = None,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Measure each operation; return ``(latencies by label, extras)``; works under any runtime.

    ``extras["server_s"]``: the registry server's busy seconds per operation of a phase;
    ``extras["cpu"]``: one ``(kind, calls, items, cpu_seconds)`` sample per phase, for the CPU fit.
    """
    rt = coord.runtime
    rng = np.random.default_rng(seed)
    lat: dict[str, list[float]] = {}
    extras: dict[str, Any] = {"server_s": {}, "cpu": []}
    marks: dict[str, tuple[float | None, float | None]] = {}

    async def timed(label: str, aw: Any) -> Any:
        t0 = rt.now()
        out = await aw
        lat.setdefault(label, []).append(rt.now() - t0)
        return out

    def begin(label: str) -> None:
        marks[label] = (None if server_usec is None else float(server_usec()),
                        None if cpu_seconds is None else float(cpu_seconds()))

    def end(label: str, kind: str, calls: int, items: int = 0) -> None:
        srv, cpu = marks.pop(label)
        if srv is not None and server_usec is not None and calls:
            extras["server_s"][label] = (float(server_usec()) - srv) / 1e6 / calls
        if cpu is not None and cpu_seconds is not None and calls:
            extras["cpu"].append((kind, calls, items, float(cpu_seconds()) - cpu))

    names = [f"id-{i:05d}" for i in range(n)]
    pool = AgentPool(coord, DeliveryLog())
    for phase, size in enumerate((n_small, n)):
        first = n_small if phase else 0
        begin(f"register_{phase}")
        for name in names[first:size]:  # grow the population to `size`
            await timed("register", coord.register(name, {"status": "online", "phase": phase}))
        end(f"register_{phase}", "register", size - first)
        begin(f"enumerate_{size}")
        for _ in range(reps):  # no filter: every live identity (the same in every backend)
            await timed(f"enumerate_{size}", coord.enumerate())
        end(f"enumerate_{size}", "query", reps, reps * size)
        begin(f"count_{size}")
        for _ in range(reps):
            await timed(f"count_{size}", coord.count(EXACT))
        end(f"count_{size}", "ids", reps, reps * size)
        fan = extras.setdefault(f"fanout_bare_{size}", [])
        begin(f"multicast_bare_{size}")
        for _ in range(reps):  # nobody listens in this process: the fan-out's own work
            res = await timed(f"multicast_bare_{size}", coord.multicast(EXACT, b"cal", mode="publish"))
            fan.append(res.duration_s - res.enumerate_s)
        await rt.sleep(0.05)
        end(f"multicast_bare_{size}", "multicast", reps, reps * size)
        pool.start(names[first:size], "device")
        await rt.sleep(0.5)
        for mode in ("publish", "ack"):
            before = len(pool.log)
            fan = extras.setdefault(f"fanout_{mode}_{size}", [])
            begin(f"multicast_{mode}_{size}")
            for _ in range(reps):
                res = await timed(f"multicast_{mode}_{size}", coord.multicast(None, b"cal", mode=mode))
                fan.append(res.duration_s - res.enumerate_s)
                if res.delivered != size:
                    extras["undelivered"] = extras.get("undelivered", 0) + size - res.delivered
            await rt.sleep(0.05)
            if mode == "publish":  # the same fan-out, now also received by this process's agents
                end(f"multicast_{mode}_{size}", "multicast_agents", reps, reps * size)
            else:
                marks.pop(f"multicast_{mode}_{size}")
            extras[f"delivery_{mode}_{size}"] = pool.log.latency_s[before:].tolist()
        pool.stop()
        await rt.sleep(0.05)
    begin("register_2")
    extra_regs = rng.integers(0, n, max(0, reps - n)).tolist()
    for k in extra_regs:  # re-register (upsert) to reach `reps` samples
        await timed("register", coord.register(names[k], {"status": "online", "phase": 2}))
    end("register_2", "register", len(extra_regs))
    _pool_server_register(extras, weights=[n_small, n - n_small, len(extra_regs)])
    begin("heartbeat")
    for k in rng.integers(0, n, reps).tolist():
        await timed("heartbeat", coord.heartbeat(names[k]))
    end("heartbeat", "heartbeat", reps)
    begin("register_batch")
    rounds = max(3, reps // 50)
    for r in range(rounds):
        extra = [f"batch-{r}-{i:05d}" for i in range(batch)]
        await timed("register_batch", rt.gather(*[coord.register(x, {"grp": "batch"}) for x in extra]))
        await rt.gather(*[coord.unregister(x) for x in extra])
    end("register_batch", "register_batch", rounds * batch * 2)
    await _wide_fanout(coord, begin, end, batch=batch, reps=max(5, reps // 20))
    extras["wide_n"] = WIDE
    return lat, extras


WIDE = 2000  # recipients of the wide fan-out that pins the CPU cost per message


async def _wide_fanout(coord: Any, begin: Callable[[str], None], end: Callable[..., None], *, batch: int,
                       reps: int) -> None:
    """Enumerate, count and a bare publish multicast over ``WIDE`` identities: per-row, per-id and
    per-message CPU costs are slopes, and between answers of 10 and 100 they are a few hundred µs against a
    fixed cost of about as much, so timing noise swamps them; at 2,000 the items are most of the work
    (CPU samples only, no latencies)."""
    rt = coord.runtime
    names = [f"wide-{i:05d}" for i in range(WIDE)]
    for k in range(0, WIDE, batch):
        await rt.gather(*[coord.register(x, {"wide": True}) for x in names[k:k + batch]])
    wide = {"wide": True}
    reads = (("enumerate_wide", "query", coord.enumerate), ("count_wide", "ids", coord.count))
    for label, kind, call in reads:
        begin(label)  # likewise the per-row and per-id costs of reading an answer
        for _ in range(reps):
            await call(wide)
        end(label, kind, reps, reps * WIDE)
    begin("multicast_wide")
    for _ in range(reps):
        await coord.multicast(wide, b"cal", mode="publish")
    await rt.sleep(0.05)
    end("multicast_wide", "multicast", reps, reps * WIDE)
    for k in range(0, WIDE, batch):
        await rt.gather(*[coord.unregister(x) for x in names[k:k + batch]])


def generator_cpu(n: int = 20_000) -> float:
    """CPU seconds the live load generator spends per operation it issues, apart from the operation:
    scheduling a callback, spawning the operation's task and recording its row (asyncio, this process)."""
    import asyncio
    import heapq
    import time

    from mcastlab.measure.recorder import Recorder

    rec = Recorder()

    async def op(k: int) -> None:
        rec.op("register", "calibration", k, 0.0, 0.0, 0.0, True)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        heap = [(float(k), k) for k in range(n)]
        heapq.heapify(heap)
        tasks = []
        t0 = time.process_time()
        while heap:
            _, k = heapq.heappop(heap)
            tasks.append(loop.create_task(op(k)))
            if len(tasks) >= 512:
                await asyncio.gather(*tasks)
                tasks.clear()
        await asyncio.gather(*tasks)
        return (time.process_time() - t0) / n

    return asyncio.run(main())


def recorder_cpu(n: int = 2000, reps: int = 20) -> float:
    """CPU seconds the load generator spends per target of a multicast, recording its statuses and latencies
    and auditing it against the ground truth (the work ``_ops._multicast`` does after the multicast
    returns), fitted from two sizes so the fixed part drops out."""
    import time

    from mcastlab.filters import compile_filter
    from mcastlab.measure.recorder import Recorder
    from mcastlab.results import MulticastResult
    from mcastlab.workloads.truth import Truth

    truth = Truth()
    names = [f"device-{i:06d}" for i in range(n)]
    for name in names:
        code = truth.add(name, {"status": "online"})
        truth.registered_ok(code, 0.0, 1e9, truth.meta[code])
    flt = compile_filter({"status": "online"})

    def one(k: int) -> float:
        res = MulticastResult(f"m{k}", "publish", k, k, 0, dict.fromkeys(names[:k], "delivered"),
                              dict.fromkeys(names[:k], 1e-3), 0.0, 1e-3, 1e-3)
        rec = Recorder()
        t0 = time.process_time()
        for _ in range(reps):
            snap = truth.snapshot(flt, 0.0)
            codes = truth.codes_of(res.statuses)
            audit = truth.audit(snap, 1e-3, codes)
            rec.multicast(res, stream="s", filter_text=flt.text, t_start=0.0, origin=0.0,
                          ident_of=truth.index, audit=audit, codes=codes)
        return (time.process_time() - t0) / reps

    small, big = n // 10, n
    return max(0.0, (one(big) - one(small)) / (big - small))


IDLE_GAPS = (0.0005, 0.002, 0.005, 0.02, 0.05)  # seconds of idleness the wake-up tables are measured at


async def measure_idle(coord: Any, *, reps: int = 60, gaps: Sequence[float] = IDLE_GAPS,
                       cpu_seconds: Callable[[], float] | None = None) -> dict[str, Any]:
    """What idleness costs this process (``sim/cpu.py``: the ``wake`` and ``timer`` tables), live.

    ``wake[gap]``: how much longer a register takes after sleeping ``gap`` than back to back;
    ``timer[gap]``: how late the workload scheduler (:class:`Context`) runs callbacks spaced ``gap`` apart;
    ``wake_cpu[gap]`` (with ``cpu_seconds``): how much more process CPU a register uses after sleeping
    ``gap`` than back to back (the sleep's own wake-up included).
    """
    from mcastlab.measure.recorder import Recorder
    from mcastlab.workloads.context import Context

    rt = coord.runtime
    base = []
    for i in range(reps):
        t0 = rt.now()
        await coord.register(f"idle-{i}", {"k": 1})
        base.append(rt.now() - t0)
    ref = float(np.median(base))
    cpu = cpu_seconds or (lambda: 0.0)
    c0 = cpu()
    for i in range(reps):  # back to back again: the same re-registers as after each gap below
        await coord.register(f"idle-{i}", {"k": 1})
    warm = (cpu() - c0) / reps
    wake: dict[float, list[float]] = {}
    timer: dict[float, list[float]] = {}
    wake_cpu: dict[float, float] = {}
    for gap in gaps:
        c0 = cpu()
        for i in range(reps):
            await rt.sleep(gap)
            t0 = rt.now()
            await coord.register(f"idle-{i}", {"k": 1})
            wake.setdefault(gap, []).append(rt.now() - t0 - ref)
        wake_cpu[gap] = (cpu() - c0) / reps - warm
        ctx = Context(coordinator=coord, seed=0, recorder=Recorder(), duration=1e9, ttl=None, agents="none")
        lags = timer.setdefault(gap, [])
        first = 0.02
        for k in range(reps):
            ctx.at(first + k * gap, lambda t, lags=lags, ctx=ctx: lags.append(ctx.now() - t))
        await ctx.run_loop(first + reps * gap + 1.0)
    return {"wake": wake, "timer": timer, **({"wake_cpu": wake_cpu} if cpu_seconds is not None else {})}


def _pool_server_register(extras: dict[str, Any], weights: list[int]) -> None:
    """One server time for register, weighted over the three register phases."""
    srv = extras["server_s"]
    regs = [srv.pop(f"register_{p}", None) for p in range(3)]
    known = [(r, w) for r, w in zip(regs, weights, strict=True) if r is not None and w]
    if known:
        srv["register"] = sum(r * w for r, w in known) / sum(w for _, w in known)


__all__ = ["EXACT", "IDLE_GAPS", "generator_cpu", "measure_idle", "recorder_cpu", "run_workload"]
