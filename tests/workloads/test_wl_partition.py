"""Replicas' shares of a workload, their journals and the merge — checked in virtual time, where N replicas
sharing one simulated registry must add up to exactly the run of one process."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import simpy

from mcastlab import Coordinator
from mcastlab.measure.frames import build
from mcastlab.measure.merge import merge_recorders
from mcastlab.measure.recorder import Recorder
from mcastlab.results import ExpirationEvent
from mcastlab.runtime import SimPyRuntime
from mcastlab.workloads import load_scenario
from mcastlab.workloads._journal import JournaledTruth, replay
from mcastlab.workloads._partition import LocalBus, Partition
from mcastlab.workloads.backends import sim_backends
from mcastlab.workloads.context import Context, stream_rng

# an IoT fleet small enough for seconds: deaths expire, firmware pushes make devices re-register
IOT = {
    "name": "tiny-iot", "pattern": "multicast-registry", "mode": "sim", "seed": 7, "duration": 240,
    "drain": 20, "slots": {"registry": "memory", "messaging": "memory"},
    "config": {"default_ttl": 30, "max_identities": "auto"},
    "workload": {"kind": "iot-fleet", "devices": 300, "ttl": 30, "heartbeat": {"period": 10, "jitter": 0.1},
                 "boot_window": 5, "warehouses": 3, "deaths": {"fraction": 0.1, "start": 20, "end": 120},
                 "firmware_push": {"rate": 0.05}, "install_time": [5, 10],
                 "warehouse_restart": {"rate": 0.02},
                 "restart_downtime": 5, "dashboard": {"rate": 0.5}, "outdated_query": {"rate": 0.1}},
    "measure": {"agents": "all", "population_interval": 10},
    "sim": {"cpu": "off"},
}


def test_partition_deals_identities_and_global_operations() -> None:
    parts = [Partition(i, 3) for i in range(3)]
    assert [[p.owns(c) for p in parts] for c in range(4)] == [[True, False, False], [False, True, False],
                                                           [False, False, True], [True, False, False]]
    turns = [[p.take_turn() for p in parts] for _ in range(4)]  # every replica walks the same plan
    assert [[mine for mine, _ in row] for row in turns] == [[True, False, False], [False, True, False],
                                                           [False, False, True], [True, False, False]]
    assert Partition().whole and Partition().owns(12345) and Partition().take_turn() == (True, 0)


def test_a_reaction_reaches_every_replica() -> None:
    bus = LocalBus()
    got: list[tuple[int, float, list[int]]] = []
    parts = [Partition(i, 2, bus) for i in range(2)]
    bus.partitions = parts
    for i, p in enumerate(parts):
        p.expect(5, lambda t, res, codes, i=i: got.append((i, t, codes.tolist())))
    bus.publish(5, 1.5, [3, 4])
    assert got == [(0, 1.5, [3, 4]), (1, 1.5, [3, 4])]
    parts[0].react(6, 2.0, [1])  # nothing expected under that number: ignored (logged), never raises


def _run(raw: dict[str, Any], count: int) -> tuple[dict[str, Any], Any]:
    """Run ``raw`` in virtual time as ``count`` replicas sharing one simulated registry and messaging,
    each with its own coordinator and Partition; return the merged frames and the merged truth."""
    scn = load_scenario(raw)
    env = simpy.Environment()
    rt = SimPyRuntime(env)
    backends = sim_backends(scn, stream_rng(scn.seed, "sim-backends"))
    bus = LocalBus()
    recs, ctxs = [], []
    for i in range(count):
        coord = Coordinator(scn.config, registry=backends.registry, messaging=backends.messaging, runtime=rt,
                            name=f"coord-{i}")
        rt.run(coord.open())
        rec = Recorder()
        part = Partition(i, count, bus) if count > 1 else Partition()
        ctx = Context(coordinator=coord, seed=scn.seed, recorder=rec, duration=scn.duration, ttl=scn.ttl,
                      agents=scn.measure.agents, partition=part)

        def on_event(ev: Any, rec: Recorder = rec, ctx: Context = ctx) -> None:
            if type(ev) is ExpirationEvent:
                o = ctx.origin
                rec.expiration(ev.identity, ev.deadline - o, ev.t_detected - o, ev.coordinator)

        coord.add_listener(on_event)
        scn.workload.setup(ctx)
        ctx.sample_population(scn.measure.population_interval)
        recs.append(rec)
        ctxs.append(ctx)
        bus.partitions.append(part)
    for ctx in ctxs:
        rt.spawn(ctx.run_loop(scn.duration))
    env.run(until=scn.duration + scn.drain)
    if count == 1:
        truth, rec = ctxs[0].truth, recs[0]
    else:
        assert all(isinstance(c.truth, JournaledTruth) for c in ctxs)
        rep = replay([c.truth.journal for c in ctxs], [[dict(g) for g in c.truth.groups] for c in ctxs])
        truth = rep.truth
        rec = merge_recorders(recs, rep.codes, rep.audits, rep.alive)
    end = scn.duration + scn.drain
    truth.close(end, settle=scn.config.sweep_interval + 1.0)
    frames = build(rec, truth.names, run="r", scenario=scn.name, mode="sim", backend="sim", warmup=0.0)
    return frames, truth


@pytest.fixture(scope="module")
def runs() -> dict[int, tuple[dict[str, Any], Any]]:
    return {n: _run(IOT, n) for n in (1, 3)}


def test_three_replicas_issue_exactly_the_operations_of_one_process(runs: Any) -> None:
    one, three = runs[1][0], runs[3][0]
    assert sorted(three["ops"]["process"].unique()) == [0, 1, 2]
    key = ["op", "stream", "t_start", "identity"]
    a = one["ops"][key].sort_values(key).reset_index(drop=True)
    b = three["ops"][key].sort_values(key).reset_index(drop=True)
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(a, b)
    # an identity's operations all come from the replica that owns it
    ident = three["ops"].dropna(subset=["identity"])
    assert (ident.groupby("identity")["process"].nunique() == 1).all()
    # firmware installs are reactions broadcast by whichever replica sent the push
    installs = three["ops"][three["ops"]["stream"] == "firmware-install"]
    assert len(installs) > 0 and installs["process"].nunique() == 3


def test_the_merged_audit_and_expirations_are_those_of_one_process(runs: Any) -> None:
    (one, t1), (three, t3) = runs[1], runs[3]
    cols = ["targeted", "expected", "stale", "wrong", "missed", "uncertain"]
    m1 = one["multicasts"].sort_values("t_start")[cols].to_numpy()
    m3 = three["multicasts"].sort_values("t_start")[cols].to_numpy()
    assert np.array_equal(m1, m3)
    assert (m3[:, 2:5] == 0).all()  # stale, wrong, missed
    assert sorted(map(tuple, t1.expected_expiries)) == sorted(map(tuple, t3.expected_expiries))
    e1, e3 = one["expirations"], three["expirations"]
    expected = {t3.names[c] for c, _ in t3.expected_expiries}
    reported = set(e3["identity"])
    assert expected and expected <= reported <= expected | {t3.names[c] for c in t3.ambiguous}
    assert e3["identity"].is_unique  # each claimed once, whichever replica's sweeper got there
    assert sorted(e1["identity"]) == sorted(e3["identity"])
    assert np.array_equal(one["population"]["alive"].to_numpy(), three["population"]["alive"].to_numpy())
