"""The scale path's storage: columnar fleets in the simulated registry, batched expiry claimed exactly once
(the cohort engine that drives them is tested in tests/workloads/test_wl_cohort.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mcastlab.filters import compile_filter
from mcastlab.sim import FleetTable

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
