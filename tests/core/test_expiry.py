"""TTL expiry in virtual time: exact visibility at the deadline, one expiration event each, lag."""

from __future__ import annotations

from typing import Any

import pytest

from mcastlab import Config, Coordinator, ExpirationEvent
from mcastlab.errors import UnknownIdentityError
from mcastlab.runtime import Runtime, SimPyRuntime


def expirations(c: Coordinator) -> list[ExpirationEvent]:
    got: list[ExpirationEvent] = []
    c.add_listener(lambda e: got.append(e) if isinstance(e, ExpirationEvent) else None)
    return got


def test_ttl_60_visible_at_59_9_gone_at_60_1_counted_once(sim: SimPyRuntime) -> None:
    async def body() -> Any:
        async with Coordinator(runtime=sim, name="c") as c:
            events = expirations(c)
            await c.register("dev", {"status": "online"}, ttl=60)
            await sim.sleep(59.9)
            at_59_9 = ([i.id for i in await c.enumerate()], await c.count({"status": "online"}))
            mc_before = await c.multicast({"status": "online"}, b"x")
            await sim.sleep(0.2)
            at_60_1 = ([i.id for i in await c.enumerate()], await c.count({"status": "online"}))
            mc_after = await c.multicast({"status": "online"}, b"x")
            await sim.sleep(600)
            return at_59_9, at_60_1, mc_before.targeted, mc_after.targeted, events, c

    at_59_9, at_60_1, before, after, events, c = sim.run(body())
    assert at_59_9 == (["dev"], 1)
    assert at_60_1 == ([], 0)
    assert (before, after) == (1, 0)
    assert len(events) == 1
    assert events[0].identity == "dev"
    assert events[0].deadline == pytest.approx(60.0)
    assert 0 <= events[0].lag_s <= Config().sweep_resolution + 1e-9
    assert c.expired_total == 1
    assert c.metrics.value("multicast_registry_ttl_expiration_total") == 1


def test_dead_at_the_deadline_even_before_any_sweep(sim: SimPyRuntime) -> None:
    cfg = Config(sweep_interval=10_000, sweep_resolution=10_000)  # sweeper effectively asleep

    async def body() -> Any:
        async with Coordinator(cfg, runtime=sim) as c:
            await c.register("dev", {}, ttl=5)
            await sim.sleep(5.0)
            return await c.count(), c.expired_total

    assert sim.run(body()) == (0, 0)


def test_reregister_restarts_ttl_and_heartbeat_extends(sim: SimPyRuntime) -> None:
    async def body() -> Any:
        async with Coordinator(runtime=sim, name="c") as c:
            events = expirations(c)
            await c.register("a", {"v": 1}, ttl=10)
            await c.register("b", {"v": 1}, ttl=10)
            await sim.sleep(8)
            await c.register("a", {"v": 2}, ttl=10)  # deadline 18
            await c.heartbeat("b", ttl=4)  # deadline 12
            await sim.sleep(3)  # t=11
            alive_11 = [i.id for i in await c.enumerate()]
            await sim.sleep(2)  # t=13
            alive_13 = [i.id for i in await c.enumerate()]
            with pytest.raises(UnknownIdentityError):
                await c.heartbeat("b")  # expired: must register again
            await sim.sleep(10)  # t=23
            return alive_11, alive_13, [(e.identity, e.deadline) for e in events]

    alive_11, alive_13, events = sim.run(body())
    assert alive_11 == ["a", "b"]
    assert alive_13 == ["a"]
    assert events == [("b", pytest.approx(12.0)), ("a", pytest.approx(18.0))]


def test_default_ttl_from_config_and_none_means_forever(sim: SimPyRuntime) -> None:
    async def body(cfg: Config) -> Any:
        async with Coordinator(cfg, runtime=sim) as c:
            rec = await c.register("x", {})
            await sim.sleep(1_000_000)
            return rec.expires_at, await c.count()

    slow = {"sweep_interval": 3600.0}
    assert sim.run(body(Config(default_ttl=30, **slow))) == (pytest.approx(sim.now() - 1_000_000 + 30), 0)
    assert sim.run(body(Config(default_ttl=None, **slow))) == (None, 1)


def test_many_deadlines_each_expire_exactly_once(sim: SimPyRuntime) -> None:
    async def body() -> Any:
        async with Coordinator(Config(max_identities=None, sweep_batch=7), runtime=sim, name="c") as c:
            events = expirations(c)
            for i in range(500):
                await c.register(f"d{i}", {"i": i}, ttl=1 + (i % 37) * 0.5)
                if i % 50 == 0:
                    await sim.sleep(0.3)
            await sim.sleep(100)
            return events, await c.count()

    events, left = sim.run(body())
    assert left == 0
    ids = [e.identity for e in events]
    assert len(ids) == 500 and len(set(ids)) == 500
    assert all(e.lag_s >= 0 for e in events)


def test_two_coordinators_on_one_registry_count_each_expiry_once(rt: Runtime) -> None:
    from mcastlab.backends import MemoryMessaging, MemoryRegistry

    reg, msg = MemoryRegistry(), MemoryMessaging()
    cfg = Config(sweep_interval=0.02, sweep_resolution=0.001)

    async def body() -> Any:
        async with Coordinator(cfg, runtime=rt, registry=reg, messaging=msg, name="a") as a, \
                Coordinator(cfg, runtime=rt, registry=reg, messaging=msg, name="b") as b:
            for i in range(50):
                await (a if i % 2 else b).register(f"x{i}", {}, ttl=0.05)
            await rt.sleep(0.3)
            return a.expired_total + b.expired_total, await a.count()

    assert rt.run(body()) == (50, 0)


def test_a_lapsed_unswept_lifetime_is_still_reported_when_the_name_reregisters(sim: SimPyRuntime) -> None:
    cfg = Config(sweep_interval=3600, sweep_resolution=3600)  # the sweeper stays asleep past the deadline

    async def body() -> Any:
        async with Coordinator(cfg, runtime=sim, name="c") as c:
            events = expirations(c)
            await c.register("dev", {"v": 1}, ttl=10)
            await sim.sleep(15)  # dead at t=10, not swept
            await c.register("dev", {"v": 2}, ttl=100)  # a new lifetime
            await c.sweep()
            await c.sweep()
            return [(e.identity, e.deadline) for e in events], c.expired_total, c.registered, await c.count()

    events, total, gauge, alive = sim.run(body())
    assert events == [("dev", pytest.approx(10.0))]
    assert (total, gauge, alive) == (1, 1, 1)


def test_without_auto_sweep_expiries_wait_for_an_explicit_sweep(sim: SimPyRuntime) -> None:
    async def body() -> Any:
        async with Coordinator(Config(auto_sweep=False), runtime=sim) as c:
            await c.register("dev", {}, ttl=1)
            await sim.sleep(10)
            before = c.expired_total, await c.count()
            return before, await c.sweep(), c.expired_total

    assert sim.run(body()) == ((0, 0), 1, 1)
