"""Registry contract: the same operations give the same results on every registry (memory, redis)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mcastlab.errors import (
    FilterTooComplexError,
    InvalidMetadataError,
    RegistryFullError,
    UnknownIdentityError,
)
from mcastlab.filters import field_name
from mcastlab.results import ExpirationEvent


def ids(found: list[Any]) -> list[str]:
    """Sorted ids of enumerate's result (its order is the backend's)."""
    return sorted(i.id for i in found)


HOSTILE_NAMES = [
    "a", "A", "%41", "a.b", "a:b", "*", ">", "a.*", "a.>", "{x}", "}{", "mcast:{mcast}:z", "id:a",
    "ix:status:s%3Aonline", "nil", "ü", "日本語", "😀", "a\\b", "[abc]", "?", "'\";--", "a/b", "-", "_", "%",
    "%25", "x" * 256,
]


async def test_register_roundtrip_keeps_metadata_and_times(reg_coordinator: Any) -> None:
    md = {"status": "online", "n": 5, "f": 2.5, "ok": True, "none": None, "tags": ["a", 1], "hw": {"m": "x"}}
    async with reg_coordinator(default_ttl=30) as c:
        rec = await c.register("dev-1", md)
        got = await c.get("dev-1")
        assert got is not None
        assert dict(got.metadata) == md
        assert (got.registered_at, got.expires_at) == (rec.registered_at, rec.expires_at)
        [listed] = await c.enumerate()
        assert listed.id == "dev-1" and dict(listed.metadata) == md
        assert listed.expires_at == rec.expires_at
        with pytest.raises(TypeError):
            listed.metadata["status"] = "x"  # type: ignore[index]


async def test_reregister_replaces_metadata_and_index(reg_coordinator: Any) -> None:
    async with reg_coordinator() as c:
        await c.register("d", {"status": "online", "zone": "a"})
        await c.register("d", {"status": "offline"})
        assert await c.enumerate({"status": "online"}) == []
        assert await c.enumerate({"zone": "a"}) == []
        assert ids(await c.enumerate({"status": "offline"})) == ["d"]
        assert await c.count() == 1


async def test_heartbeat_moves_deadline_and_keeps_metadata(reg_coordinator: Any, clock: Any) -> None:
    async with reg_coordinator(clock=clock, default_ttl=10) as c:
        await c.register("d", {"k": 1})
        clock.advance(8)
        rec = await c.heartbeat("d")
        assert rec.expires_at == clock.t + 10 and dict(rec.metadata) == {"k": 1}
        clock.advance(8)
        assert (await c.get("d")) is not None
        with pytest.raises(UnknownIdentityError):
            await c.heartbeat("missing")
        clock.advance(2)
        with pytest.raises(UnknownIdentityError):
            await c.heartbeat("d")  # dead at its deadline


async def test_unregister_is_idempotent(reg_coordinator: Any) -> None:
    async with reg_coordinator() as c:
        await c.register("d", {"status": "online"})
        assert await c.unregister("d") is True
        assert await c.unregister("d") is False
        assert await c.enumerate({"status": "online"}) == []
        assert await c.get("d") is None


async def test_expired_is_never_returned_even_before_a_sweep(reg_coordinator: Any, clock: Any) -> None:
    async with reg_coordinator(clock=clock, default_ttl=10, sweep_interval=3600) as c:
        await c.register("old", {"status": "online"})
        clock.advance(5)
        await c.register("new", {"status": "online"})
        clock.advance(5)  # exactly old's deadline
        assert await c.get("old") is None
        assert ids(await c.enumerate({"status": "online"})) == ["new"]
        assert ids(await c.enumerate()) == ["new"]
        assert await c.count({"status": "online"}) == 1 and await c.count() == 1
        res = await c.multicast({"status": "online"}, b"x")
        assert list(res.statuses) == ["new"]
        await c.sweep()
        assert c.expired_total == 1
        await c.register("old", {"status": "offline"})  # re-registered after expiry: a new identity
        assert ids(await c.enumerate({"status": "online"})) == ["new"]


async def test_no_ttl_never_expires(reg_coordinator: Any, clock: Any) -> None:
    async with reg_coordinator(clock=clock, default_ttl=None) as c:
        await c.register("forever", {"k": 1})
        assert (await c.get("forever")).expires_at is None  # type: ignore[union-attr]
        clock.advance(1e7)
        assert await c.sweep() == 0
        assert ids(await c.enumerate({"k": 1})) == ["forever"]
        assert await c.registry.next_deadline() is None


async def test_next_deadline_is_the_earliest(reg_coordinator: Any, clock: Any) -> None:
    async with reg_coordinator(clock=clock) as c:
        await c.register("a", ttl=50)
        await c.register("b", ttl=20)
        await c.register("c", ttl=30)
        assert await c.registry.next_deadline() == clock.t + 20
        await c.heartbeat("b", ttl=100)
        assert await c.registry.next_deadline() == clock.t + 30
        await c.unregister("c")
        assert await c.registry.next_deadline() == clock.t + 50


async def test_max_identities_refuses_new_and_changes_nothing(reg_coordinator: Any, clock: Any) -> None:
    async with reg_coordinator(clock=clock, max_identities=3, default_ttl=10, sweep_interval=3600) as c:
        for i in range(3):
            await c.register(f"d{i}", {"i": i})
        with pytest.raises(RegistryFullError) as info:
            await c.register("d3", {"i": 3})
        assert info.value.limit == 3
        await c.register("d0", {"i": 100})  # replacing an existing identity is always allowed
        assert ids(await c.enumerate()) == ["d0", "d1", "d2"]
        assert await c.get("d3") is None
        clock.advance(10)  # all three dead: the coordinator sweeps and retries once
        await c.register("d3", {"i": 3})
        assert ids(await c.enumerate()) == ["d3"]
        await c.sweep()  # counted exactly once, whether the full registry swept already or not
        assert c.expired_total == 3


async def test_concurrent_registers_never_overshoot_the_limit(reg_coordinator: Any) -> None:
    async with reg_coordinator(max_identities=25) as c:
        results = await asyncio.gather(*[c.register(f"d{i}", {"i": i}) for i in range(60)],
                                       return_exceptions=True)
        ok = [r for r in results if not isinstance(r, BaseException)]
        assert len(ok) == 25
        assert all(isinstance(r, RegistryFullError) for r in results if isinstance(r, BaseException))
        assert await c.count() == 25


async def test_hostile_and_unicode_names_stay_separate(reg_coordinator: Any) -> None:
    async with reg_coordinator() as c:
        for i, name in enumerate(HOSTILE_NAMES):
            await c.register(name, {"i": i, "name": name})
        listed = await c.enumerate()
        assert sorted(i.id for i in listed) == sorted(HOSTILE_NAMES)
        assert all(dict(i.metadata)["name"] == i.id for i in listed)
        for i, name in enumerate(HOSTILE_NAMES):
            assert ids(await c.enumerate({"i": i})) == [name]
            assert ids(await c.enumerate({"name": name})) == [name]
        for name in HOSTILE_NAMES[::2]:
            assert await c.unregister(name)
        assert ids(await c.enumerate()) == sorted(HOSTILE_NAMES[1::2])


async def test_hostile_fields_and_values_are_indexed_exactly(reg_coordinator: Any) -> None:
    long = "v" * 500
    rows = {
        "a": {"a:b": "x", "{f}": 1, "ü": True, "s": long},
        "b": {"a:b": "x\ny", "{f}": 1.0, "ü": 1, "s": long + "w"},
        "c": {"a:b": "*", "{f}": "1", "ü": None, "s": "ix:a:b"},
        "d": {"a:b": ["x"], "{f}": 1.5, "ü": False},
    }
    async with reg_coordinator() as c:
        for name, md in rows.items():
            await c.register(name, md)
        cases = [
            ({"a:b": "x"}, ["a"]), ({"a:b": "*"}, ["c"]), ({"a:b": "x\ny"}, ["b"]),
            ({"{f}": 1}, ["a", "b"]), ({"{f}": "1"}, ["c"]), ({"{f}": 1.5}, ["d"]),
            ({"ü": True}, ["a"]), ({"ü": 1}, ["b"]), ({"ü": None}, ["c"]), ({"ü": False}, ["d"]),
            ({"s": long}, ["a"]), ({"s": long + "w"}, ["b"]), ({"s": "ix:a:b"}, ["c"]),
        ]
        for flt, expected in cases:
            assert ids(await c.enumerate(flt)) == expected, flt
            assert await c.count(flt) == len(expected)


FILTERS = [
    'status == "online"', 'status != "online"', "group in [1, 2]", "group not in [1, 2]",
    'status == "online" and group == 1', 'status == "online" or group == 3',
    'not (status == "online")', '(status == "online" or status == "idle") and group in [0, 2]',
    '(status == "online" and group == 1) or (status == "idle" and group == 2)',
    'status in ["online", "idle"] and not (group == 0)', "exists(fw)", 'fw < v"1.2.10"',
    'name.startswith("dev-1")', 'tags contains "red"', "load > 0.5 and load <= 2", "true", "false",
    'status == "online" and tags contains "red"', "group == 1.0", 'group == "1"', "flag == true",
]


@pytest.mark.parametrize("flt", FILTERS)
async def test_fixed_filters_match_the_predicate(reg_coordinator: Any, flt: str) -> None:
    async with reg_coordinator() as c:
        population = []
        for i in range(40):
            md: dict[str, Any] = {"status": ["online", "idle", "offline"][i % 3], "group": i % 4,
                                  "name": f"dev-{i}", "load": i / 10, "flag": i % 5 == 0}
            if i % 2:
                md["fw"] = f"1.2.{i}"
            if i % 3 == 1:
                md["tags"] = ["red", "blue"][: i % 4]
            population.append((f"dev-{i}", md))
            await c.register(f"dev-{i}", md)
        cf = c.compile(flt)
        expected = sorted(name for name, md in population if cf.predicate(md))
        assert ids(await c.enumerate(flt)) == expected
        assert await c.count(flt) == len(expected)


async def test_two_coordinators_one_prefix_share_state(reg_coordinator: Any) -> None:
    async with reg_coordinator("a") as c1, reg_coordinator("a") as c2:
        await c1.register("d1", {"k": 1})
        assert ids(await c2.enumerate({"k": 1})) == ["d1"]
        await c2.register("d1", {"k": 2})
        assert await c1.enumerate({"k": 1}) == []
        assert await c2.unregister("d1")
        assert await c1.get("d1") is None


async def test_two_prefixes_are_isolated(reg_coordinator: Any) -> None:
    async with reg_coordinator("a") as ca, reg_coordinator("b") as cb:
        await ca.register("d1", {"k": 1})
        await cb.register("d2", {"k": 1})
        assert ids(await ca.enumerate({"k": 1})) == ["d1"]
        assert ids(await cb.enumerate()) == ["d2"]
        assert await cb.unregister("d1") is False
        assert await ca.count() == 1


async def test_a_new_coordinator_sees_what_was_there(reg_coordinator: Any) -> None:
    async with reg_coordinator("a") as c1:
        await c1.register("d1", {"k": 1})
    async with reg_coordinator("a") as c2:
        assert ids(await c2.enumerate({"k": 1})) == ["d1"]


async def test_several_coordinators_claim_each_expiry_once(reg_coordinator: Any, clock: Any) -> None:
    async with reg_coordinator(clock=clock, default_ttl=5, sweep_interval=3600, sweep_batch=7) as c1, \
            reg_coordinator(clock=clock, default_ttl=5, sweep_interval=3600, sweep_batch=7) as c2, \
            reg_coordinator(clock=clock, default_ttl=5, sweep_interval=3600, sweep_batch=7) as c3:
        for i in range(60):
            await [c1, c2, c3][i % 3].register(f"d{i}", {"i": i})
        clock.advance(5)
        await asyncio.gather(c1.sweep(), c2.sweep(), c3.sweep(), c1.sweep())
        assert c1.expired_total + c2.expired_total + c3.expired_total == 60
        assert await c1.count() == 0 and await c1.registry.next_deadline() is None


async def test_filter_and_metadata_limits_refuse_and_change_nothing(reg_coordinator: Any) -> None:
    async with reg_coordinator(max_clauses=2, max_filter_depth=2, max_metadata_bytes=64) as c:
        await c.register("d", {"a": 1})
        with pytest.raises(FilterTooComplexError):
            await c.enumerate("a == 1 and a == 2 and a == 3")
        with pytest.raises(FilterTooComplexError):
            await c.count("not (not (not (a == 1)))")
        with pytest.raises(InvalidMetadataError):
            await c.register("d", {"a": "x" * 100})
        assert [dict(i.metadata) for i in await c.enumerate({"a": 1})] == [{"a": 1}]


INJECTIONS = ["'); redis.call('FLUSHALL') --", "]] .. redis.call('DEL', KEYS[1]) .. [[", "\r\nFLUSHALL\r\n",
              "*3\r\n$3\r\nDEL\r\n", "%00", "nil", "\\", "ix:a:s%3Ab"]


async def test_injection_attempts_are_just_data(reg_coordinator: Any) -> None:
    async with reg_coordinator("victim") as victim, reg_coordinator("attacker") as attacker:
        await victim.register("v", {"status": "online"})
        for i, text in enumerate(INJECTIONS):
            name = text.replace("\r", "").replace("\n", "").replace(" ", "_") or f"n{i}"
            await attacker.register(name, {text: text, "status": text})
            assert ids(await attacker.enumerate({"status": text})) == [name]
            assert ids(await attacker.enumerate({field_name((text,)): text})) == [name]
            await attacker.unregister(name)
        assert ids(await victim.enumerate({"status": "online"})) == ["v"]
        assert await attacker.count() == 0


async def test_the_registered_gauge_is_the_shared_count(reg_coordinator: Any, eventually: Any) -> None:
    async with reg_coordinator("a", sweep_interval=0.05, sweep_resolution=0.01) as c1, \
            reg_coordinator("a", sweep_interval=0.05, sweep_resolution=0.01) as c2:
        for i in range(3):
            await c1.register(f"d{i}", {})
        await c2.register("e0", {})
        assert await c1.registry.identities() == 4
        gauge = "multicast_registry_registered_identities"
        # after a sweep, each coordinator's gauge takes the registry's count
        await eventually(lambda: c1.metrics.value(gauge) == c2.metrics.value(gauge) == 4, what="gauges at 4")


async def test_a_lapsed_lifetime_is_reported_when_the_name_reregisters_before_a_sweep(
        reg_coordinator: Any, clock: Any) -> None:
    """A lifetime that ended unswept is still one expiration after the name registers again (and the new
    lifetime is not cut short); two coordinators sweeping count it once."""
    events: list[ExpirationEvent] = []
    cfg = {"clock": clock, "auto_sweep": False}  # only the explicit sweeps below
    async with reg_coordinator(**cfg) as c1, reg_coordinator(**cfg) as c2:
        c1.add_listener(lambda e: events.append(e) if isinstance(e, ExpirationEvent) else None)
        c2.add_listener(lambda e: events.append(e) if isinstance(e, ExpirationEvent) else None)
        t0 = clock()
        await c1.register("dev", {"v": 1}, ttl=10)
        await c1.register("other", {"v": 1}, ttl=12)
        clock.advance(15)  # both dead (at t0 + 10 and t0 + 12), nobody swept
        await c2.register("dev", {"v": 2}, ttl=100)  # a new lifetime of the same name
        assert await c1.registry.next_deadline() == pytest.approx(t0 + 10)  # the lapsed lifetime is due
        await asyncio.gather(c1.sweep(), c2.sweep())
        await asyncio.gather(c1.sweep(), c2.sweep())
        got = sorted((e.identity, e.deadline - t0) for e in events)
        assert got == [("dev", pytest.approx(10.0)), ("other", pytest.approx(12.0))]
        assert c1.expired_total + c2.expired_total == 2
        assert [dict(i.metadata) for i in await c1.enumerate()] == [{"v": 2}]
        clock.advance(50)
        await c1.sweep()
        assert ids(await c2.enumerate()) == ["dev"] and len(events) == 2
