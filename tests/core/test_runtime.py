"""Runtimes: the same primitives behave alike on asyncio and in SimPy virtual time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mcastlab.errors import Cancelled, OperationTimeoutError, RuntimeMisuseError
from mcastlab.runtime import Mailbox, Runtime, SimPyRuntime


def test_sleep_gather_and_order(rt: Runtime) -> None:
    async def job(i: int) -> int:
        await rt.sleep(0.001 * (3 - i))
        return i * 10

    async def body() -> Any:
        t0 = rt.now()
        out = await rt.gather(job(0), job(1), job(2))
        return out, rt.now() - t0

    out, took = rt.run(body())
    assert out == [0, 10, 20]
    assert took >= 0.003 - 1e-6


def test_wait_for_times_out_and_passes_results(rt: Runtime) -> None:
    async def slow() -> str:
        await rt.sleep(10)
        return "late"

    async def fast() -> str:
        await rt.sleep(0.001)
        return "ok"

    async def body() -> Any:
        with pytest.raises(OperationTimeoutError):
            await rt.wait_for(slow(), 0.01)
        with pytest.raises(TimeoutError):
            await rt.wait_for(slow(), 0.01)
        return await rt.wait_for(fast(), 1)

    assert rt.run(body()) == "ok"


def test_spawn_cancel_and_await(rt: Runtime) -> None:
    log: list[str] = []

    async def forever() -> None:
        while True:
            await rt.sleep(0.001)
            log.append("tick")

    async def value() -> int:
        await rt.sleep(0.001)
        return 7

    async def body() -> Any:
        t = rt.spawn(forever())
        v = rt.spawn(value())
        while len(log) < 3:  # (a loaded machine may tick late: wait for the ticks, not a fixed time)
            await rt.sleep(0.001)
        t.cancel()
        n = len(log)
        await rt.sleep(0.01)
        return n, len(log), await v

    n_at_cancel, n_later, v = rt.run(body())
    assert n_at_cancel >= 3
    assert n_later == n_at_cancel
    assert v == 7


def test_exceptions_propagate_through_gather(rt: Runtime) -> None:
    async def bad() -> None:
        await rt.sleep(0)
        raise ValueError("boom")

    async def body() -> None:
        await rt.gather(rt.sleep(0), bad())

    with pytest.raises(ValueError, match="boom"):
        rt.run(body())


def test_mailbox_fifo_and_timeout(rt: Runtime) -> None:
    async def body() -> Any:
        box: Mailbox[int] = Mailbox(rt)

        async def producer() -> None:
            for i in range(3):
                await rt.sleep(0.001)
                box.put(i)

        rt.spawn(producer())
        got = [await box.get(timeout=1) for _ in range(3)]
        from mcastlab.errors import InboxTimeoutError

        with pytest.raises(InboxTimeoutError):
            await box.get(timeout=0.005)
        return got

    assert rt.run(body()) == [0, 1, 2]


def test_virtual_time_is_the_only_clock(sim: SimPyRuntime) -> None:
    async def body() -> float:
        await sim.sleep(3600)
        return sim.now()

    assert sim.run(body()) == 3600.0
    assert sim.env.now == 3600.0


def test_simpy_refuses_asyncio_awaitables(sim: SimPyRuntime) -> None:
    async def body() -> None:
        await asyncio.sleep(0.01)

    with pytest.raises(RuntimeMisuseError, match="only simulated backends"):
        sim.run(body())


def test_simpy_deadlock_is_explained(sim: SimPyRuntime) -> None:
    async def body() -> None:
        await sim.event().wait()

    with pytest.raises(RuntimeMisuseError, match="ran out of events"):
        sim.run(body())


def test_simpy_cancel_raises_cancelled_inside(sim: SimPyRuntime) -> None:
    seen: list[str] = []

    async def victim() -> None:
        try:
            await sim.sleep(100)
        except Cancelled:
            seen.append("cancelled")
            raise

    async def body() -> None:
        t = sim.spawn(victim())
        await sim.sleep(1)
        t.cancel()
        await sim.sleep(1)
        assert t.done()

    sim.run(body())
    assert seen == ["cancelled"]


def test_asyncio_run_inside_a_loop_is_explained() -> None:
    from mcastlab.runtime import AsyncioRuntime

    rt = AsyncioRuntime()

    async def outer() -> None:
        async def inner() -> None:
            return None

        with pytest.raises(RuntimeMisuseError, match="await"):
            rt.run(inner())

    asyncio.run(outer())
