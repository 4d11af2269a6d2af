"""``mcastlab calibrate --messaging kafka``: fits the Kafka sim model on a live Kafka-protocol broker, marks
the file with that broker, and the file then drives the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mcastlab.calibrate import main
from mcastlab.sim import make_sim_backends
from mcastlab.sim.kafka import SimKafkaMessaging


@pytest.mark.live
@pytest.mark.timeout(120)
def test_calibrate_kafka_marks_the_broker_and_feeds_the_sim(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    out = tmp_path / "kafka.json"
    assert main(["--messaging", "kafka", "--quick", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["kafka"]["broker"].startswith("tansu ") and "not Apache Kafka" in data["kafka"]["broker"]
    assert data["sim"]["kafka"]["broker"] == data["kafka"]["broker"]
    assert {"registry", "messaging", "kafka"} <= set(data["sim"])  # the base calibration is kept
    assert {r["measure"] for r in data["kafka"]["validation"]} == {"fanout_1", "fanout_500", "delivery_1"}
    _, msg = make_sim_backends({"calibration": str(out), "kafka": {}}, rng=np.random.default_rng(0))
    assert isinstance(msg, SimKafkaMessaging) and msg.kafka.broker == data["kafka"]["broker"]
    assert msg.kafka.append.to_dict() == data["sim"]["kafka"]["append"]
