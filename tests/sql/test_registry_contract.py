"""The registry contract for SqliteRegistry and PostgresRegistry, driven through the Coordinator.

Time comes from a manual clock (``AsyncioRuntime(clock=...)``) so deadlines are exact.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from mcastlab import Config, Coordinator, ExpirationEvent
from mcastlab.backends import MemoryRegistry
from mcastlab.errors import RegistryFullError, UnknownIdentityError
from mcastlab.identity import Identity
from mcastlab.runtime import AsyncioRuntime

from .conftest import Clock, Factory

UNICODE_NAMES = ["датчик-1", "センサー/2", "emoji-🎉", "a.b*c>d", "quote'\"`", "semi;--drop", "%_wild", "$1?"]


def coordinator(registry: Any, clock: Clock, **cfg: Any) -> Coordinator:
    """A coordinator on the test's fake clock; these tests sweep explicitly unless they ask for the
    background sweeper (auto_sweep=True), which would otherwise race them at every await."""
    cfg.setdefault("auto_sweep", False)
    return Coordinator(Config(**cfg), registry=registry, runtime=AsyncioRuntime(clock=clock))


def expirations(c: Coordinator) -> list[ExpirationEvent]:
    got: list[ExpirationEvent] = []
    c.add_listener(lambda e: got.append(e) if isinstance(e, ExpirationEvent) else None)
    return got


async def ids(c: Coordinator, flt: Any = None) -> list[str]:
    """The ids ``enumerate`` returns, sorted (enumerate returns them in the backend's order)."""
    return sorted(i.id for i in await c.enumerate(flt))


async def test_register_get_enumerate_roundtrip(make_registry: Factory, clock: Clock) -> None:
    md = {"status": "online", "fw": "1.2.3", "n": 1, "x": 1.5, "ok": True, "none": None,
          "hw": {"model": "m1", "rev": 2}, "tags": ["a", "b"], "big": 1e20, "z_first": 0, "a_last": 1}
    async with coordinator(make_registry(), clock) as c:
        rec = await c.register("dev-1", md, ttl=60)
        got = await c.get("dev-1")
        assert got is not None
        assert isinstance(got.metadata, MappingProxyType)
        assert dict(got.metadata) == md
        assert list(got.metadata) == list(md)  # key order survives (jsonb alone would reorder)
        assert type(got.metadata["big"]) is float
        assert (got.registered_at, got.expires_at) == (rec.registered_at, rec.expires_at) == (1000.0, 1060.0)
        assert await ids(c) == ["dev-1"]
        assert await c.count({"status": "online"}) == 1
        assert await c.get("nobody") is None


async def test_unicode_and_hostile_identity_names(make_registry: Factory, clock: Clock) -> None:
    async with coordinator(make_registry(), clock) as c:
        for i, name in enumerate(UNICODE_NAMES):
            await c.register(name, {"i": i, "name": name})
        assert await ids(c) == sorted(UNICODE_NAMES)
        for name in UNICODE_NAMES:
            got = await c.get(name)
            assert got is not None and got.metadata["name"] == name
        assert await c.unregister("semi;--drop") is True
        assert await c.count() == len(UNICODE_NAMES) - 1


async def test_upsert_replaces_metadata_and_restarts_ttl(make_registry: Factory, clock: Clock) -> None:
    reg = make_registry()
    async with coordinator(reg, clock) as c:
        await c.register("a", {"v": 1, "old": True}, ttl=10)
        clock.advance(8)
        rec = await c.register("a", {"v": 2}, ttl=10)
        assert rec.expires_at == 1018.0
        got = await c.get("a")
        assert got is not None and dict(got.metadata) == {"v": 2} and got.registered_at == 1008.0
        assert await c.count({"old": True}) == 0
        assert await c.count({"v": 2}) == 1
        ident = Identity("a", MappingProxyType({"v": 3}), clock.t, clock.t + 5)
        assert await reg.upsert(ident, now=clock.t, max_identities=None) is False  # alive: not new
        clock.advance(5)  # exactly at the deadline: dead, so an upsert counts as new
        ident = Identity("a", MappingProxyType({"v": 4}), clock.t, None)
        assert await reg.upsert(ident, now=clock.t, max_identities=None) is True


async def test_heartbeat_and_unregister(make_registry: Factory, clock: Clock) -> None:
    async with coordinator(make_registry(), clock) as c:
        await c.register("b", {"k": "v"}, ttl=10)
        clock.advance(8)
        rec = await c.heartbeat("b", ttl=4)
        assert (rec.expires_at, dict(rec.metadata)) == (1012.0, {"k": "v"})
        clock.advance(4)
        with pytest.raises(UnknownIdentityError):
            await c.heartbeat("b")
        assert await c.unregister("b") is True  # still stored until swept: removed now
        assert await c.unregister("b") is False
        assert await c.unregister("never") is False


async def test_expiry_is_exact_at_the_deadline_before_any_sweep(make_registry: Factory, clock: Clock) -> None:
    cfg = {"sweep_interval": 3600.0, "sweep_resolution": 3600.0}
    async with coordinator(make_registry(), clock, **cfg) as c:
        await c.register("dev", {"status": "online"}, ttl=60)
        clock.t = 1059.999
        assert await ids(c, {"status": "online"}) == ["dev"]
        assert (await c.multicast({"status": "online"}, b"x")).targeted == 1
        clock.t = 1060.0
        assert await c.enumerate({"status": "online"}) == []
        assert await c.count() == 0
        assert await c.get("dev") is None
        assert (await c.multicast({"status": "online"}, b"x")).targeted == 0
        assert c.expired_total == 0  # nothing was swept: the reads alone hide the expired row


async def test_no_ttl_never_expires_and_next_deadline(make_registry: Factory, clock: Clock) -> None:
    reg = make_registry()
    async with coordinator(reg, clock, default_ttl=None, sweep_interval=3600.0) as c:
        await c.register("forever", {"a": 1})
        assert await reg.next_deadline() is None
        await c.register("later", {"a": 1}, ttl=50)
        await c.register("sooner", {"a": 1}, ttl=20)
        assert await reg.next_deadline() == 1020.0
        clock.advance(10_000)
        assert await ids(c) == ["forever"]
        await c.sweep()  # the background sweeper, woken by the registers, may have claimed them first
        assert c.expired_total == 2
        assert await reg.next_deadline() is None
        assert await ids(c) == ["forever"]


async def test_sweep_claims_in_deadline_order_each_once(make_registry: Factory, clock: Clock) -> None:
    reg = make_registry()
    async with coordinator(reg, clock, sweep_interval=3600.0, sweep_resolution=3600.0, sweep_batch=3) as c:
        events = expirations(c)
        for i in range(10):
            await c.register(f"d{i}", {"i": i}, ttl=10 + i)
        clock.advance(14)  # d0..d4 expired (deadline <= now), d4 exactly at its deadline
        await c.sweep()
        assert sorted((e.deadline, e.identity) for e in events) == [(1010.0 + i, f"d{i}") for i in range(5)]
        assert all(e.t_detected == clock.t for e in events)
        assert c.expired_total == 5
        claimed = await reg.claim_expired(now=clock.t + 100, limit=2)
        assert [(x.id, x.deadline) for x in claimed] == [("d5", 1015.0), ("d6", 1016.0)]
        assert await c.count() == 3


async def test_max_identities_refuses_new_and_changes_nothing(make_registry: Factory, clock: Clock) -> None:
    reg = make_registry()
    async with coordinator(reg, clock, max_identities=3, sweep_interval=3600.0) as c:
        for name in "abc":
            await c.register(name, {"v": 1}, ttl=100)
        with pytest.raises(RegistryFullError) as err:
            await c.register("d", {"v": 1})
        assert err.value.limit == 3
        assert await ids(c) == ["a", "b", "c"]
        await c.register("a", {"v": 2}, ttl=100)  # existing identity: allowed when full
        assert (await c.get("a")).metadata["v"] == 2  # type: ignore[union-attr]
        with pytest.raises(RegistryFullError):
            await reg.upsert(Identity("d", MappingProxyType({}), clock.t, None), now=clock.t,
                             max_identities=3)
        assert await c.get("d") is None


async def test_full_registry_makes_room_by_sweeping_expired(make_registry: Factory, clock: Clock) -> None:
    async with coordinator(make_registry(), clock, max_identities=2, sweep_interval=3600.0,
                           sweep_resolution=3600.0) as c:
        events = expirations(c)
        await c.register("short", {}, ttl=5)
        await c.register("long", {}, ttl=500)
        clock.advance(5)
        await c.register("new", {}, ttl=500)  # 'short' is dead: the live count is 1
        assert await ids(c) == ["long", "new"]
        await c.sweep()
        assert [e.identity for e in events] == ["short"]
        with pytest.raises(RegistryFullError):
            await c.register("another", {})


async def test_two_coordinators_share_the_store(make_registry: Factory, clock: Clock) -> None:
    async with coordinator(make_registry(), clock, sweep_interval=3600.0) as a, \
            coordinator(make_registry(), clock, sweep_interval=3600.0) as b:
        await a.register("x", {"status": "online"}, ttl=30)
        assert await ids(b, {"status": "online"}) == ["x"]
        await b.heartbeat("x", ttl=60)
        assert (await a.get("x")).expires_at == 1060.0  # type: ignore[union-attr]
        await b.unregister("x")
        assert await a.count() == 0


async def test_one_registry_object_shared_by_two_coordinators(make_registry: Factory, clock: Clock) -> None:
    reg = make_registry()
    a, b = coordinator(reg, clock), coordinator(reg, clock)
    await a.open()
    await b.open()
    await a.register("x", {})
    await a.close()  # reference counted: b still works
    assert await ids(b) == ["x"]
    await b.close()


async def test_two_coordinators_count_each_expiry_once(make_registry: Factory, clock: Clock,
                                                       eventually: Any) -> None:
    cfg = {"sweep_interval": 3600.0, "sweep_resolution": 3600.0, "sweep_batch": 7, "max_identities": None,
           "auto_sweep": True}
    a = coordinator(make_registry(), clock, **cfg)
    b = coordinator(make_registry(), clock, **cfg)
    async with a, b:
        ev_a, ev_b = expirations(a), expirations(b)
        names = [f"dev-{i:03d}" for i in range(120)]
        for i, name in enumerate(names):
            await (a if i % 2 else b).register(name, {"i": i}, ttl=10 + i % 5)
        clock.advance(20)
        await a.runtime.gather(a.sweep(), b.sweep(), a.sweep(), b.sweep())  # racing the background sweepers
        # background sweeps still in flight add their claims when they end
        await eventually(lambda: a.expired_total + b.expired_total >= 120, what="all 120 expiries claimed")
        await a.runtime.gather(a.sweep(), b.sweep())
        assert a.expired_total + b.expired_total == 120
        seen = [e.identity for e in ev_a + ev_b]
        assert sorted(seen) == names  # every expiry once, none twice
        assert await a.count() == 0


async def test_enumerate_matches_memory_on_a_fixed_dataset(make_registry: Factory, clock: Clock) -> None:
    data = {
        "d1": {"status": "online", "region": "eu", "fw": "1.2.10", "n": 5, "tags": ["a", "b"],
               "hw": {"model": "x1"}},
        "d2": {"status": "offline", "region": "us", "fw": "1.2.9", "n": 5.0, "tags": "abc"},
        "d3": {"status": "online", "fw": "1.10.0", "n": True, "hw": {"model": "x2", "rev": 3}},
        "d4": {"status": None, "region": "eu", "fw": "latest", "n": "5", "tags": []},
        "d5": {},
    }
    filters = [
        None, {"status": "online"}, {"status": "online", "region": "eu"}, {"n": 5}, {"n": True},
        'n == 5.0', 'n != 5', 'status != "online"', 'not (region == "eu")', 'region in ["eu", "us"]',
        'region not in ["eu"]', 'exists(status)', 'not exists(region)', 'status == null',
        'fw < v"1.2.10"', 'fw >= v"1.2.10"', 'fw != v"1.2.9"', 'not (fw > v"1.0")', 'fw > "1.2"',
        'tags contains "a"', 'tags contains "b" or tags contains "c"', 'fw.startswith("1.2")',
        'hw.model == "x2"', 'hw.rev >= 3', 'exists(hw.model) and not hw.model.startswith("x1")',
        'n > 4', 'n in [5, true]', 'status in [null]', 'false', 'true',
        '(status == "online" or region == "us") and not (n == true)',
    ]
    mem = Coordinator(Config(), registry=MemoryRegistry(), runtime=AsyncioRuntime(clock=clock))
    async with coordinator(make_registry(), clock) as c, mem:
        for name, md in data.items():
            await c.register(name, md)
            await mem.register(name, md)
        for flt in filters:
            want = await ids(mem, flt)
            assert await ids(c, flt) == want, flt
            assert await c.count(flt) == len(want), flt
