"""KafkaMessaging against a real Kafka-protocol broker (Tansu, started here; ``$KAFKA_BOOTSTRAP`` points
the same tests at a real cluster): the publish-mode twins of the messaging contract's ack tests, the
refusal of ack mode, the wire format a device sees, and constructor validation."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from mcastlab import Config, Coordinator
from mcastlab.backends import DELIVERED, KafkaMessaging, MemoryRegistry
from mcastlab.backends._kafka_common import parse_bootstrap, partition_for
from mcastlab.backends._subjects import HEADER, parse_header
from mcastlab.errors import ConfigError, InboxTimeoutError, UnsupportedError

NAMES = ["a", "A", "%41", "a.b", "a.*", "a.>", "*", ">", "a:b", "{x}", "ü", "日本", "😀", "%", "%25", "-",
         "_", "a\\b", "x" * 256]


def coordinator(bootstrap: str, prefix: str, registry: Any = None, **config: Any) -> Coordinator:
    config.setdefault("send_timeout", 5.0)
    return Coordinator(Config(**config), registry=registry or MemoryRegistry(),
                       messaging=KafkaMessaging(bootstrap, prefix=prefix, partitions=4))


@pytest.mark.live
async def test_ack_mode_is_refused_with_a_typed_error(kafka_bootstrap: str, topic_prefix: str) -> None:
    async with coordinator(kafka_bootstrap, topic_prefix) as c:
        await c.register("d")
        with pytest.raises(UnsupportedError, match="ack"):
            await c.multicast(None, b"x", mode="ack")


@pytest.mark.live
async def test_no_name_reaches_another_inbox(kafka_bootstrap: str, topic_prefix: str) -> None:
    async with coordinator(kafka_bootstrap, topic_prefix) as c, AsyncExitStack() as stack:
        boxes = {}
        for i, name in enumerate(NAMES):
            await c.register(name, {"i": i})
            boxes[name] = await stack.enter_async_context(c.inbox(name))
        for i, name in enumerate(NAMES):
            res = await c.multicast({"i": i}, name.encode())
            assert res.statuses == {name: DELIVERED}
        res = await c.multicast(None, b"all")
        assert res.delivered == len(NAMES)
        for name, box in boxes.items():
            got = [(await box.get(timeout=5)).payload for _ in range(2)]
            assert got == [name.encode(), b"all"], name
            assert box.get_nowait() is None


@pytest.mark.live
async def test_every_listener_of_an_identity_receives(kafka_bootstrap: str, topic_prefix: str) -> None:
    async with coordinator(kafka_bootstrap, topic_prefix) as c:
        await c.register("d")
        async with c.inbox("d") as b1, c.inbox("d") as b2:
            await c.multicast(None, b"x")
            assert (await b1.get(timeout=5)).payload == b"x"
            assert (await b2.get(timeout=5)).payload == b"x"


@pytest.mark.live
async def test_fan_out_to_many_with_a_few_listening(kafka_bootstrap: str, topic_prefix: str) -> None:
    async with coordinator(kafka_bootstrap, topic_prefix, max_identities=None) as c, \
            AsyncExitStack() as stack:
        for i in range(3000):
            await c.register(f"d{i:04}", {"i": i})
        boxes = [await stack.enter_async_context(c.inbox(f"d{i:04}")) for i in range(0, 3000, 300)]
        for round_ in range(2):
            res = await c.multicast(None, b"p%d" % round_)
            assert (res.targeted, res.delivered, res.failed) == (3000, 3000, 0)
        for box in boxes:
            assert [(await box.get(timeout=5)).payload for _ in range(2)] == [b"p0", b"p1"]  # in order
            assert box.get_nowait() is None


@pytest.mark.live
async def test_two_coordinators_one_prefix_share_inboxes(kafka_bootstrap: str, topic_prefix: str) -> None:
    registry = MemoryRegistry()
    async with coordinator(kafka_bootstrap, topic_prefix, registry) as c1, \
            coordinator(kafka_bootstrap, topic_prefix, registry) as c2:
        await c1.register("d")
        async with c2.inbox("d") as box:
            res = await c1.multicast(None, b"x")  # produced right after inbox() returned: received
            assert res.statuses == {"d": DELIVERED}
            assert (await box.get(timeout=5)).payload == b"x"


@pytest.mark.live
async def test_two_prefixes_are_isolated(kafka_bootstrap: str, topic_prefix: str) -> None:
    async with coordinator(kafka_bootstrap, f"{topic_prefix}a") as ca, \
            coordinator(kafka_bootstrap, f"{topic_prefix}b") as cb:
        await ca.register("d")
        await cb.register("d")
        async with cb.inbox("d") as box:
            await ca.multicast(None, b"other prefix")
            await cb.multicast(None, b"mine")
            assert (await box.get(timeout=5)).payload == b"mine"
            with pytest.raises(InboxTimeoutError):
                await box.get(timeout=0.2)


@pytest.mark.live
async def test_wire_format_as_a_plain_kafka_consumer_sees_it(kafka_bootstrap: str, topic_prefix: str) -> None:
    """What docs/wire-protocol.md promises a device that reads the topic with any Kafka client."""
    async with coordinator(kafka_bootstrap, topic_prefix) as c:
        await c.register("sensor.42", {"k": 1})
        msg = c.messaging
        assert msg.topic == f"{topic_prefix}.inbox"
        part = partition_for(b"sensor.42", msg.partitions)
        tp = TopicPartition(msg.topic, part)
        consumer = AIOKafkaConsumer(bootstrap_servers=parse_bootstrap(kafka_bootstrap), group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([tp])
            res = await c.multicast({"k": 1}, b"\x00fw\xff")
            rec = await asyncio.wait_for(consumer.getone(), 5)
        finally:
            await consumer.stop()
        assert (rec.key, rec.value, rec.partition) == (b"sensor.42", b"\x00fw\xff", part)
        header = dict(rec.headers)[HEADER].decode()
        mid, sent_at, attempt, redelivery = parse_header(header)
        assert (mid, attempt, redelivery) == (res.message_id, 1, False)
        assert res.started_at <= sent_at


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"bootstrap": ""}, "bootstrap"), ({"bootstrap": "nats://x:1"}, "bootstrap"),
    ({"bootstrap": "h:0"}, "bootstrap"), ({"bootstrap": ["h:1", 2]}, "bootstrap"),
    ({"prefix": "a b"}, "prefix"), ({"prefix": ""}, "prefix"), ({"prefix": "x" * 250}, "prefix"),
    ({"partitions": 0}, "partitions"), ({"partitions": True}, "partitions"),
    ({"partitions": 1.5}, "partitions"),
    ({"timeout": 0}, "timeout"), ({"timeout": float("nan")}, "timeout"), ({"linger_ms": -1}, "linger_ms"),
    ({"linger_ms": "5"}, "linger_ms"),
    ({"max_batch_bytes": 0}, "max_batch_bytes"), ({"client_id": ""}, "client_id"),
    ({"fetch_wait": 0}, "fetch_wait"), ({"recover_interval": -1}, "recover_interval"),
])  # fmt: skip
def test_constructor_validates(kwargs: dict[str, Any], key: str) -> None:
    kw = {"bootstrap": "127.0.0.1:9", **kwargs}
    with pytest.raises(ConfigError) as info:
        KafkaMessaging(kw.pop("bootstrap"), **kw)
    assert info.value.key == key


def test_bootstrap_forms() -> None:
    assert parse_bootstrap("kafka://h:1,h2:2") == ["h:1", "h2:2"]
    assert parse_bootstrap(["h:1", "kafka://[::1]:2"]) == ["h:1", "[::1]:2"]
    assert KafkaMessaging("127.0.0.1:9092").topic == "mcast.inbox"


async def test_open_against_no_broker_is_typed_and_prompt() -> None:
    from mcastlab.errors import BackendError
    from mcastlab.servers import free_port

    c = Coordinator(messaging=KafkaMessaging(f"127.0.0.1:{free_port()}", timeout=2.0))
    with pytest.raises(BackendError):
        await c.__aenter__()
