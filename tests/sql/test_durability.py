"""The durability slot (SqliteDurability, PostgresDurability): record, outcome, replay, retention."""

from __future__ import annotations

from typing import Any

import pytest

from mcastlab import Config, Coordinator
from mcastlab.backends import DELIVERED, NO_LISTENER, TIMEOUT, DurableRecord, MemoryMessaging
from mcastlab.errors import ConfigError
from mcastlab.runtime import AsyncioRuntime

from .conftest import Clock, Factory

PAYLOAD = bytes(range(256)) + "ünïcode".encode()


def summary(messages: list[Any]) -> list[tuple[str, bool, int]]:
    return [(m.id, m.redelivery, m.attempt) for m in messages]


async def test_outcomes_decide_what_replays_and_how_it_is_flagged(make_durability: Factory) -> None:
    d = make_durability()
    await d.open()
    try:
        await d.record(DurableRecord("m1", 'status == "x"', PAYLOAD, 100.0, ["a", "b", "c", "d"]))
        await d.outcome("m1", {"a": DELIVERED, "b": NO_LISTENER, "c": TIMEOUT}, now=101.0)
        assert await d.pending("a", since=0) == []
        first_b = await d.pending("b", since=0)
        assert summary(first_b) == [("m1", False, 2)]  # surely never arrived: not a redelivery
        m = first_b[0]
        assert (m.payload, m.identity, m.sent_at, m.received_at) == (PAYLOAD, "b", 100.0, None)
        assert summary(await d.pending("c", since=0)) == [("m1", True, 2)]  # a timeout may have arrived
        assert summary(await d.pending("d", since=0)) == [("m1", True, 2)]  # outcome unknown
        assert summary(await d.pending("b", since=0)) == [("m1", True, 3)]  # handed out before
        await d.outcome("m1", {"b": DELIVERED}, now=102.0)  # the identity acknowledges the replay
        assert await d.pending("b", since=0) == []
        await d.outcome("m1", {"a": TIMEOUT}, now=103.0)  # delivered is final
        assert (await d.statuses("m1"))["a"] == DELIVERED
        assert await d.pending("nobody", since=0) == []
    finally:
        await d.close()


async def test_since_and_order(make_durability: Factory) -> None:
    d = make_durability()
    await d.open()
    try:
        for i, t in enumerate([300.0, 100.0, 200.0]):
            await d.record(DurableRecord(f"m{i}", "true", f"p{i}".encode(), t, ["x"]))
        assert [m.id for m in await d.pending("x", since=0)] == ["m1", "m2", "m0"]  # oldest first
        assert [m.id for m in await d.pending("x", since=200.0)] == ["m2", "m0"]  # at/after since
        assert await d.pending("x", since=300.5) == []
    finally:
        await d.close()


async def test_record_is_idempotent_and_shared_by_two_objects(make_durability: Factory) -> None:
    d1, d2 = make_durability(), make_durability()
    await d1.open()
    await d2.open()
    try:
        rec = DurableRecord("m", "true", b"p", 5.0, ["a", "b"])
        await d1.record(rec)
        await d2.record(rec)  # a retry after an unknown outcome: no duplicates
        assert await d2.statuses("m") == {"a": "pending", "b": "pending"}
        assert [m.id for m in await d2.pending("a", since=0)] == ["m"]
        assert len(await d1.messages()) == 1
        await d1.record(DurableRecord("empty", "false", b"", 6.0, []))  # no targets: still recorded
        assert [m["message_id"] for m in await d2.messages()] == ["m", "empty"]
    finally:
        await d1.close()
        await d2.close()


async def test_retention_by_age(make_durability: Factory) -> None:
    d = make_durability()
    await d.open()
    try:
        for t in (0.0, 50.0, 100.0):
            await d.record(DurableRecord(f"m{int(t)}", "true", b"p", t, ["x"]))
        assert await d.purge(now=120.0, max_age=60.0) == 2
        assert [m.id for m in await d.pending("x", since=0)] == ["m100"]
        assert await d.statuses("m0") == {}
        with pytest.raises(ConfigError):
            await d.purge(now=120.0)  # no max_age and no retention configured
    finally:
        await d.close()
    auto = make_durability(retention=60.0)
    await auto.open()
    try:
        await auto.record(DurableRecord("late", "true", b"p", 1000.0, ["x"]))  # purges older than 940
        assert [m.id for m in await auto.pending("x", since=0)] == ["late"]
    finally:
        await auto.close()


async def test_coordinator_replays_what_an_identity_missed(make_durability: Factory) -> None:
    clock = Clock()
    cfg = Config(delivery_mode="ack", send_retries=0)
    c = Coordinator(cfg, messaging=MemoryMessaging(), durability=make_durability(),
                    runtime=AsyncioRuntime(clock=clock))
    async with c:
        await c.register("online", {"group": "g"})
        await c.register("offline", {"group": "g"})
        async with c.inbox("online") as box:
            res = await c.multicast({"group": "g"}, b"update")
            assert res.statuses == {"online": DELIVERED, "offline": NO_LISTENER}
            assert (await box.get(timeout=1)).payload == b"update"
        assert await c.replay("online") == []
        missed = await c.replay("offline", since=clock.t)
        assert [(m.id, m.payload, m.redelivery) for m in missed] == [(res.message_id, b"update", False)]
        assert [m.redelivery for m in await c.replay("offline")] == [True]
        assert await c.replay("offline", since=clock.t + 1) == []
