"""The durability contract on KafkaDurability (a journal topic on a real Kafka-protocol broker: Tansu,
started here, or ``$KAFKA_BOOTSTRAP``): record before fan-out, outcomes, replay with redelivery flags,
acknowledgement by outcome, retention, sharing between instances, and replay after a reopen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mcastlab import Config, Coordinator
from mcastlab.backends import DELIVERED, NO_LISTENER, TIMEOUT, DurableRecord, KafkaDurability, MemoryMessaging
from mcastlab.errors import ClosedError, ConfigError
from mcastlab.runtime import AsyncioRuntime

pytestmark = pytest.mark.live
PAYLOAD = bytes(range(256)) + "ünïcode".encode()
Factory = Callable[..., KafkaDurability]


@pytest.fixture
def make_durability(kafka_bootstrap: str, topic_prefix: str) -> Factory:
    """Durability objects that share one journal topic (new per test)."""
    return lambda **kw: KafkaDurability(kafka_bootstrap, topic=f"{topic_prefix}.journal", **kw)


def summary(messages: list[Any]) -> list[tuple[str, bool, int]]:
    return [(m.id, m.redelivery, m.attempt) for m in messages]


async def test_outcomes_decide_what_replays_and_how_it_is_flagged(make_durability: Factory) -> None:
    d = make_durability()
    await d.open()
    try:
        await d.record(DurableRecord("m1", 'status == "x"', PAYLOAD, 100.0, ("a", "b", "c", "d")))
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
            await d.record(DurableRecord(f"m{i}", "true", f"p{i}".encode(), t, ("x",)))
        assert [m.id for m in await d.pending("x", since=0)] == ["m1", "m2", "m0"]  # oldest first
        assert [m.id for m in await d.pending("x", since=200.0)] == ["m2", "m0"]  # at/after since
        assert await d.pending("x", since=300.5) == []
    finally:
        await d.close()


async def test_record_is_idempotent_and_shared_by_two_objects(make_durability: Factory) -> None:
    d1, d2 = make_durability(chunk=1), make_durability()
    await d1.open()
    await d2.open()
    try:
        rec = DurableRecord("m", "true", b"p", 5.0, ("a", "b"))
        await d1.record(rec)
        await d2.record(rec)  # a retry after an unknown outcome: no duplicates
        assert await d2.statuses("m") == {"a": "pending", "b": "pending"}
        assert [m.id for m in await d2.pending("a", since=0)] == ["m"]
        assert [(m.id, m.attempt) for m in await d1.pending("a", since=0)] == [("m", 3)]  # d2's hand-out
        assert len(await d1.messages()) == 1
        await d1.record(DurableRecord("empty", "false", b"", 6.0, ()))  # no targets: still recorded
        assert [m["message_id"] for m in await d2.messages()] == ["m", "empty"]
    finally:
        await d1.close()
        await d2.close()


async def test_a_large_fan_out_is_journaled_in_chunks(make_durability: Factory) -> None:
    d = make_durability(chunk=1000)
    await d.open()
    try:
        targets = tuple(f"dev-{i:05}" for i in range(12_345))
        await d.record(DurableRecord("big", "true", b"fw", 1.0, targets))
        await d.outcome("big", dict.fromkeys(targets[:12000], DELIVERED), now=2.0)
        statuses = await d.statuses("big")
        assert len(statuses) == 12_345 and sum(s == DELIVERED for s in statuses.values()) == 12_000
        assert [m.id for m in await d.pending("dev-12344", since=0)] == ["big"]
    finally:
        await d.close()


async def test_reopen_replays_the_journal(make_durability: Factory) -> None:
    d = make_durability()
    await d.open()
    await d.record(DurableRecord("m", "true", b"p", 1.0, ("a", "b")))
    await d.outcome("m", {"a": DELIVERED}, now=2.0)
    await d.close()
    with pytest.raises(ClosedError):
        await d.pending("a", since=0)
    again = make_durability()
    await again.open()
    try:
        assert await again.statuses("m") == {"a": DELIVERED, "b": "pending"}
        assert summary(await again.pending("b", since=0)) == [("m", True, 2)]
    finally:
        await again.close()


async def test_retention_by_age(make_durability: Factory) -> None:
    d = make_durability()
    await d.open()
    try:
        for t in (0.0, 50.0, 100.0):
            await d.record(DurableRecord(f"m{int(t)}", "true", b"p", t, ("x",)))
        assert await d.purge(now=120.0, max_age=60.0) == 2
        assert [m.id for m in await d.pending("x", since=0)] == ["m100"]
        assert await d.statuses("m0") == {}
        with pytest.raises(ConfigError):
            await d.purge(now=120.0)  # no max_age and no retention configured
    finally:
        await d.close()


async def test_coordinator_replays_what_an_identity_missed(make_durability: Factory) -> None:
    clock = [1000.0]
    cfg = Config(delivery_mode="ack", send_retries=0)
    c = Coordinator(cfg, messaging=MemoryMessaging(), durability=make_durability(),
                    runtime=AsyncioRuntime(clock=lambda: clock[0]))
    async with c:
        await c.register("online", {"group": "g"})
        await c.register("offline", {"group": "g"})
        async with c.inbox("online") as box:
            res = await c.multicast({"group": "g"}, b"update")
            assert res.statuses == {"online": DELIVERED, "offline": NO_LISTENER}
            assert (await box.get(timeout=1)).payload == b"update"
        assert await c.replay("online") == []
        missed = await c.replay("offline", since=clock[0])
        assert [(m.id, m.payload, m.redelivery) for m in missed] == [(res.message_id, b"update", False)]
        assert [m.redelivery for m in await c.replay("offline")] == [True]
        assert await c.replay("offline", since=clock[0] + 1) == []


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"topic": "a/b"}, "topic"), ({"topic": ".."}, "topic"), ({"timeout": -1}, "timeout"),
    ({"retention": 0}, "retention"), ({"chunk": 0}, "chunk"), ({"client_id": "\n"}, "client_id"),
])  # fmt: skip
def test_constructor_validates(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        KafkaDurability("127.0.0.1:9", **kwargs)
    assert info.value.key == key
