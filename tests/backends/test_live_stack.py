"""The whole coordinator on real servers: Redis registry with NATS or Redis pub/sub messaging."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest

from mcastlab import Config, Coordinator
from mcastlab.backends import DELIVERED, NO_LISTENER, NatsMessaging, RedisPubSubMessaging, RedisRegistry

pytestmark = [pytest.mark.live, pytest.mark.timeout(60)]


@pytest.mark.parametrize("messaging", ["nats", "redis-pubsub"])
async def test_iot_round_trip(request: pytest.FixtureRequest, redis_server: Any, prefix: str,
                              messaging: str) -> None:
    if messaging == "nats":
        msg: Any = NatsMessaging(request.getfixturevalue("nats_server").url, prefix=prefix.rstrip(":"))
    else:
        msg = RedisPubSubMessaging(redis_server.url, prefix=prefix)
    reg = RedisRegistry(redis_server.url, prefix=prefix)
    async with Coordinator(Config(max_identities=None, send_retries=0), registry=reg, messaging=msg) as c:
        for i in range(500):
            await c.register(f"sensor-{i:03}", {"status": "online" if i % 4 else "offline",
                                                "firmware_version": f"1.2.{i % 12}", "region": f"r{i % 3}"})
        flt = 'status == "online" and firmware_version < v"1.2.10" and region in ["r0", "r2"]'
        targets = sorted(i.id for i in await c.enumerate(flt))
        assert targets and await c.count(flt) == len(targets)
        async with AsyncExitStack() as stack:
            boxes = {t: await stack.enter_async_context(c.inbox(t)) for t in targets[:5]}
            res = await c.multicast(flt, b"update", mode="publish")
            assert sorted(res.statuses) == targets and set(res.statuses.values()) == {DELIVERED}
            for box in boxes.values():
                assert (await box.get(timeout=5)).payload == b"update"
            res = await c.multicast(flt, b"ack?", mode="ack")
            assert {k for k, v in res.statuses.items() if v == DELIVERED} == set(boxes)
            assert set(res.statuses.values()) == {DELIVERED, NO_LISTENER}
        assert await c.unregister(targets[0])
        assert await c.count(flt) == len(targets) - 1
