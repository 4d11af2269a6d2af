"""Faults with real servers: redis-server killed during a register burst, nats-server killed during a
multicast, Redis restarted under a pub/sub inbox. Calls return or raise typed errors, failures are
counted, nothing is half-written, and the same coordinator works again once the server is back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from mcastlab import Config, Coordinator
from mcastlab.backends import (
    DELIVERED,
    NO_LISTENER,
    TIMEOUT,
    UNAVAILABLE,
    MemoryMessaging,
    MemoryRegistry,
    NatsMessaging,
    RedisPubSubMessaging,
    RedisRegistry,
)
from mcastlab.errors import BackendError, BackendUnavailableError, McastlabError
from mcastlab.runtime import AsyncioRuntime

pytestmark = [pytest.mark.live, pytest.mark.timeout(90)]


async def wait_until(predicate: Any, timeout: float = 15.0, poll: float = 0.05) -> None:
    """Poll ``predicate()`` until true (reconnects happen in the background)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(poll)


def errors_counted(c: Coordinator, op: str) -> float:
    kinds = ("BackendUnavailableError", "OperationTimeoutError", "BackendError", "ClosedError")
    return sum(c.metrics.value("multicast_registry_operation_errors_total", op=op, kind=k) for k in kinds)


async def test_redis_killed_during_a_register_burst(own_redis: Any, prefix: str, consistency: Any) -> None:
    reg = RedisRegistry(own_redis.url, prefix=prefix, socket_timeout=2.0)
    config = Config(default_ttl=600, max_identities=None)
    async with Coordinator(config, registry=reg, messaging=MemoryMessaging()) as c:
        names = iter(range(4000))
        ok: set[str] = set()
        failed: list[BaseException] = []
        killed = asyncio.Event()

        async def worker() -> None:
            for i in names:
                try:
                    await c.register(f"d{i}", {"g": i % 7, "status": "online", "i": i})
                    ok.add(f"d{i}")
                except McastlabError as exc:
                    failed.append(exc)
                if len(ok) >= 800 and not killed.is_set():
                    killed.set()
                    own_redis.kill()

        await asyncio.gather(*[worker() for _ in range(50)])
        assert killed.is_set() and failed, "the burst must outlive the server"
        assert all(isinstance(e, BackendError) for e in failed)
        assert errors_counted(c, "register") == len(failed)

        own_redis.restart()  # replays its fsynced AOF: exactly what Redis acknowledged, maybe a bit more
        await c.register("after-restart", {"g": 0})  # the same coordinator, reconnected
        stored = {i.id for i in await c.enumerate()}
        assert ok | {"after-restart"} <= stored
        assert stored <= {f"d{i}" for i in range(4000)} | {"after-restart"}
        for g in range(7):
            got = {i.id for i in await c.enumerate({"g": g})}
            assert got == {s for s in stored if s != "after-restart" and int(s[1:]) % 7 == g} | (
                {"after-restart"} if g == 0 else set())
        assert await consistency(own_redis.url, reg.base) == []


async def test_nats_killed_during_a_publish_multicast(own_nats: Any) -> None:
    msg = NatsMessaging(own_nats.url, reconnect_time_wait=0.1)
    config = Config(max_identities=None, send_timeout=1.0, send_retries=1, retry_backoff=0.01)
    async with Coordinator(config, registry=MemoryRegistry(), messaging=msg) as c:
        for i in range(10_000):
            await c.register(f"d{i:05}", {"i": i})
        async with c.inbox("d00000") as box:
            task = asyncio.ensure_future(c.multicast(None, b"first"))
            # kill as soon as the fan-out has started handing messages to nats-py, before the flush's
            # PING/PONG can confirm them
            await wait_until(lambda: msg._nc.stats["out_msgs"] > 0 or task.done(), poll=0)
            own_nats.kill()
            res = await asyncio.wait_for(task, 30)
            assert res.targeted == 10_000 == res.delivered + res.failed
            assert res.failed > 0
            assert set(res.failures.values()) <= {UNAVAILABLE, TIMEOUT}
            failures = sum(c.metrics.value("multicast_registry_delivery_failures_total", status=s)
                           for s in (UNAVAILABLE, TIMEOUT))
            assert failures == res.failed

            res = await c.multicast({"i": 1}, b"while-down")  # fails fast and typed, no exception
            assert res.statuses == {"d00001": UNAVAILABLE}

            own_nats.restart()
            await wait_until(lambda: msg.connected)
            while box.get_nowait() is not None:  # drop whatever got through before the kill
                pass
            res = await c.multicast(None, b"second")
            assert (res.delivered, res.failed) == (10_000, 0)
            assert (await box.get(timeout=5)).payload == b"second"  # re-subscribed after the reconnect
        assert msg.disconnects >= 1 and msg.reconnects >= 1


async def test_nats_killed_during_an_ack_multicast(own_nats: Any) -> None:
    msg = NatsMessaging(own_nats.url, reconnect_time_wait=0.1)
    config = Config(max_identities=None, send_timeout=0.5, send_retries=1, retry_backoff=0.01,
                    max_in_flight=8)
    async with Coordinator(config, registry=MemoryRegistry(), messaging=msg) as c:
        for i in range(200):
            await c.register(f"d{i:03}", {"i": i})
        async with c.inbox("d000") as b0, c.inbox("d199") as b199:
            task = asyncio.ensure_future(c.multicast(None, b"x", mode="ack"))
            await wait_until(lambda: len(b0) > 0 or task.done(), poll=0)
            own_nats.kill()
            res = await asyncio.wait_for(task, 30)
            assert res.targeted == 200 == res.delivered + res.failed
            assert set(res.statuses.values()) <= {DELIVERED, NO_LISTENER, UNAVAILABLE, TIMEOUT}
            assert res.statuses["d199"] in (UNAVAILABLE, TIMEOUT)  # the kill came long before its turn
            own_nats.restart()
            await wait_until(lambda: msg.connected)
            res = await c.multicast({"i": 199}, b"y", mode="ack")
            assert res.statuses == {"d199": DELIVERED}
            assert len(b199) >= 1


async def test_redis_pubsub_inbox_survives_a_redis_restart(own_redis: Any, prefix: str) -> None:
    msg = RedisPubSubMessaging(own_redis.url, prefix=prefix)
    config = Config(send_timeout=1.0, send_retries=0)
    async with Coordinator(config, registry=MemoryRegistry(), messaging=msg) as c:
        await c.register("d")
        async with c.inbox("d") as box:
            assert (await c.multicast(None, b"1", mode="ack")).delivered == 1
            own_redis.kill()
            res = await c.multicast(None, b"2", mode="ack")
            assert res.statuses == {"d": UNAVAILABLE}
            own_redis.restart()

            async def delivered() -> bool:
                return (await c.multicast(None, b"3", mode="ack")).delivered == 1

            deadline = time.monotonic() + 15
            while not await delivered():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            payloads = []
            while (m := box.get_nowait()) is not None:
                payloads.append(m.payload)
            assert payloads[0] == b"1" and payloads[-1] == b"3" and b"2" not in payloads
        assert msg.reconnects >= 1


async def test_first_call_after_a_quiet_restart_succeeds(own_redis: Any, prefix: str) -> None:
    """No call fails just because the idle pipeline connections died with the old server process."""
    async with Coordinator(registry=RedisRegistry(own_redis.url, prefix=prefix),
                           messaging=MemoryMessaging()) as c:
        await c.register("before", {"k": 1})
        own_redis.kill()
        own_redis.restart()
        await asyncio.sleep(0.05)  # let the event loop see the old connections' EOF
        assert [i.id for i in await c.enumerate({"k": 1})] == ["before"]


async def test_pubsub_open_against_a_dead_server_is_typed_and_prompt(prefix: str) -> None:
    msg = RedisPubSubMessaging("redis://127.0.0.1:1/0", prefix=prefix, connect_timeout=0.5)
    with pytest.raises(BackendUnavailableError):
        await asyncio.wait_for(msg.open(AsyncioRuntime()), 5)


async def test_a_flush_confirms_only_its_own_fan_out_across_a_reconnect(own_nats: Any) -> None:
    """Publishes buffered before a disconnect stay unconfirmed even if another fan-out flushes first."""
    msg = NatsMessaging(own_nats.url, prefix="conc")
    await msg.open(AsyncioRuntime())
    try:
        await msg.publish_batch("before", b"x", ["a", "b"], sent_at=0.0)  # buffered; then the server dies
        own_nats.kill()
        await wait_until(lambda: not msg.connected)
        own_nats.restart()
        await wait_until(lambda: msg.connected)
        await msg.publish_batch("after", b"y", ["a"], sent_at=1.0)
        await msg.flush(2.0, message_id="after")  # its publishes went out on the new connection
        with pytest.raises(BackendUnavailableError, match="reconnected"):
            await msg.flush(2.0, message_id="before")
    finally:
        await msg.close()
