"""Cluster benchmark: RedisClusterRegistry on a local 3-master + 3-replica Redis Cluster beside
RedisRegistry on one redis-server, measured in the same run; multicasts through one nats-server and
through a 3-node NATS cluster.

Run: ``.venv/bin/python benchmarks/bench_cluster.py``. It starts its own servers on free loopback ports
and stops them afterwards. All servers and the client share this machine's cores (a 3+3 cluster is six
redis-server processes), so the cluster cannot show the throughput of six machines here: read the
figures as the *cost* of the cluster layer (sharded scripts, per-node pipelines, admission counter), not
as its capacity.

1. register throughput, 100 concurrent callers: new identities, unlimited and with ``max_identities``
   (the cluster's admission counter), and re-registering existing ones
2. enumerate 1,000 of 10,000 (index plan), count, and the ids-only query of a multicast: p50
3. multicast to 1,000 / 10,000 (publish mode) p50: each registry with one nats-server, and the cluster
   registry with a 3-node NATS cluster
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mcastlab import Config, Coordinator, servers
from mcastlab.backends import MemoryMessaging, NatsMessaging, RedisClusterRegistry, RedisRegistry

REGISTER_N = 20_000
CALLERS = 100
POPULATION = 10_000
ENUM_FILTER = 'status == "online" and group == 3'  # matches exactly 1,000 of POPULATION
ROUNDS = 3
SAMPLES = 25
PAYLOAD = b'{"cmd": "update", "url": "https://example.invalid/fw/1.2.4.bin"}'


def metadata(i: int) -> dict[str, Any]:
    """group = i % 10, 1 in 20 offline (never in group 3)."""
    return {"status": "offline" if i % 20 == 7 else "online", "group": i % 10, "bucket": i % 100,
            "firmware_version": f"1.2.{i % 13}", "region": f"r{i % 4}"}


async def timed(fn: Callable[[], Awaitable[Any]], n: int = SAMPLES) -> float:
    """p50 wall time of ``n`` sequential calls (after one warm-up call)."""
    await fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


async def register_rate(make: Callable[[str], Any], tag: str, limit: int | None) -> tuple[float, float]:
    """(new identities / s, re-registers / s) with CALLERS concurrent callers; best of ROUNDS."""
    best_new = best_again = 0.0
    for r in range(ROUNDS):
        config = Config(default_ttl=600, max_identities=limit)
        async with Coordinator(config, registry=make(f"{tag}{r}:"), messaging=MemoryMessaging()) as c:
            async def run(lo: int) -> None:
                for i in range(lo, REGISTER_N, CALLERS):
                    await c.register(f"d{i}", metadata(i))

            for phase in ("new", "again"):
                t = time.perf_counter()
                await asyncio.gather(*(run(k) for k in range(CALLERS)))
                rate = REGISTER_N / (time.perf_counter() - t)
                if phase == "new":
                    best_new = max(best_new, rate)
                else:
                    best_again = max(best_again, rate)
    return best_new, best_again


async def reads_and_multicasts(make: Callable[[str], Any], nats_urls: list[str],
                               tag: str) -> dict[str, float]:
    """p50 of enumerate / count / ids-only query on POPULATION identities, and of publish multicasts."""
    out: dict[str, float] = {}
    messaging = NatsMessaging(nats_urls, prefix=f"bench{tag}")
    config = Config(default_ttl=600, max_identities=None)
    async with Coordinator(config, registry=make(f"{tag}reads:"), messaging=messaging) as c:
        await asyncio.gather(*(c.register(f"d{i}", metadata(i)) for i in range(POPULATION)))
        flt = c.compile(ENUM_FILTER)
        assert len(await c.enumerate(flt)) == 1000
        out["enumerate 1,000 of 10,000"] = await timed(lambda: c.enumerate(flt))
        out["count 1,000 of 10,000"] = await timed(lambda: c.count(flt))
        out["ids-only query 1,000"] = await timed(lambda: c.registry.query_ids(flt, now=time.time()))
        grp = c.compile({"group": 3})  # 1,000 targets (offline ones included)
        out["multicast 1,000 (publish)"] = await timed(lambda: c.multicast(grp, PAYLOAD, mode="publish"))
        every = c.compile(None)
        all_p50 = await timed(lambda: c.multicast(every, PAYLOAD, mode="publish"), 10)
        out["multicast 10,000 (publish)"] = all_p50
        res = await c.multicast(None, PAYLOAD, mode="publish")
        assert res.delivered == POPULATION, res
    return out


async def main() -> None:
    with servers.start("redis") as single, servers.start("nats") as one_nats, \
            servers.redis_cluster(3, 1) as rc, servers.nats_cluster(3) as nc:
        print(f"redis-server {single.version}, Redis Cluster 3 masters + 3 replicas, nats-server "
              f"{one_nats.version} alone and as a 3-node cluster; {REGISTER_N:,} registers x {ROUNDS} "
              f"rounds, {CALLERS} callers\n")

        def single_reg(prefix: str) -> Any:
            return RedisRegistry(single.url, prefix=prefix)

        def cluster_reg(prefix: str) -> Any:
            return RedisClusterRegistry(rc.urls, prefix=prefix)

        print(f"{'register throughput (ops/s)':<44}{'one redis':>14}{'cluster':>14}{'ratio':>8}")
        for label, limit in (("new identities, max_identities=None", None),
                             ("new identities, max_identities=10^6", 1_000_000)):
            s_new, s_again = await register_rate(single_reg, f"s{limit}", limit)
            c_new, c_again = await register_rate(cluster_reg, f"c{limit}", limit)
            print(f"{label:<44}{s_new:>14,.0f}{c_new:>14,.0f}{c_new / s_new:>8.2f}")
            print(f"{'  re-register the same ' + f'{REGISTER_N:,}':<44}{s_again:>14,.0f}{c_again:>14,.0f}"
                  f"{c_again / s_again:>8.2f}")
        single_p = await reads_and_multicasts(single_reg, [one_nats.url], "s")
        cluster_p = await reads_and_multicasts(cluster_reg, [one_nats.url], "c")
        both_p = await reads_and_multicasts(cluster_reg, nc.urls[:1], "cc")
        head = f"{'p50 latency (ms)':<36}{'one redis':>12}{'cluster':>12}{'ratio':>8}"
        print(f"\n{head}{'cluster+NATS cl.':>18}")
        for key in single_p:
            print(f"{key:<36}{single_p[key] * 1e3:>12.2f}{cluster_p[key] * 1e3:>12.2f}"
                  f"{cluster_p[key] / single_p[key]:>8.2f}{both_p[key] * 1e3:>18.2f}")


if __name__ == "__main__":
    asyncio.run(main())
