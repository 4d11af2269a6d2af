"""Faults with a real Kafka-protocol broker (Tansu, started per test; killed with SIGKILL): a broker
killed mid-fan-out, multicasts while it is down, the inbox and the journal after a restart. Calls
return or raise typed errors, failures are counted, and the same objects carry on once the broker is
back. Tansu here stores in memory, so a restarted broker starts with no topics: the backends re-create
them (a real cluster keeps them, which is the easier case)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from mcastlab import Config, Coordinator
from mcastlab.backends import (
    DELIVERED,
    TIMEOUT,
    UNAVAILABLE,
    KafkaDurability,
    KafkaMessaging,
    MemoryMessaging,
    MemoryRegistry,
)
from mcastlab.errors import BackendError, BackendUnavailableError, OperationTimeoutError

pytestmark = [pytest.mark.live, pytest.mark.timeout(90)]


async def wait_until(predicate: Any, timeout: float = 15.0, poll: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(poll)


def failures_counted(c: Coordinator) -> float:
    return sum(c.metrics.value("multicast_registry_delivery_failures_total", status=s)
               for s in (UNAVAILABLE, TIMEOUT))


async def test_broker_killed_during_a_publish_multicast(own_kafka: Any) -> None:
    msg = KafkaMessaging(own_kafka.url, prefix="faults", partitions=4, timeout=2.0, recover_interval=0.05)
    config = Config(max_identities=None, send_timeout=1.0, send_retries=1, retry_backoff=0.01)
    async with Coordinator(config, registry=MemoryRegistry(), messaging=msg) as c:
        for i in range(10_000):
            await c.register(f"d{i:05}", {"i": i})
        async with c.inbox("d00000") as box:
            own_kafka.pause()  # a hung broker: the fan-out's batches are taken but never acknowledged
            task = asyncio.ensure_future(c.multicast(None, b"first"))
            await wait_until(lambda: bool(msg._inflight) or task.done())
            own_kafka.kill()  # ... and then it dies, mid-fan-out
            res = await asyncio.wait_for(task, 30)
            assert res.targeted == 10_000 == res.delivered + res.failed
            assert res.failed == 10_000  # nothing was acknowledged: nothing is reported delivered
            assert set(res.failures.values()) <= {UNAVAILABLE, TIMEOUT}
            assert failures_counted(c) == res.failed

            await wait_until(lambda: not msg.connected)
            t = time.monotonic()
            res = await c.multicast({"i": 1}, b"while-down")  # typed, counted, no exception
            assert res.statuses == {"d00001": UNAVAILABLE}
            assert time.monotonic() - t < config.send_timeout  # failed fast, not after a timeout

            own_kafka.restart()  # memory storage: the broker comes back without the topic
            deadline = time.monotonic() + 20
            while True:  # the same coordinator recovers (it re-creates the topic) within a few tries
                res = await c.multicast(None, b"second")
                if res.failed == 0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert (res.delivered, res.failed) == (10_000, 0)
            got = await box.get(timeout=10)  # the one consumer re-reads the re-created topic
            while got.payload != b"second":
                got = await box.get(timeout=10)
            assert got.id == res.message_id
        assert msg.recoveries >= 1


async def test_journal_while_the_broker_is_down_and_after_a_restart(own_kafka: Any) -> None:
    dur = KafkaDurability(own_kafka.url, topic="faults.journal", timeout=2.0)
    async with Coordinator(Config(send_retries=0), registry=MemoryRegistry(), messaging=MemoryMessaging(),
                           durability=dur) as c:
        await c.register("d")
        before = await c.multicast(None, b"before")
        assert await dur.statuses(before.message_id) == {"d": DELIVERED}  # now in this instance's view
        own_kafka.kill()
        with pytest.raises(BackendError) as info:  # nothing is sent that could not be journaled first
            await c.multicast(None, b"down")
        assert isinstance(info.value, BackendUnavailableError | OperationTimeoutError)
        errors = sum(c.metrics.value("multicast_registry_operation_errors_total", op="multicast", kind=k)
                     for k in ("BackendUnavailableError", "OperationTimeoutError"))
        assert errors == 1
        with pytest.raises(BackendError):
            await c.replay("d")
        own_kafka.restart()
        deadline = time.monotonic() + 20
        while True:
            try:
                after = await c.multicast(None, b"after")
                break
            except BackendError:
                assert time.monotonic() < deadline, "the journal did not come back"
                await asyncio.sleep(0.1)
        assert after.statuses == {"d": DELIVERED}
        assert await dur.statuses(after.message_id) == {"d": DELIVERED}
        # The memory-only broker lost the journal: this instance keeps what it had read and re-reads the
        # new journal from its start; a fresh instance finds only what was written after the restart —
        # not the failed "down" multicast, even if the producer delivered its records late (aborted).
        assert await dur.statuses(before.message_id) == {"d": DELIVERED}
        assert dur.journal_resets == 1
        fresh = KafkaDurability(own_kafka.url, topic="faults.journal", timeout=2.0)
        await fresh.open()
        try:
            assert [m["message_id"] for m in await fresh.messages()] == [after.message_id]
        finally:
            await fresh.close()
