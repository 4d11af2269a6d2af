"""Expiry claims on Redis and Redis Cluster whose replies are lost: every expiry is still counted once.

A lost reply is made the way it happens: the claim script runs on the real server, then the client sees a
connection error instead of the reply (the call is wrapped to raise after the server answered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from mcastlab import Config, Coordinator
from mcastlab.backends import MemoryMessaging, RedisClusterRegistry, RedisRegistry
from mcastlab.backends._redis_claims import ClaimLedger
from mcastlab.errors import BackendUnavailableError, ConfigError
from mcastlab.runtime import AsyncioRuntime

pytestmark = [pytest.mark.live, pytest.mark.timeout(60)]


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["redis", "redis-cluster"])
def make_registry(request: pytest.FixtureRequest, prefix: str) -> Callable[[], Any]:
    """A new client on one shared registry (same prefix) of the parametrized kind."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_server").url
        return lambda: RedisRegistry(url, prefix=prefix)
    nodes = request.getfixturevalue("redis_cluster_nodes").urls
    return lambda: RedisClusterRegistry(nodes, prefix=prefix, shards=4)


def lose_claim_replies(reg: Any, times: int) -> list[int]:
    """Make the next ``times`` claim calls of ``reg`` run on the server and then fail as a dropped
    connection would; returns a list that grows by one per reply lost."""
    lost: list[int] = []
    if isinstance(reg, RedisRegistry):
        real = reg._script

        async def script(name: str, *args: Any) -> Any:
            got = await real(name, *args)
            if name == "claim" and len(lost) < times:
                lost.append(1)
                raise BackendUnavailableError("redis: connection lost before the reply (injected)")
            return got

        reg._script = script  # type: ignore[method-assign]
        return lost
    client = reg._client
    real_many = client.many

    async def many(items: Any, **kw: Any) -> Any:
        got = await real_many(items, **kw)
        if items and items[0][2][1] == _claim_sha() and len(lost) < times:
            lost.append(1)
            return [BackendUnavailableError("redis: connection lost before the reply (injected)")] * len(got)
        return got

    client.many = many
    return lost


def _claim_sha() -> str:
    from mcastlab.backends._redis_cluster_keys import SHA

    return SHA["claim"]


def coordinator(reg: Any, clock: Clock) -> Coordinator:
    return Coordinator(Config(auto_sweep=False, default_ttl=5), registry=reg, messaging=MemoryMessaging(),
                       runtime=AsyncioRuntime(clock))


async def test_a_lost_claim_reply_is_handed_out_again_and_counted_once(make_registry: Any) -> None:
    clock = Clock()
    reg = make_registry()
    async with coordinator(reg, clock) as c:
        for i in range(30):
            await c.register(f"d{i}", {"i": i})
        clock.t += 10
        lost = lose_claim_replies(reg, 1)
        with pytest.raises(BackendUnavailableError):
            await c.sweep()
        assert lost == [1] and c.expired_total == 0
        assert await c.registry.identities() < 30  # the server did remove them: only the reply was lost
        await c.sweep()
        await c.sweep()
        assert c.expired_total == 30
        assert await c.registry.identities() == 0


async def test_a_claimer_that_stops_unacknowledged_leaves_its_batch_to_the_next(make_registry: Any) -> None:
    clock = Clock()
    a, b = make_registry(), make_registry()
    async with coordinator(a, clock) as ca, coordinator(b, clock) as cb:
        for i in range(20):
            await ca.register(f"d{i}", {})
        clock.t += 10
        lose_claim_replies(a, 10**6)  # a never gets a reply again
        with pytest.raises(BackendUnavailableError):
            await ca.sweep()
        await cb.sweep()
        assert cb.expired_total < 20  # a's batch is a's until it goes stale
        clock.t += 61  # > claim_stale (60 s)
        await cb.sweep()
        assert ca.expired_total + cb.expired_total == 20 and cb.expired_total == 20


async def test_a_lost_acknowledgement_is_completed_by_the_next_claim(make_registry: Any) -> None:
    """A batch received but not acknowledged (claim_ack lost) stays its claimer's: another claimer does not
    take it while it is fresh, and the claimer's next claim (the sweeper claims every sweep_interval, far
    below claim_stale) acknowledges it; nothing is counted twice."""
    clock = Clock()
    a, b = make_registry(), make_registry()
    async with coordinator(a, clock) as ca, coordinator(b, clock) as cb:
        for i in range(12):
            await ca.register(f"d{i}", {})
        clock.t += 10
        if isinstance(a, RedisRegistry):
            real = a._script

            async def no_ack(name: str, *args: Any) -> Any:
                if name == "claim_ack":
                    raise BackendUnavailableError("injected")
                return await real(name, *args)

            a._script = no_ack  # type: ignore[method-assign]
        else:
            real_many = a._client.many

            async def no_ack_many(items: Any, **kw: Any) -> Any:
                if items and items[0][2][3].endswith("claims"):
                    return [BackendUnavailableError("injected")] * len(items)
                return await real_many(items, **kw)

            a._client.many = no_ack_many
        await ca.sweep()  # received, not acknowledged
        assert ca.expired_total == 12
        clock.t += 30
        await cb.sweep()  # fresh: not taken
        await ca.sweep()  # acknowledges
        clock.t += 61
        await asyncio.gather(cb.sweep(), ca.sweep())
        assert (ca.expired_total, cb.expired_total) == (12, 0)


async def test_lapsed_lifetimes_survive_a_lost_reply_too(make_registry: Any) -> None:
    clock = Clock()
    reg = make_registry()
    async with coordinator(reg, clock) as c:
        await c.register("dev", {"v": 1}, ttl=5)
        clock.t += 10
        await c.register("dev", {"v": 2}, ttl=100)
        lose_claim_replies(reg, 1)
        with pytest.raises(BackendUnavailableError):
            await c.sweep()
        await c.sweep()
        assert c.expired_total == 1 and [i.id for i in await c.enumerate()] == ["dev"]


def test_claim_stale_is_validated() -> None:
    with pytest.raises(ConfigError, match="claim_stale"):
        ClaimLedger(0)
    with pytest.raises(ConfigError, match="claim_stale"):
        RedisRegistry("redis://127.0.0.1:1", claim_stale=float("nan"))
