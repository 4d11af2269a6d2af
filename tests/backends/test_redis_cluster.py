"""RedisClusterRegistry on the session's 3+3 Redis Cluster (what the contract suite does not cover):
typed configuration errors, the documented shard hash, spreading over every master, one round trip per
node for a read over every shard, the shard count guard, and a replication watch that confirms writes and
counts nothing lost when nothing failed."""

from __future__ import annotations

import time
import zlib
from typing import Any

import pytest

from mcastlab import Config, Coordinator, servers
from mcastlab.backends import MemoryMessaging, RedisClusterRegistry
from mcastlab.backends._redis_cluster_keys import shard_of
from mcastlab.errors import ConfigError
from mcastlab.filters import compile_filter
from mcastlab.identity import Identity

URL = "redis://127.0.0.1:7000"


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"nodes": []}, "nodes"),
    ({"nodes": "http://127.0.0.1:7000"}, "nodes"),
    ({"nodes": "redis://127.0.0.1"}, "nodes"),
    ({"nodes": "redis://127.0.0.1:7000/3"}, "nodes"),
    ({"nodes": ["redis://a:1", "rediss://b:2"]}, "nodes"),
    ({"nodes": 7000}, "nodes"),
    ({"shards": 0}, "shards"),
    ({"shards": 2.5}, "shards"),
    ({"shards": 100_000}, "shards"),
    ({"prefix": "a{b}:"}, "prefix"),
    ({"retry_budget": -1}, "retry_budget"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"lanes": True}, "lanes"),
    ({"confirm_interval": 0}, "confirm_interval"),
    ({"key_grace": 0}, "key_grace"),
])
def test_bad_options_are_refused_naming_the_option(kwargs: dict[str, Any], key: str) -> None:
    kw = {"nodes": URL, **kwargs}
    with pytest.raises(ConfigError) as info:
        RedisClusterRegistry(kw.pop("nodes"), **kw)
    assert info.value.key == key


def test_the_shard_hash_is_crc32_of_the_encoded_name() -> None:
    """Pinned values: another process (or language) computes the same shard from the documented rule."""
    assert shard_of("sensor-42", 16) == zlib.crc32(b"sensor-42") % 16 == 9
    assert shard_of("ü/x", 16) == zlib.crc32(b"%C3%BC%2Fx") % 16 == 4
    assert RedisClusterRegistry.shard_of("sensor-42", 7) == zlib.crc32(b"sensor-42") % 7
    reg = RedisClusterRegistry(URL, prefix="p:", shards=4)
    assert reg.keys.bases == ["p:{p:0}:", "p:{p:1}:", "p:{p:2}:", "p:{p:3}:"]
    assert reg.keys.meta == "p:{p:meta}"




@pytest.mark.live
async def test_identities_spread_over_every_shard_and_master(redis_cluster_nodes: Any) -> None:
    cluster: servers.RedisClusterNodes = redis_cluster_nodes
    reg = RedisClusterRegistry(cluster.urls, prefix="spread:")
    async with Coordinator(Config(default_ttl=60, max_identities=None), registry=reg,
                           messaging=MemoryMessaging()) as c:
        for i in range(400):
            await c.register(f"d{i}", {"i": i})
        per_shard = [await _zcard(cluster, reg, k) for k in range(reg.shards)]
        assert sum(per_shard) == 400 and all(n > 0 for n in per_shard)
        owners = {cluster.master_for_slot(slot) for slot in reg.keys.slots}
        assert len(owners) == 3  # 16 shards land on all three masters
        assert await reg.identities() == 400 == await c.count()


async def _zcard(cluster: servers.RedisClusterNodes, reg: RedisClusterRegistry, k: int) -> int:
    return int(cluster.command(cluster.master_for_slot(reg.keys.slots[k]), "ZCARD", reg.keys.zkeys[k]))


@pytest.mark.live
async def test_a_read_over_every_shard_is_one_round_trip_per_node(redis_cluster_nodes: Any) -> None:
    reg = RedisClusterRegistry(redis_cluster_nodes.urls, prefix="trips:", confirm_interval=3600)
    await reg.open(None)
    try:
        now = time.time()
        for i in range(50):
            await reg.upsert(Identity(f"d{i}", {"g": i % 3}, now, now + 60), now=now, max_identities=None)
        pipes = reg.client._pipes
        for flt in (None, {"g": 1}, "g == 1 or g == 2", "g > 0"):
            cf = compile_filter(flt)
            before = {addr: p.batches for addr, p in pipes.items()}
            got = await reg.query(cf, now=now)
            sent = {addr: p.batches - before.get(addr, 0) for addr, p in pipes.items()}
            assert sent == dict.fromkeys(reg.client.masters, 1), (flt, sent)
            want = sorted(f"d{i}" for i in range(50) if cf.predicate({"g": i % 3}))
            assert sorted(i.id for i in got) == want
    finally:
        await reg.close()


@pytest.mark.live
async def test_another_shard_count_on_the_same_prefix_is_refused(redis_cluster_nodes: Any) -> None:
    first = RedisClusterRegistry(redis_cluster_nodes.urls, prefix="guard:", shards=8)
    await first.open(None)
    await first.close()
    with pytest.raises(ConfigError) as info:
        await RedisClusterRegistry(redis_cluster_nodes.urls, prefix="guard:", shards=16).open(None)
    assert info.value.key == "shards" and "shards=8" in str(info.value)


@pytest.mark.live
async def test_replicated_writes_are_confirmed_and_nothing_counts_as_lost(redis_cluster_nodes: Any) -> None:
    reg = RedisClusterRegistry(redis_cluster_nodes.urls, prefix="watch:", confirm_interval=0.05)
    async with Coordinator(Config(default_ttl=60, max_identities=None), registry=reg,
                           messaging=MemoryMessaging()) as c:
        for i in range(300):
            await c.register(f"d{i}", {"i": i})
            if i % 3 == 0:
                await c.heartbeat(f"d{i}")
            if i % 5 == 0:
                await c.unregister(f"d{i}")
        assert reg._watch.unconfirmed > 0
        deadline = time.monotonic() + 15
        while reg._watch.unconfirmed:  # replicas acknowledge their offset about once a second
            assert time.monotonic() < deadline, "writes never confirmed as replicated"
            await reg.check_replication()
        assert reg.lost_writes == 0 and reg.lost == []
