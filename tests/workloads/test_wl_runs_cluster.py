"""Scenario slots on clusters: ``registry: redis-cluster`` (nodes given, or a local 3+3 cluster started for
the run) and ``messaging: nats`` with ``cluster: N`` (a local N-node NATS cluster started for the run)."""

from __future__ import annotations

from typing import Any

import pytest

from mcastlab.errors import ScenarioError
from mcastlab.workloads import load_scenario, run_scenario
from mcastlab.workloads.backends import _needed_servers, live_backends

from .wl_helpers import LIVE_SMALL, SCENARIOS, check_columns, check_invariants

IOT = SCENARIOS / "iot-device-management.yaml"


def test_cluster_slots_parse_and_ask_for_local_clusters() -> None:
    scn = load_scenario(IOT, overrides={"slots.registry": {"backend": "redis-cluster", "shards": 8},
                                        "slots.messaging": {"backend": "nats", "cluster": 3}})
    assert _needed_servers(scn) == ["redis-cluster", "nats-cluster"]
    given = load_scenario(IOT, overrides={"slots.registry": {"backend": "redis-cluster",
                                                             "nodes": ["redis://127.0.0.1:7000"]},
                                          "slots.messaging": {"backend": "nats", "servers": "nats://h:1"}})
    assert _needed_servers(given) == []
    with pytest.raises(ScenarioError) as info:
        load_scenario(IOT, overrides={"slots.registry": {"backend": "redis-cluster", "url": "redis://h:1"}})
    assert info.value.key == "slots.registry.url"


def test_a_bad_cluster_option_is_refused_before_anything_starts() -> None:
    scn = load_scenario(IOT, overrides={"slots.registry": {"backend": "redis-cluster", "shards": 0,
                                                           "nodes": "redis://127.0.0.1:7000"},
                                        "slots.messaging": "memory"})
    with pytest.raises(ScenarioError) as info, live_backends(scn, "x"):
        pass
    assert info.value.key == "slots.registry.shards"
    scn = load_scenario(IOT, overrides={"slots.registry": "memory",
                                        "slots.messaging": {"backend": "nats", "cluster": "three"}})
    with pytest.raises(ScenarioError) as info, live_backends(scn, "x"):
        pass
    assert info.value.key == "slots.messaging.cluster"


@pytest.mark.live
@pytest.mark.timeout(120)
def test_live_run_on_a_redis_cluster_and_a_local_nats_cluster(redis_cluster_nodes: Any) -> None:
    over = {**LIVE_SMALL["iot-device-management"],
            "slots.registry": {"backend": "redis-cluster", "nodes": redis_cluster_nodes.urls},
            "slots.messaging": {"backend": "nats", "cluster": 3}}
    run = run_scenario(IOT, mode="live", overrides=over, progress=False)
    check_columns(run.frames)
    assert run.manifest["backend"] == "redis-cluster+nats"
    ops = run.ops
    assert len(ops) > 20 and ops["ok"].mean() > 0.95, ops[~ops["ok"]]["error"].value_counts()
    check_invariants(run)
    mc = run.multicasts
    assert int(mc["targeted"].sum()) > 0
    assert int(mc["missed"].sum()) <= 0.02 * max(1, int(mc["expected"].sum()))


@pytest.mark.live
@pytest.mark.timeout(120)
def test_a_registry_outage_on_a_local_redis_cluster_pauses_every_node() -> None:
    """A scenario outage of the registry, when the run started a local Redis Cluster, stops every node for
    its window (shorter than the client timeout here): calls made in it wait for the window's end, and the
    same coordinator carries on after it."""
    over = {**LIVE_SMALL["iot-device-management"], "duration": 10, "slots.registry": "redis-cluster",
            "slots.messaging": "memory",
            "faults": [{"kind": "outage", "target": "registry", "at": 3, "duration": 2}]}
    run = run_scenario(IOT, mode="live", overrides=over, progress=False)
    ops = run.ops[run.ops["op"].isin(["register", "heartbeat", "enumerate"])]
    early = ops[(ops["t_call"] >= 3.2) & (ops["t_call"] < 4.0)]
    assert len(early) > 0 and early["service_s"].min() > 5.0 - 4.0 - 0.1  # held until the nodes resumed
    after = ops[ops["t_call"] >= 6.5]
    assert after["ok"].mean() > 0.95 and after["service_s"].quantile(0.9) < 0.5
