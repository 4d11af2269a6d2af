"""Scenario slots ``messaging: kafka`` and ``durability: kafka``: a live run against a Kafka-protocol
broker (the session's Tansu, or ``$KAFKA_BOOTSTRAP``), a broker started by the run itself when no
``bootstrap`` is given, and option errors that name the slot."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcastlab.errors import ScenarioError
from mcastlab.workloads import load_scenario, run_scenario
from mcastlab.workloads.backends import live_backends

PRESENCE = Path(__file__).resolve().parents[2] / "scenarios" / "user-presence.yaml"
SMALL = {
    "workload.users": 30, "workload.rooms": 3, "duration": 6, "warmup": 1, "drain": 2, "workload.ttl": 3,
    "config.default_ttl": 3, "workload.heartbeat": {"period": 1, "jitter": 0.1}, "workload.join_window": 1,
    "workload.session_mean": 4, "workload.offline_mean": 2, "workload.room_switch_mean": 3,
    "workload.room_message": 4.0, "workload.announcement": 0.5, "workload.members_query": 4.0,
    "config.delivery_mode": "publish", "slots.registry": "memory",
}  # fmt: skip


@pytest.mark.live
@pytest.mark.timeout(120)
def test_live_run_through_kafka_messaging_and_journal(kafka_bootstrap: str, topic_prefix: str) -> None:
    over = {**SMALL,
            "slots.messaging": {"backend": "kafka", "bootstrap": kafka_bootstrap, "prefix": topic_prefix,
                                "partitions": 2},
            "slots.durability": {"backend": "kafka", "bootstrap": kafka_bootstrap,
                                 "topic": f"{topic_prefix}.journal"}}  # fmt: skip
    run = run_scenario(PRESENCE, mode="live", overrides=over, progress=False)
    assert run.manifest["backend"] == "memory+kafka"
    mc = run.multicasts
    assert len(mc) > 0 and int(mc["targeted"].sum()) > 0
    assert int(mc["failed"].sum()) == 0
    assert int(mc["missed"].sum()) <= 0.02 * max(1, int(mc["expected"].sum()))
    delivered = run.deliveries
    assert len(delivered) > 0 and (delivered["latency_s"] >= 0).all()


@pytest.mark.live
def test_live_backends_start_a_broker_without_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    scn = load_scenario(PRESENCE, overrides={**SMALL, "mode": "live", "slots.messaging": "kafka",
                                             "slots.durability": "kafka"})
    with live_backends(scn, "run-1") as b:
        assert set(b.servers) == {"kafka"}
        assert b.versions["kafka-server"].startswith("tansu ")
        assert b.messaging.bootstrap == b.durability.bootstrap == [b.servers["kafka"].url[len("kafka://"):]]
    assert not b.servers["kafka"].alive()


def test_bad_kafka_options_name_the_slot() -> None:
    scn = load_scenario(PRESENCE, overrides={**SMALL, "mode": "live",
                                             "slots.messaging": {"backend": "kafka", "bootstrap": "h:1",
                                                                 "partitions": 0}})
    with pytest.raises(ScenarioError, match=r"slots\.messaging\.partitions"), live_backends(scn, "r"):
        pass
    with pytest.raises(ScenarioError, match="unknown messaging backend|kafka"):
        load_scenario(PRESENCE, overrides={"slots.messaging": {"backend": "kafka", "servers": "x"}})
