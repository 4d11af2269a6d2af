"""NatsMessaging specifics against a real nats-server: subjects on the wire, foreign messages, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import pytest

from mcastlab import Config, Coordinator
from mcastlab.backends import DELIVERED, MemoryRegistry, Message, NatsMessaging, RedisPubSubMessaging
from mcastlab.backends._subjects import decode_token
from mcastlab.errors import BackendUnavailableError, ClosedError, ConfigError, DeliveryError
from mcastlab.runtime import AsyncioRuntime

pytestmark = [pytest.mark.live, pytest.mark.timeout(60)]

NAMES = ["a", "a.b", "*", ">", "a.*", "a.>", "ü", "%61", "{x}", "a:b", "x" * 256]


async def test_every_subject_is_one_literal_token(nats_server: Any) -> None:
    msg = NatsMessaging(nats_server.url, prefix="sub.test")
    seen: list[str] = []
    raw = await nats.connect(nats_server.url)
    try:
        async def on_message(m: Any) -> None:
            seen.append(m.subject)

        await raw.subscribe("sub.test.>", cb=on_message)
        await raw.flush()
        async with Coordinator(Config(), registry=MemoryRegistry(), messaging=msg) as c:
            for name in NAMES:
                await c.register(name)
            res = await c.multicast(None, b"x")
            assert res.delivered == len(NAMES)
        for _ in range(100):
            if len(seen) == len(NAMES):
                break
            await asyncio.sleep(0.02)
        tokens = [s.split(".") for s in seen]
        assert all(len(t) == 3 and t[:2] == ["sub", "test"] for t in tokens)
        assert sorted(decode_token(t[2]) for t in tokens) == sorted(NAMES)
        assert not any(ch in t[2] for t in tokens for ch in "*> ")
    finally:
        await raw.close()


async def test_a_foreign_message_reaches_the_inbox_with_defaults(nats_server: Any) -> None:
    msg = NatsMessaging(nats_server.url, prefix="foreign")
    async with Coordinator(registry=MemoryRegistry(), messaging=msg) as c, c.inbox("dev.1") as box:
        raw = await nats.connect(nats_server.url)
        try:
            reply = await raw.request(msg.subject_for("dev.1"), b"hello", timeout=2)
            assert reply.data == b""  # acknowledged on receipt
        finally:
            await raw.close()
        got = await box.get(timeout=2)
        assert (got.payload, got.identity, got.id, got.attempt) == (b"hello", "dev.1", "", 1)


async def test_unreachable_server_is_a_typed_error_and_fast() -> None:
    msg = NatsMessaging("nats://127.0.0.1:1", connect_timeout=0.3, reconnect_time_wait=0.1)
    with pytest.raises(BackendUnavailableError):
        await asyncio.wait_for(msg.open(AsyncioRuntime()), 10)


async def test_closed_backend_refuses_to_send(nats_server: Any) -> None:
    msg = NatsMessaging(nats_server.url)
    with pytest.raises(ClosedError):
        await msg.send(Message("m", b"", "a", 0.0), mode="publish", timeout=1)
    await msg.open(AsyncioRuntime())
    await msg.open(AsyncioRuntime())  # shared by two coordinators: the first close keeps it open
    await msg.close()
    await msg.send(Message("m", b"", "a", 0.0), mode="publish", timeout=1)
    await msg.close()
    with pytest.raises(ClosedError):
        await msg.send(Message("m", b"", "a", 0.0), mode="publish", timeout=1)
    await msg.close()  # idempotent


async def test_oversized_payload_is_an_error_status(nats_server: Any) -> None:
    msg = NatsMessaging(nats_server.url)
    await msg.open(AsyncioRuntime())
    try:
        with pytest.raises(DeliveryError) as info:
            await msg.send(Message("m", bytes(2 * 1024 * 1024), "a", 0.0), mode="publish", timeout=1)
        assert info.value.status == "error"
        await msg.send(Message("m", b"ok", "a", 0.0), mode="publish", timeout=1)
        await msg.flush(1)
    finally:
        await msg.close()


def test_bad_configuration_is_refused() -> None:
    for servers, kwargs in (("nats://x:1", {"prefix": "a.*"}), ("nats://x:1", {"prefix": ""}), ([], {}),
                            ("localhost", {})):
        with pytest.raises(ConfigError):
            NatsMessaging(servers, **kwargs)
    with pytest.raises(ConfigError):
        RedisPubSubMessaging("redis://x:1/0", prefix="a b")


async def test_multicast_to_many_in_publish_mode_is_one_flush(nats_server: Any) -> None:
    msg = NatsMessaging(nats_server.url, prefix="many")
    config = Config(max_identities=None)
    async with Coordinator(config, registry=MemoryRegistry(), messaging=msg) as c:
        for i in range(2000):
            await c.register(f"d{i}")
        async with c.inbox("d1999") as box:
            pongs = msg._nc._pongs_received
            res = await c.multicast(None, b"x")
            assert res.delivered == 2000 and set(res.statuses.values()) == {DELIVERED}
            assert msg._nc._pongs_received - pongs == 1
            assert (await box.get(timeout=2)).payload == b"x"


async def test_publish_batch_writes_what_send_writes(nats_server: Any) -> None:
    """The batch fast path frames byte for byte as per-message sends do, header and all."""
    msg = NatsMessaging(nats_server.url, prefix="batch")
    await msg.open(AsyncioRuntime())
    try:
        nc = msg._nc
        names = ["a", "b.c", "ü"]
        await msg.flush(1)
        nc._pending.clear()
        for name in names:
            await msg.send(Message("m-1", b"payload", name, 12.5), mode="publish", timeout=1)
        one_by_one = list(nc._pending)
        nc._pending.clear()
        nc._pending_data_size = 0
        assert await msg.publish_batch("m-1", b"payload", names, sent_at=12.5) == {}
        assert b"".join(nc._pending) == b"".join(one_by_one)
        assert nc._pending_data_size == len(b"".join(one_by_one))
        await msg.flush(1)
        too_big = await msg.publish_batch("m-2", bytes(2 * 1024 * 1024), names, sent_at=1.0)
        assert too_big == dict.fromkeys(names, "error")
    finally:
        await msg.close()


async def test_a_batch_larger_than_the_spill_size_goes_out_whole_and_in_order(nats_server: Any,
                                                                              monkeypatch: Any) -> None:
    """Chunked framing: subjects of mixed lengths and uncached ones, spilled every few frames, all arrive."""
    import mcastlab.backends.nats_messaging as nm

    monkeypatch.setattr(nm, "_SPILL_BYTES", 400)
    msg = NatsMessaging(nats_server.url, prefix="spill")
    names = [f"d{i}" + "x" * (i % 37) for i in range(301)]
    seen: list[str] = []
    raw = await nats.connect(nats_server.url)
    await msg.open(AsyncioRuntime())
    try:
        async def on_message(m: Any) -> None:
            seen.append(decode_token(m.subject.removeprefix("spill.")))

        await raw.subscribe("spill.>", cb=on_message)
        await raw.flush()
        msg._framer.subject(names[5])  # one cached subject among uncached ones
        assert await msg.publish_batch("m-1", b"p", names, sent_at=1.0) == {}
        await msg.flush(2)
        for _ in range(200):
            if len(seen) == len(names):
                break
            await asyncio.sleep(0.02)
        assert seen == names
        assert await msg.publish_batch("m-2", b"p", names[:1], sent_at=1.0) == {}  # one frame, no spill
        assert await msg.publish_batch("m-3", b"p", [], sent_at=1.0) == {}
    finally:
        await msg.close()
        await raw.close()
