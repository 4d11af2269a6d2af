"""Messaging contract: every messaging backend (memory, nats, redis pub/sub) delivers the same way."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest

from mcastlab.backends import DELIVERED, NO_LISTENER
from mcastlab.errors import InboxTimeoutError

NAMES = ["a", "A", "%41", "a.b", "a.*", "a.>", "*", ">", "a:b", "{x}", "ü", "日本", "😀", "%", "%25", "-",
         "_", "a\\b", "x" * 256]


async def test_publish_delivers_a_complete_message(msg_coordinator: Any) -> None:
    async with msg_coordinator() as c:
        await c.register("dev-1", {"k": 1})
        async with c.inbox("dev-1") as box:
            res = await c.multicast({"k": 1}, b"\x00payload\xff")
            assert (res.targeted, res.delivered, res.failed) == (1, 1, 0)
            msg = await box.get(timeout=5)
        assert msg.payload == b"\x00payload\xff"
        assert msg.identity == "dev-1"
        assert msg.id == res.message_id
        assert msg.attempt == 1 and msg.redelivery is False
        assert msg.received_at is not None and msg.latency is not None and msg.latency >= 0
        assert res.started_at <= msg.sent_at <= msg.received_at


async def test_empty_and_binary_payloads_survive(msg_coordinator: Any) -> None:
    async with msg_coordinator() as c:
        await c.register("d")
        async with c.inbox("d") as box:
            for payload in (b"", bytes(range(256)), "ünï".encode(), b"MC1" + bytes(30)):
                await c.multicast(None, payload)
                assert (await box.get(timeout=5)).payload == payload


async def test_ack_counts_only_listening_identities(msg_coordinator: Any) -> None:
    async with msg_coordinator(send_retries=0) as c:
        for i in range(6):
            await c.register(f"d{i}", {"g": i % 2})
        async with c.inbox("d0") as b0, c.inbox("d2") as b2:
            res = await c.multicast({"g": 0}, b"x", mode="ack")
            assert (res.targeted, res.delivered, res.failed) == (3, 2, 1)
            assert res.statuses == {"d0": DELIVERED, "d2": DELIVERED, "d4": NO_LISTENER}
            assert len(b0) == 1 and len(b2) == 1  # acknowledged on receipt: already queued
            assert b0.get_nowait() is not None and b0.get_nowait() is None


async def test_publish_to_nobody_listening_is_accepted(msg_coordinator: Any) -> None:
    async with msg_coordinator() as c:
        await c.register("lonely")
        res = await c.multicast(None, b"x", mode="publish")
        assert res.statuses == {"lonely": DELIVERED}


async def test_inbox_get_times_out_when_empty(msg_coordinator: Any) -> None:
    async with msg_coordinator() as c, c.inbox("d") as box:
        assert len(box) == 0 and box.get_nowait() is None
        with pytest.raises(InboxTimeoutError):
            await box.get(timeout=0.05)


async def test_no_name_reaches_another_inbox(msg_coordinator: Any) -> None:
    async with msg_coordinator() as c, AsyncExitStack() as stack:
        boxes = {}
        for i, name in enumerate(NAMES):
            await c.register(name, {"i": i})
            boxes[name] = await stack.enter_async_context(c.inbox(name))
        for i, name in enumerate(NAMES):
            res = await c.multicast({"i": i}, name.encode(), mode="ack")
            assert res.statuses == {name: DELIVERED}
        res = await c.multicast(None, b"all", mode="ack")
        assert res.delivered == len(NAMES)
        for name, box in boxes.items():
            got = [(await box.get(timeout=5)).payload for _ in range(2)]
            assert got == [name.encode(), b"all"], name
            assert box.get_nowait() is None


async def test_every_listener_of_an_identity_receives(msg_coordinator: Any) -> None:
    async with msg_coordinator() as c:
        await c.register("d")
        async with c.inbox("d") as b1, c.inbox("d") as b2:
            res = await c.multicast(None, b"x", mode="ack")
            assert res.delivered == 1
            assert (await b1.get(timeout=5)).payload == b"x"
            assert (await b2.get(timeout=5)).payload == b"x"
        res = await c.multicast(None, b"y", mode="ack")
        assert res.statuses == {"d": NO_LISTENER}  # both listeners gone


async def test_fan_out_to_many_with_a_few_listening(msg_coordinator: Any) -> None:
    async with msg_coordinator(send_retries=0, max_identities=None) as c, AsyncExitStack() as stack:
        for i in range(300):
            await c.register(f"d{i:03}", {"i": i})
        boxes = [await stack.enter_async_context(c.inbox(f"d{i:03}")) for i in range(0, 300, 30)]
        res = await c.multicast(None, b"p", mode="publish")
        assert (res.targeted, res.delivered, res.failed) == (300, 300, 0)
        for box in boxes:
            assert (await box.get(timeout=5)).payload == b"p"
        res = await c.multicast(None, b"a", mode="ack")
        assert (res.delivered, res.failed) == (10, 290)
        assert set(res.statuses.values()) == {DELIVERED, NO_LISTENER}


async def test_two_coordinators_one_prefix_share_inboxes(msg_coordinator: Any) -> None:
    async with msg_coordinator("a") as c1, msg_coordinator("a") as c2:
        await c1.register("d")
        async with c2.inbox("d") as box:
            res = await c1.multicast(None, b"x", mode="ack")
            assert res.statuses == {"d": DELIVERED}
            assert (await box.get(timeout=5)).payload == b"x"


async def test_two_prefixes_are_isolated(msg_coordinator: Any) -> None:
    async with msg_coordinator("a") as ca, msg_coordinator("b") as cb:
        await ca.register("d")
        async with cb.inbox("d") as box:
            res = await ca.multicast(None, b"x", mode="ack")
            assert res.statuses == {"d": NO_LISTENER}
            await ca.multicast(None, b"y", mode="publish")
            await asyncio.sleep(0.05)
            assert len(box) == 0
