"""Faults declared in data: outages fail and are counted, service resumes, expiries survive outages."""

from __future__ import annotations

from typing import Any

import pytest

from mcastlab.backends.base import TIMEOUT, UNAVAILABLE
from mcastlab.errors import BackendUnavailableError
from mcastlab.identity import Identity
from mcastlab.workloads.agents import start_agents

CONST = {
    "registry": {"service": {"default": 1e-5}, "network": {"default": 1e-4}},
    "messaging": {"per_message": 1e-5, "flush": 1e-4, "delivery": 5e-4, "ack": 1e-4},
    "cpu": "off",  # exact constant latencies (no client CPU queue)
}


def spec(*faults: dict[str, Any]) -> dict[str, Any]:
    return {**CONST, "faults": list(faults)}


def test_registry_outage_fails_ops_then_recovers_and_expiries_are_counted_once(sim_setup: Any) -> None:
    s = sim_setup(spec({"target": "registry", "kind": "outage", "start": 10, "duration": 5}), default_ttl=60)
    c, rt = s.coordinator, s.runtime
    outcome: dict[str, Any] = {}

    async def main() -> None:
        await c.open()
        for i in range(20):  # deadlines 12.0..12.19 fall inside the outage [10, 15)
            await c.register(f"short-{i:02d}", {"kind": "short"}, ttl=12 - rt.now())
        for i in range(5):
            await c.register(f"long-{i}", {"kind": "long"}, ttl=100)
        await rt.sleep(11 - rt.now())
        failures = 0
        for i in range(3):
            try:
                await c.register(f"during-{i}", {})
            except BackendUnavailableError:
                failures += 1
            try:
                await c.enumerate()
            except BackendUnavailableError:
                failures += 1
        outcome["failures"] = failures
        outcome["t_fail"] = rt.now()
        await rt.sleep(16 - rt.now())
        await c.register("after", {"kind": "after"})
        outcome["after"] = sorted(i.id for i in await c.enumerate())
        await rt.sleep(5)
        await c.close()

    s.run(main())
    assert outcome["failures"] == 6
    assert outcome["t_fail"] == pytest.approx(11 + 6 * 0.001)  # each failure costs connect_timeout
    ops = s.recorder.ops_frame()
    failed = ops[~ops.ok]
    assert set(failed.op) == {"register", "enumerate"}
    assert (failed.error == "BackendUnavailableError").all()
    assert len(failed) == 6
    assert s.registry.stats.failures("register") == 3 and s.registry.stats.failures("query") == 3
    assert s.registry.stats.failures("claim") + s.registry.stats.failures("next_deadline") >= 1
    assert c.sweep_errors >= 1
    assert ops[ops.t_start > 15].ok.all()
    assert outcome["after"] == ["after"] + [f"long-{i}" for i in range(5)]
    exp = s.recorder.expirations_frame()
    assert sorted(exp.identity) == [f"short-{i:02d}" for i in range(20)]  # each exactly once
    assert c.expired_total == 20
    assert (exp.deadline < 15).all() and (exp.deadline >= 12).all()
    assert (exp.t_detected >= 15).all()
    assert (exp.lag_s == exp.t_detected - exp.deadline).all()
    assert exp.lag_s.min() > 2.5 and exp.lag_s.max() < 4.5


def test_messaging_outage_marks_sends_unavailable_then_delivers(sim_setup: Any) -> None:
    s = sim_setup(
        spec({"target": "messaging", "kind": "outage", "start": 5, "duration": 10}),
        send_retries=1,
        retry_backoff=0.01,
    )
    c, rt = s.coordinator, s.runtime
    results = {}

    async def main() -> None:
        await c.open()
        for i in range(10):
            await c.register(f"d{i}", {"g": "a"}, ttl=1000)
        pool = start_agents(c, [f"d{i}" for i in range(10)])
        await rt.sleep(6 - rt.now())
        results["publish_during"] = await c.multicast({"g": "a"}, b"x", mode="publish")
        results["ack_during"] = await c.multicast({"g": "a"}, b"x", mode="ack")
        await rt.sleep(16 - rt.now())
        results["ack_after"] = await c.multicast({"g": "a"}, b"x", mode="ack")
        results["publish_after"] = await c.multicast({"g": "a"}, b"x", mode="publish")
        await rt.sleep(1)
        results["log"] = pool.log.to_frame()
        pool.stop()
        await c.close()

    s.run(main())
    for key in ("publish_during", "ack_during"):
        r = results[key]
        assert r.delivered == 0 and r.failed == 10
        assert set(r.statuses.values()) == {UNAVAILABLE}
    for key in ("publish_after", "ack_after"):
        assert results[key].delivered == 10
    log = results["log"]
    assert len(log) == 20 and (log.t_received > 15).all()
    assert s.messaging.stats.failures() > 0


def test_error_probability_drop_and_slow(sim_setup: Any) -> None:
    s = sim_setup(
        spec(
            {"target": "registry", "kind": "errors", "probability": 0.2, "ops": ["register"], "duration": 10},
            {"target": "messaging", "kind": "drop", "probability": 1.0, "start": 50, "duration": 10},
            {"target": "registry", "kind": "slow", "start": 100, "duration": 10, "factor": 10},
        ),
        send_retries=0,
        send_timeout=0.5,
    )
    c, rt = s.coordinator, s.runtime
    out: dict[str, Any] = {}

    async def main() -> None:
        await c.open()
        ok = 0
        for i in range(2000):
            try:
                await c.register(f"r{i}", {"g": "a"}, ttl=1000)
                ok += 1
            except Exception:
                pass
        out["ok"] = ok
        await rt.sleep(20 - rt.now())
        for name in ("ag0", "ag1"):
            await c.register(name, {"g": "b"}, ttl=1000)
        pool = start_agents(c, ["ag0", "ag1"])
        await rt.sleep(55 - rt.now())
        out["dropped"] = await c.multicast({"g": "b"}, b"x", mode="ack")
        await rt.sleep(99 - rt.now())
        t0 = rt.now()
        await c.get("r0")
        out["fast"] = rt.now() - t0
        await rt.sleep(101 - rt.now())
        t0 = rt.now()
        await c.get("r0")
        out["slow"] = rt.now() - t0
        pool.stop()
        await c.close()

    s.run(main())
    failed = 2000 - out["ok"]
    assert s.registry.stats.failures("register") == failed
    assert 0.17 < failed / 2000 < 0.23
    r = out["dropped"]
    assert r.statuses == {"ag0": TIMEOUT, "ag1": TIMEOUT}
    assert r.duration_s == pytest.approx(0.5, abs=0.01)
    assert s.messaging.lost == 2
    assert out["slow"] == pytest.approx(10 * out["fast"])


def test_reregistering_an_expired_unswept_identity_still_counts_its_expiry(sim_setup: Any) -> None:
    s = sim_setup(spec())
    reg, rt = s.registry, s.runtime

    async def main() -> list[Any]:
        await reg.upsert(Identity("a", {}, 0.0, 5.0), now=0.0, max_identities=None)
        await rt.sleep(6)
        assert await reg.upsert(Identity("a", {}, 6.0, 20.0), now=6.0, max_identities=None)
        first = await reg.claim_expired(now=rt.now(), limit=10)
        second = await reg.claim_expired(now=rt.now(), limit=10)
        later = await reg.claim_expired(now=21.0, limit=10)
        return [first, second, later]

    first, second, later = s.run(main())
    assert [(e.id, e.deadline) for e in first] == [("a", 5.0)]
    assert second == []
    assert [(e.id, e.deadline) for e in later] == [("a", 20.0)]
