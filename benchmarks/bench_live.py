"""Live benchmark: the coordinator on real Redis + NATS, each figure beside a baseline from the same run.

Run: ``.venv/bin/python benchmarks/bench_live.py``. It starts its own redis-server and nats-server on free
loopback ports (``mcastlab.servers``) and stops them afterwards. Machines here are shared and noisy: read
the ratios (measured back to back, best of ``ROUNDS``), not the absolute times.

1. register throughput, 100 concurrent callers  vs  raw redis.asyncio pipelined HSET+EXPIRE (goal >= 0.7)
2. enumerate 1,000 matching of 10,000 via the index  vs  naive SCAN + HGETALL + client filter (goal >= 10x)
3. enumerate 1,000 p50 and multicast to 100 / 1,000 / 10,000 via NATS (publish mode) p50, beside the
   spec's targets and the reference implementation's figures
4. multicast to 10,000  vs  a raw nats-py publish loop of the same messages (goal >= 0.7)
5. the hot path, end to end: multicast to all 10,000 (enumerate + fan-out + result) vs the raw publish
   loop (goal >= 0.7), and enumerate 1,000 of 10,000 vs a raw pipeline of 1,000 HGET of a JSON document
   + json.loads (goal >= 3x faster)
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import redis.asyncio as aioredis

from mcastlab import Config, Coordinator, servers
from mcastlab.backends import MemoryMessaging, NatsMessaging, RedisRegistry
from mcastlab.backends._subjects import HEADER, encode_token, header_value
from mcastlab.backends.base import Message

REGISTER_N = 20_000  # identities per register round
CALLERS = 100  # concurrent register callers
RAW_BATCH = 500  # raw baseline: HSET+EXPIRE pairs per pipeline
POPULATION = 10_000  # identities for the enumerate and multicast benchmarks
ENUM_FILTER = 'status == "online" and group == 3'  # matches exactly 1,000 of POPULATION
ROUNDS = 3  # throughput rounds (best counts)
SAMPLES = 25  # latency samples per p50
PAYLOAD = b'{"cmd": "update", "url": "https://example.invalid/fw/1.2.4.bin"}'


def metadata(i: int) -> dict[str, Any]:
    """Deterministic metadata: group = i % 10, 1 in 20 offline (never in group 3), 100 per bucket."""
    return {"status": "offline" if i % 20 == 7 else "online", "group": i % 10, "bucket": i % 100,
            "firmware_version": f"1.2.{i % 13}", "region": f"r{i % 4}"}


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def ms(s: float) -> str:
    return f"{s * 1000:8.2f} ms"


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    """Wall time of ``n`` sequential calls."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


# --------------------------------------------------------------------------- 1. register throughput
async def raw_register(url: str, tag: str) -> float:
    r = aioredis.from_url(url)
    t = time.perf_counter()
    for start in range(0, REGISTER_N, RAW_BATCH):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(REGISTER_N, start + RAW_BATCH)):
            md = metadata(i)
            pipe.hset(f"raw{tag}:{i}", mapping={k: str(v) for k, v in md.items()})
            pipe.expire(f"raw{tag}:{i}", 300)
        await pipe.execute()
    dt = time.perf_counter() - t
    await r.aclose()
    return REGISTER_N / dt


async def coord_register(url: str, tag: str) -> float:
    config = Config(max_identities=None, default_ttl=300)
    async with Coordinator(config, registry=RedisRegistry(url, prefix=f"reg{tag}:"),
                           messaging=MemoryMessaging()) as c:
        names = iter(range(REGISTER_N))

        async def caller() -> None:
            for i in names:
                await c.register(f"dev-{i}", metadata(i))

        t = time.perf_counter()
        await asyncio.gather(*[caller() for _ in range(CALLERS)])
        return REGISTER_N / (time.perf_counter() - t)


# --------------------------------------------------------------------------- 2. enumerate
async def naive_populate(url: str) -> None:
    r = aioredis.from_url(url)
    pipe = r.pipeline(transaction=False)
    for i in range(POPULATION):
        pipe.hset(f"naive:dev-{i}", mapping={k: str(v) for k, v in metadata(i).items()})
    await pipe.execute()
    await r.aclose()


async def naive_enumerate(r: aioredis.Redis) -> list[str]:
    """What a registry without indexes does: SCAN every key, HGETALL each (pipelined), filter here."""
    found = []
    async for keys in _scan_pages(r, "naive:*"):
        pipe = r.pipeline(transaction=False)
        for k in keys:
            pipe.hgetall(k)
        for k, h in zip(keys, await pipe.execute(), strict=True):
            if h.get(b"status") == b"online" and h.get(b"group") == b"3":
                found.append(k.decode()[6:])
    return found


async def _scan_pages(r: aioredis.Redis, match: str) -> Any:
    cursor = 0
    while True:
        cursor, keys = await r.scan(cursor, match=match, count=1000)
        if keys:
            yield keys
        if cursor == 0:
            return


# --------------------------------------------------------------------------- 4. raw NATS loop
async def raw_nats_loop(url: str, subjects: list[str], headers: bool) -> float:
    nc = await nats.connect(url)
    try:
        msg = Message("raw-1", PAYLOAD, "x", time.time())
        hdr = {HEADER: header_value(msg)} if headers else None
        best = float("inf")
        for _ in range(ROUNDS + 2):
            t = time.perf_counter()
            for s in subjects:
                await nc.publish(s, PAYLOAD, headers=hdr)
            await nc.flush()
            best = min(best, time.perf_counter() - t)
        return best
    finally:
        await nc.close()


async def bench_register(rurl: str) -> None:
    raw_rates, coord_rates = [], []
    for k in range(ROUNDS):  # interleaved, so both see the same machine load
        raw_rates.append(await raw_register(rurl, str(k)))
        coord_rates.append(await coord_register(rurl, str(k)))
    raw_best, coord_best = max(raw_rates), max(coord_rates)
    print(f"1. register throughput, {CALLERS} concurrent callers")
    print(f"   raw redis.asyncio pipelined HSET+EXPIRE : {raw_best:9,.0f} /s")
    print(f"   coordinator (RedisRegistry)             : {coord_best:9,.0f} /s   "
          f"ratio {coord_best / raw_best:.2f} (goal >= 0.7)\n")


async def bench_enumerate(c: Coordinator, r: aioredis.Redis) -> float:
    assert len(await c.enumerate(ENUM_FILTER)) == 1000
    assert len(await naive_enumerate(r)) == 1000
    naive = p50(await timed(lambda: naive_enumerate(r), max(5, SAMPLES // 3)))
    indexed = p50(await timed(lambda: c.enumerate(ENUM_FILTER), SAMPLES))
    print(f"2. enumerate 1,000 matching of {POPULATION:,} ({ENUM_FILTER})")
    print(f"   naive SCAN + HGETALL + client filter    : {ms(naive)} p50")
    print(f"   coordinator via the index sets          : {ms(indexed)} p50   "
          f"{naive / indexed:.1f}x faster (goal >= 10x)\n")
    return indexed


async def bench_latency(c: Coordinator, rurl: str, indexed: float) -> dict[str, tuple[float, float]]:
    config = Config(max_identities=None, default_ttl=3600)
    async with Coordinator(config, registry=RedisRegistry(rurl, prefix="bench1k:"),
                           messaging=MemoryMessaging()) as c1k:
        await asyncio.gather(*[c1k.register(f"dev-{i:04}", metadata(i)) for i in range(1000)])
        enum_all = p50(await timed(c1k.enumerate, SAMPLES))
    results = {}
    for label, flt, n in (("100", "bucket == 5", SAMPLES), ("1,000", "group == 4", SAMPLES),
                          ("10,000", None, 9)):
        samples, fanout = [], []
        for _ in range(n):
            res = await c.multicast(flt, PAYLOAD, mode="publish")
            assert res.failed == 0 and res.targeted == int(label.replace(",", ""))
            samples.append(res.duration_s)
            fanout.append(res.duration_s - res.enumerate_s)
        results[label] = (p50(samples), p50(fanout))
    ref = "(< 20 ms | 93 µs in-process)"
    print("3. latency p50 (spec target | reference implementation)")
    print(f"   enumerate 1,000 (all of 1,000)          : {ms(enum_all)}   {ref}")
    print(f"   enumerate 1,000 (filtered, of 10,000)   : {ms(indexed)}   {ref}")
    for label, target, reference in (("100", "< 100 ms", "51 µs mocks"), ("1,000", "-", "24 ms"),
                                     ("10,000", "-", "-")):
        total, fan = results[label]
        print(f"   multicast to {label:>6} via NATS, publish : {ms(total)}   ({target} | {reference}); "
              f"fan-out alone {ms(fan).strip()}")
    print()
    return results


async def bench_fanout(nurl: str, total: float, fan: float) -> None:
    subjects = [f"bench.{encode_token(f'dev-{i:05}')}" for i in range(POPULATION)]
    raw_plain = await raw_nats_loop(nurl, subjects, headers=False)
    raw_hdr = await raw_nats_loop(nurl, subjects, headers=True)
    print(f"4. multicast to {POPULATION:,} vs a raw nats-py publish loop (+ one flush)")
    print(f"   raw loop, bare payloads                 : {ms(raw_plain)}")
    print(f"   raw loop, same header as mcastlab       : {ms(raw_hdr)}")
    print(f"   coordinator fan-out (after enumerate)   : {ms(fan)}   ratio {raw_plain / fan:.2f} vs bare, "
          f"{raw_hdr / fan:.2f} vs same wire (goal >= 0.7)")
    print(f"   coordinator multicast incl. enumerate   : {ms(total)}   "
          f"ratio {raw_plain / total:.2f} vs bare")


async def raw_hget_json(url: str) -> float:
    """Baseline of 5.: the 1,000 matching ids' JSON documents by a pipeline of HGETs, decoded here."""
    r = aioredis.from_url(url)
    pipe = r.pipeline(transaction=False)
    for i in range(POPULATION):
        pipe.hset(f"rawjson:dev-{i:05}", "m", json.dumps(metadata(i)))
    await pipe.execute()
    ids = [f"rawjson:dev-{i:05}" for i in range(POPULATION) if i % 10 == 3]

    async def fetch() -> list[Any]:
        p = r.pipeline(transaction=False)
        for k in ids:
            p.hget(k, "m")
        return [json.loads(m) for m in await p.execute()]

    assert len(await fetch()) == 1000
    best = p50(await timed(fetch, SAMPLES))
    await r.aclose()
    return best


async def bench_hot_path(nurl: str, rurl: str, c: Coordinator, indexed: float) -> None:
    subjects = [f"bench.{encode_token(f'dev-{i:05}')}" for i in range(POPULATION)]
    raw_loop = await raw_nats_loop(nurl, subjects, headers=False)
    ends = []
    for _ in range(9):
        t = time.perf_counter()
        res = await c.multicast(None, PAYLOAD, mode="publish")
        ends.append(time.perf_counter() - t)
        assert res.delivered == POPULATION
    end = p50(ends)
    raw_enum = await raw_hget_json(rurl)
    indexed = min(indexed, p50(await timed(lambda: c.enumerate(ENUM_FILTER), SAMPLES)))
    print("5. the hot path, each beside a raw-client baseline from the same run")
    print(f"   raw nats-py loop, {POPULATION:,} publishes + flush : {ms(raw_loop)}")
    print(f"   multicast to all {POPULATION:,}, end to end   : {ms(end)}   ratio {raw_loop / end:.2f} "
          "(goal >= 0.7)")
    print(f"   raw pipeline, 1,000 HGET + json.loads   : {ms(raw_enum)}")
    print(f"   enumerate 1,000 of {POPULATION:,} by equality : {ms(indexed)}   "
          f"{raw_enum / indexed:.2f}x faster (goal >= 3x)")


async def main() -> None:
    with servers.servers("redis", "nats") as srv:
        rurl, nurl = srv["redis"].url, srv["nats"].url
        print(f"redis-server {srv['redis'].version}, nats-server {srv['nats'].version}; "
              f"best of {ROUNDS} rounds, p50 of {SAMPLES} samples\n")
        await bench_register(rurl)
        r = aioredis.from_url(rurl)
        await r.flushdb()
        config = Config(max_identities=None, default_ttl=3600)
        async with Coordinator(config, registry=RedisRegistry(rurl, prefix="bench:"),
                               messaging=NatsMessaging(nurl, prefix="bench")) as c:
            await asyncio.gather(*[c.register(f"dev-{i:05}", metadata(i)) for i in range(POPULATION)])
            await naive_populate(rurl)
            indexed = await bench_enumerate(c, r)
            results = await bench_latency(c, rurl, indexed)
            await bench_fanout(nurl, *results["10,000"])
            print()
            await bench_hot_path(nurl, rurl, c, indexed)
        await r.aclose()


if __name__ == "__main__":
    asyncio.run(main())
