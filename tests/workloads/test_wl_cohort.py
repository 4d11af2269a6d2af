"""The cohort engine: a vectorised fleet in the scenario runner, recorded into the same frames, and
statistically consistent with the per-identity engine on the same scenario."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mcastlab.errors import ScenarioError
from mcastlab.workloads import load_scenario, run_scenario
from mcastlab.workloads.scenario import COHORT_THRESHOLD

from .wl_helpers import SCENARIOS, check_columns

IOT = SCENARIOS / "iot-device-management.yaml"
SMALL = {
    "workload.devices": 2000,
    "duration": 900,
    "warmup": 60,
    "workload.deaths": {"fraction": 0.03, "start": 60, "end": 200},
    "workload.firmware_push": 0.03,
    "workload.gateway_batch": 100,
}

# The calibrated idleness model (registry.wake, cpu.timer, cpu.wake_cpu) makes a call slower after an
# idle gap. The two engines space heartbeats differently on purpose (one call per sensor vs. one pipelined
# batch per gateway), so the servers idle differently and enumerates pay different wake-ups: a real difference
# between the workloads, not between the engines. Compared without it, they must agree.
SAME_IDLE = {"sim.registry.wake": None, "sim.cpu.timer": None, "sim.cpu.wake_cpu": None}


@pytest.fixture(scope="module")
def both() -> dict[str, Any]:
    """The same small IoT scenario through each engine (same seed)."""
    return {engine: run_scenario(IOT, overrides={**SMALL, **SAME_IDLE, "engine": engine}, progress=False)
            for engine in ("per-identity", "cohort")}


def test_the_cohort_engine_fills_every_documented_column(both: dict[str, Any]) -> None:
    r = both["cohort"]
    assert r.manifest["engine"] == "cohort"
    check_columns(r.frames)
    hb = r.ops[r.ops["op"] == "heartbeat"]
    assert (hb["stream"] == "gateway").all() and hb["identity"].isna().all()
    assert hb["matched"].max() <= 100 and hb["matched"].sum() > 2000 * 10  # batches of <= 100 sensors
    assert r.manifest["counts"]["agents"] == 2000 and len(r.deliveries) > 0
    assert r.deliveries["observed"].all()  # every delivery was received by a fleet member (the sink)


def test_deaths_expire_exactly_once_and_the_audit_holds(both: dict[str, Any]) -> None:
    r = both["cohort"]
    exp = r.expirations
    deaths = set(r.truth["deaths"])
    assert len(deaths) == 60 and exp["identity"].is_unique and set(exp["identity"]) == deaths
    assert (exp["lag_s"] >= 0).all() and exp["lag_s"].max() < 1.5
    a = r.audit()
    assert a["stale"] == a["missed"] == a["wrong"] == a["duplicated"] == 0 and a["targeted"] > 500


def _mean_ci(x: pd.Series) -> tuple[float, float]:
    x = x.dropna().to_numpy(float)
    return float(x.mean()), 1.96 * float(x.std(ddof=1)) / np.sqrt(len(x))


def test_cohort_and_per_identity_engines_agree(both: dict[str, Any]) -> None:
    """Statistically consistent frames: same population, same expirations, the same targets reached,
    and operation latencies whose means agree within their 95 % intervals."""
    a, b = both["per-identity"], both["cohort"]
    pa = a.population.set_index("t")["registered"]
    pb = b.population.set_index("t")["registered"]
    late = pa.index >= 300
    assert np.allclose(pa[late], pb[late], rtol=0.03)
    assert len(a.expirations) == len(b.expirations) == 60
    ma, mb = a.multicasts, b.multicasts
    assert len(ma) == len(mb)
    assert abs(ma["targeted"].sum() - mb["targeted"].sum()) <= 0.05 * ma["targeted"].sum()
    assert (ma["delivered"] == ma["targeted"]).all() and (mb["delivered"] == mb["targeted"]).all()
    for op in ("enumerate", "multicast"):
        xa = a.ops.loc[(a.ops["op"] == op) & a.ops["ok"], "latency_s"]
        xb = b.ops.loc[(b.ops["op"] == op) & b.ops["ok"], "latency_s"]
        (mu_a, ci_a), (mu_b, ci_b) = _mean_ci(xa), _mean_ci(xb)
        assert abs(mu_a - mu_b) <= ci_a + ci_b, (op, mu_a, mu_b, ci_a, ci_b)
    ea = a.ops.loc[a.ops["op"] == "enumerate", "matched"].mean()
    eb = b.ops.loc[b.ops["op"] == "enumerate", "matched"].mean()
    assert abs(ea - eb) <= 0.03 * ea


def test_a_registry_outage_expires_each_identity_once_and_the_fleet_reregisters() -> None:
    over = {**SMALL, "engine": "cohort", "workload.deaths": {"fraction": 0.0}, "workload.ttl": 60,
            "config.default_ttl": 60, "workload.heartbeat": {"period": 20, "jitter": 0.0},
            "faults": [{"kind": "outage", "target": "registry", "at": 300, "duration": 90}],
            "duration": 600, "workload.firmware_push": 0.0, "workload.warehouse_restart": 0.0}
    r = run_scenario(IOT, overrides=over, progress=False)
    exp = r.expirations
    assert exp["identity"].is_unique and len(exp) == 2000  # everyone lapsed inside the outage, once
    assert (exp["deadline"] < 390).all() and (exp["t_detected"] >= 390).all()
    failed = r.ops[~r.ops["ok"]]
    assert len(failed) > 0 and failed["t_start"].between(300, 390).all()
    pop = r.population.set_index("t")["registered"]
    assert pop.loc[pop.index > 450].min() == 2000  # all back after the outage


def test_a_device_outage_makes_a_reconnect_storm() -> None:
    over = {**SMALL, "engine": "cohort", "workload.deaths": {"fraction": 0.0}, "duration": 600,
            "faults": [{"kind": "outage", "target": "devices", "at": 200, "duration": 40,
                        "reconnect_spread": 5}]}
    r = run_scenario(IOT, overrides=over, progress=False)
    storm = r.ops[r.ops["stream"] == "reconnect"]
    assert storm["matched"].sum() > 500 and storm["t_start"].between(240, 245.01).all()


def test_the_engine_is_chosen_by_size_or_by_key() -> None:
    small = load_scenario(IOT, {"workload.devices": 100})
    big = load_scenario(IOT, {"workload.devices": COHORT_THRESHOLD})
    assert small.resolved_engine() == "per-identity" and big.resolved_engine() == "cohort"
    assert big.resolved_engine("live") == "per-identity"
    assert load_scenario(IOT, {"workload.devices": 100, "engine": "cohort"}).resolved_engine() == "cohort"
    with pytest.raises(ScenarioError, match="no cohort mode"):
        load_scenario(SCENARIOS / "user-presence.yaml", {"engine": "cohort"})


def test_same_seed_same_frames_in_the_cohort_engine() -> None:
    over = {**SMALL, "engine": "cohort", "duration": 300, "warmup": 10}
    a = run_scenario(IOT, overrides=over, progress=False)
    b = run_scenario(IOT, overrides=over, progress=False)
    for name in ("ops", "deliveries", "expirations", "population", "multicasts"):
        pd.testing.assert_frame_equal(a.frames[name].drop(columns="run"), b.frames[name].drop(columns="run"))
