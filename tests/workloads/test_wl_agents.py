"""Agents hold inboxes, receive at the modelled virtual times and ack in ack mode."""

from __future__ import annotations

from typing import Any

import pytest

from mcastlab.backends.base import DELIVERED, NO_LISTENER
from mcastlab.workloads.agents import DeliveryLog, start_agents

PER_MSG, DELIVERY, ACK, NET, SVC = 1e-5, 5e-4, 1e-4, 1e-4, 1e-5
SPEC = {
    "registry": {"service": {"default": SVC}, "network": {"default": NET}},
    "messaging": {"per_message": PER_MSG, "flush": 2e-4, "delivery": DELIVERY, "ack": ACK},
    "cpu": "off",  # exact latencies: no client CPU queue
}
NAMES = [f"d{i}" for i in range(5)]


def test_agents_record_exact_virtual_latencies(sim_setup: Any) -> None:
    s = sim_setup(SPEC)
    c, rt = s.coordinator, s.runtime
    got: dict[str, Any] = {}

    async def main() -> None:
        await c.open()
        for n in NAMES:
            await c.register(n, {"room": "a"}, ttl=1000)
        await c.register("nobody", {"room": "b"}, ttl=1000)
        pool = start_agents(c, NAMES, kind="user")
        await rt.sleep(1.0)
        got["t_pub"] = rt.now()
        got["pub"] = await c.multicast({"room": "a"}, b"hello", mode="publish")
        await rt.sleep(1.0)
        got["t_ack"] = rt.now()
        got["ack"] = await c.multicast({"room": "a"}, b"hello", mode="ack")
        got["none"] = await c.multicast({"room": "b"}, b"hello", mode="ack")
        await rt.sleep(1.0)
        got["frame"] = pool.log.to_frame(run="r1")
        got["received"] = {a.identity: a.received for a in pool.agents.values()}
        pool.stop()
        await c.close()

    s.run(main())
    frame = got["frame"]
    assert list(frame.columns) == [
        "run",
        "message_id",
        "identity",
        "t_sent",
        "t_received",
        "latency_s",
        "status",
    ]
    assert len(frame) == 10 and (frame.status == DELIVERED).all()
    assert got["received"] == dict.fromkeys(NAMES, 2)
    t_enum = SVC + NET
    pub = frame[frame.message_id == got["pub"].message_id].set_index("identity").loc[NAMES]
    for i, name in enumerate(NAMES):
        assert pub.loc[name, "t_sent"] == pytest.approx(got["t_pub"] + t_enum, abs=1e-12)
        assert pub.loc[name, "latency_s"] == pytest.approx((i + 1) * PER_MSG + DELIVERY, abs=1e-12)
    # the flush's reply comes behind the messages delivered to this process's inboxes (one connection):
    # the fan-out ends at the later of the flush round trip and the last local receipt
    assert got["pub"].duration_s == pytest.approx(t_enum + 5 * PER_MSG + max(2e-4, DELIVERY), abs=1e-12)
    ack = got["ack"]
    assert ack.delivered == 5
    for i, name in enumerate(NAMES):
        assert ack.latencies[name] == pytest.approx(t_enum + (i + 1) * PER_MSG + DELIVERY + ACK, abs=1e-12)
    rows = frame[frame.message_id == ack.message_id].set_index("identity").loc[NAMES]
    assert (rows.t_received + ACK - got["t_ack"]).to_numpy() == pytest.approx(
        [ack.latencies[n] for n in NAMES], abs=1e-12
    )
    assert got["none"].statuses == {"nobody": NO_LISTENER}


def test_sink_logs_deliveries_without_agents(sim_setup: Any) -> None:
    s = sim_setup(SPEC)
    c = s.coordinator
    log = DeliveryLog()
    s.messaging.attach_sink(log, "dev-")

    async def main() -> Any:
        await c.open()
        for i in range(3):
            await c.register(f"dev-{i}", {"fw": "1"}, ttl=1000)
        await c.register("other", {"fw": "1"}, ttl=1000)
        return await c.multicast({"fw": "1"}, b"x", mode="ack")

    res = s.run(main())
    assert res.statuses == {"dev-0": DELIVERED, "dev-1": DELIVERED, "dev-2": DELIVERED, "other": NO_LISTENER}
    assert log.identity == ["dev-0", "dev-1", "dev-2"]
    assert log.latency_s.tolist() == pytest.approx(
        [PER_MSG + DELIVERY, 2 * PER_MSG + DELIVERY, 3 * PER_MSG + DELIVERY], abs=1e-12
    )
