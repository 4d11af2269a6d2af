"""The scale path: columnar fleets, cohort heartbeats, batched expiry claimed exactly once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mcastlab.filters import compile_filter
from mcastlab.sim import CohortFleet, FleetTable

CONST = {"registry": {"service": {"default": 1e-5}, "network": {"default": 1e-4}}}


def test_fleet_table_deadlines_and_claims() -> None:
    f = FleetTable("dev-", 10, [{"fw": "1"}, {"fw": "2"}], np.arange(10) % 2)
    assert f.name(3) == "dev-3" and f.index("dev-3") == 3 and f.index("dev-33") is None
    all_ = np.arange(10)
    added, pending = f.upsert(all_, now=0.0, expires_at=10.0)
    assert (added, pending) == (10, [])
    missing = f.touch(np.arange(5), now=5.0, expires_at=20.0)
    assert len(missing) == 0
    assert f.next_deadline() == 10.0
    assert [e.id for e in f.claim(9.99, 100)] == []
    first = f.claim(10.0, 3)
    rest = f.claim(10.0, 100)
    assert [e.id for e in first + rest] == [f"dev-{i}" for i in range(5, 10)]
    assert {e.deadline for e in first + rest} == {10.0}
    assert f.claim(10.0, 100) == []
    assert f.next_deadline() == 20.0
    assert f.n_present == 5
    assert list(f.touch(np.array([4, 5]), now=11.0, expires_at=30.0)) == [5]
    fw1 = compile_filter('fw == "1"')
    assert f.live(fw1, 12.0).tolist() == [0, 2, 4]
    assert [i.id for i in f.identities(f.live(fw1, 12.0))] == ["dev-0", "dev-2", "dev-4"]
    assert f.identities(np.array([4]))[0].metadata == {"fw": "1"}
    assert f.live(fw1, 25.0).tolist() == [4]
    added, pending = f.upsert(np.array([0, 9]), now=25.0, expires_at=40.0)  # 0 expired unswept at 20
    assert added == 2 and [(e.id, e.deadline) for e in pending] == [("dev-0", 20.0)]


def test_coordinator_sees_fleet_identities(sim_setup: Any) -> None:
    s = sim_setup(CONST)
    c, reg, rt = s.coordinator, s.registry, s.runtime
    fleet = reg.add_fleet(
        "sensor-",
        1000,
        [{"fw": "1.2.3", "status": "online"}, {"fw": "1.3.0", "status": "online"}],
        (np.arange(1000) % 10 == 0).astype(int),
        width=4,
    )

    async def main() -> dict[str, Any]:
        await c.open()
        await reg.upsert_many(fleet, np.arange(1000), now=rt.now(), ttl=100)
        await c.register("sensor-0001", {"fw": "9.9.9"}, ttl=100)  # routed into the fleet
        await c.register("gateway", {"fw": "1.3.0", "status": "online"}, ttl=100)
        out = {
            "old": await c.count('fw < v"1.3"'),
            "new": [i.id for i in await c.enumerate({"fw": "1.3.0"})],
            "custom": await c.get("sensor-0001"),
            "n": len(reg),
        }
        await c.heartbeat("sensor-0002", ttl=500)
        out["hb"] = (await c.get("sensor-0002")).expires_at
        out["removed"] = await c.unregister("sensor-0003")
        out["n2"] = len(reg)
        await c.close()
        return out

    out = s.run(main())
    assert out["old"] == 899
    assert out["new"] == ["gateway"] + [f"sensor-{i:04d}" for i in range(0, 1000, 10)]
    assert out["custom"].metadata == {"fw": "9.9.9"}
    assert out["n"] == 1001
    assert out["hb"] == pytest.approx(500, abs=0.01)
    assert out["removed"] and out["n2"] == 1000


def test_cohort_fleet_deaths_expire_exactly_once_with_small_lag(sim_setup: Any) -> None:
    s = sim_setup(CONST, sweep_interval=1.0)
    c, reg, rt = s.coordinator, s.registry, s.runtime
    fleet = reg.add_fleet("dev-", 2000, [{"fw": "1"}])
    driver = CohortFleet(
        reg,
        fleet,
        ttl=30,
        heartbeat=10,
        rng=np.random.default_rng(5),
        cohorts=10,
        churn_per_hour=360.0,
        coordinator=c,
    )

    async def main() -> None:
        await c.open()
        driver.start()
        await rt.sleep(100)
        driver.stop()
        await rt.sleep(40)  # everyone left expires
        await c.close()

    s.run(main())
    exp = s.recorder.expirations_frame()
    assert exp.identity.is_unique
    assert len(exp) == 2000 == c.expired_total
    assert driver.stats.registrations == 2000
    assert driver.stats.deaths > 500
    assert exp.lag_s.min() >= 0 and exp.lag_s.max() < 1.1
    assert fleet.n_present == 0 and len(reg) == 0
    assert c.registered == 0  # bulk registrations counted in, expiries counted out
    assert reg.stats["batch"].items == driver.stats.heartbeats + 2 * driver.stats.registrations


def test_fleet_outage_expires_each_identity_once_and_reregisters(sim_setup: Any) -> None:
    spec = {**CONST, "faults": [{"target": "registry", "kind": "outage", "start": 20, "duration": 15}]}
    s = sim_setup(spec, sweep_interval=1.0)
    c, reg, rt = s.coordinator, s.registry, s.runtime
    fleet = reg.add_fleet("dev-", 1000, [{"fw": "1"}])
    driver = CohortFleet(reg, fleet, ttl=10, heartbeat=4, rng=np.random.default_rng(1), cohorts=4)

    async def main() -> None:
        await c.open()
        driver.start()
        await rt.sleep(60)
        driver.stop()
        await c.close()

    s.run(main())
    exp = s.recorder.expirations_frame()
    assert exp.identity.is_unique and len(exp) == 1000 == c.expired_total
    assert ((exp.deadline > 20) & (exp.deadline < 35)).all()  # all fell inside the outage
    assert (exp.t_detected >= 35).all()
    assert (exp.lag_s == exp.t_detected - exp.deadline).all() and exp.lag_s.min() > 0
    assert driver.stats.failed_batches > 0
    assert driver.stats.registrations == 2000  # once at start, once after the outage
    assert fleet.n_present == 1000
