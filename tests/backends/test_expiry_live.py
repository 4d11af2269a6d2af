"""Expiry on a real Redis in real time: three coordinators sweep one registry; each of 300 identities is
counted exactly once, and no enumerate after a deadline returns the expired identity."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from mcastlab import Config, Coordinator, ExpirationEvent
from mcastlab.backends import MemoryMessaging, RedisRegistry

pytestmark = [pytest.mark.live, pytest.mark.timeout(60)]


async def test_three_coordinators_count_300_expiries_exactly_once(redis_server: Any, prefix: str,
                                                                  consistency: Any) -> None:
    config = Config(default_ttl=1.0, max_identities=None, sweep_batch=50)
    coords = [Coordinator(config, registry=RedisRegistry(redis_server.url, prefix=prefix),
                          messaging=MemoryMessaging(), name=f"c{i}") for i in range(3)]
    events: list[ExpirationEvent] = []
    for c in coords:
        c.add_listener(lambda e: events.append(e) if isinstance(e, ExpirationEvent) else None)
    async with coords[0] as c0, coords[1] as c1, coords[2] as c2:
        cs = (c0, c1, c2)
        await asyncio.gather(*[cs[i % 3].register(f"dev-{i}", {"status": "online", "g": i % 5})
                               for i in range(300)])
        checks = 0
        give_up = time.time() + 20
        while sum(c.expired_total for c in cs) < 300 and time.time() < give_up:
            for c, flt in ((c0, None), (c1, {"status": "online"}), (c2, "g in [1, 3]")):
                t_before = time.time()
                found = await c.enumerate(flt)
                assert all(i.expires_at is not None and i.expires_at > t_before for i in found)
                checks += 1
            await asyncio.sleep(0.005)
        for c in cs:  # anything a background sweep left is claimed now; none may be claimed twice
            await c.sweep()
        totals = [c.expired_total for c in cs]
        assert sum(totals) == 300, totals
        assert checks > 10
        assert sorted(e.identity for e in events) == sorted(f"dev-{i}" for i in range(300))
        assert all(e.lag_s >= 0 for e in events)
        assert await c0.enumerate() == [] and await c1.count() == 0
        assert sum(c.metrics.value("multicast_registry_ttl_expiration_total") for c in cs) == 300
        assert await consistency(redis_server.url, c0.registry.base) == []
