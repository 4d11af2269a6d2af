"""Shipped scenarios at reduced scale, and frame invariant checks shared by the sim and live tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mcastlab.measure.frames import SCHEMAS

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"

# Reduced scale for the sim tests: seconds of wall time each, long enough past the TTL that every
# death injected has expired before the end.
SIM_SMALL: dict[str, dict[str, Any]] = {
    "iot-device-management": {
        "workload.devices": 300,
        "duration": 520,
        "warmup": 60,
        "workload.deaths": {"fraction": 0.05, "start": 60, "end": 150},
        "workload.firmware_push": 0.03,
        "workload.dashboard": 0.5,
    },
    "user-presence": {
        "workload.users": 300,
        "workload.rooms": 20,
        "duration": 300,
        "workload.room_message": 2.0,
        "workload.members_query": 2.0,
    },
    "service-discovery": {
        "workload.services": 4,
        "workload.instances": 4,
        "duration": 240,
        "workload.lookup": 5.0,
        "workload.crash": 0.05,
    },
    "prism-loadtest": {"duration": 8, "mode": "sim"},
    "iot-failures": {"workload.devices": 300, "duration": 560, "faults.0.at": 100, "faults.1.at": 200},
}

# Small live runs (a few seconds each) against Redis + NATS started by the tests.
LIVE_SMALL: dict[str, dict[str, Any]] = {
    "iot-device-management": {
        "workload.devices": 40,
        "duration": 9,
        "warmup": 1,
        "drain": 2,
        "workload.ttl": 3,
        "config.default_ttl": 3,
        "workload.heartbeat": {"period": 1, "jitter": 0.1},
        "workload.boot_window": 1,
        "workload.deaths": {"fraction": 0.1, "start": 1.5, "end": 3},
        "workload.firmware_push": 1.0,
        "workload.install_time": [0.2, 0.5],
        "workload.warehouse_restart": {"rate": 0.5, "start": 2},
        "workload.restart_downtime": 0.5,
        "workload.dashboard": 5.0,
        "workload.outdated_query": 1.0,
        "measure.population_interval": 0.5,
    },
    "user-presence": {
        "workload.users": 40,
        "workload.rooms": 5,
        "duration": 8,
        "warmup": 1,
        "drain": 2,
        "workload.ttl": 3,
        "config.default_ttl": 3,
        "workload.heartbeat": {"period": 1, "jitter": 0.1},
        "workload.join_window": 1,
        "workload.session_mean": 4,
        "workload.offline_mean": 2,
        "workload.room_switch_mean": 3,
        "workload.room_message": 4.0,
        "workload.announcement": 0.5,
        "workload.members_query": 4.0,
        "measure.population_interval": 0.5,
    },
    "service-discovery": {
        "workload.services": 3,
        "workload.instances": 3,
        "duration": 8,
        "warmup": 1,
        "drain": 2,
        "workload.ttl": 3,
        "config.default_ttl": 3,
        "workload.heartbeat": {"period": 1, "jitter": 0.1},
        "workload.boot_window": 1,
        "workload.health_change": 1.0,
        "workload.recovery_time": [0.5, 1],
        "workload.crash": {"rate": 0.5, "process": "constant", "start": 1.5},
        "workload.replace_after": 0.5,
        "workload.deploy": {"rate": 0.25, "process": "constant", "start": 1},
        "workload.deploy_step": 0.5,
        "workload.config_update": 1.0,
        "workload.lookup": 10.0,
        "measure.population_interval": 0.5,
    },
    "prism-loadtest": {"duration": 5, "drain": 2, "workload.rate": {"rate": 50, "process": "constant"}},
    "iot-failures": {
        "workload.devices": 40,
        "duration": 10,
        "warmup": 1,
        "drain": 2,
        "workload.ttl": 3,
        "config.default_ttl": 3,
        "workload.heartbeat": {"period": 1, "jitter": 0.1},
        "workload.boot_window": 1,
        "workload.firmware_push": 1.0,
        "workload.install_time": [0.2, 0.5],
        "faults": [
            {"kind": "outage", "at": 2, "duration": 1.5, "target": "devices", "reconnect_spread": 0.5},
            {"kind": "expiry_avalanche", "at": 4.5, "fraction": 0.33, "die_after": 0.5},
        ],
        "measure.population_interval": 0.5,
    },
}


def check_columns(frames: dict[str, pd.DataFrame]) -> None:
    """Every documented column is present, in order, with its dtype."""
    for name, schema in SCHEMAS.items():
        df = frames[name]
        assert list(df.columns) == list(schema), name
        for col, dtype in schema.items():
            assert str(df[col].dtype) == dtype, (name, col, df[col].dtype, dtype)


def check_invariants(run: Any) -> None:
    """delivered + failed = targeted; no stale recipient; expirations match the ground truth."""
    ops, mc = run.ops, run.multicasts
    m = ops[(ops["op"] == "multicast") & ops["ok"]]
    assert (m["delivered"] + m["failed"] == m["matched"]).all()
    assert (mc["delivered"] + mc["failed"] == mc["targeted"]).all()
    d = run.deliveries
    per_msg = d.groupby("message_id", observed=True).size()
    assert (per_msg.reindex(mc["message_id"]).fillna(0).to_numpy() == mc["targeted"].to_numpy()).all()
    assert int(mc["stale"].sum()) == 0
    assert int(mc["wrong"].sum()) == 0
    ex = run.expirations
    assert not ex.duplicated(["identity", "deadline"]).any(), "an expiry was counted twice"
    reported = {(i, round(float(t), 6)) for i, t in zip(ex["identity"], ex["deadline"], strict=True)}
    expected = {(i, round(float(t), 6)) for i, t in run.truth["expected_expirations"]}
    ambiguous = set(run.truth["ambiguous"])
    assert expected <= reported, sorted(expected - reported)[:5]
    assert {i for i, _ in reported - expected} <= ambiguous, sorted(reported - expected)[:5]
    due = set(run.truth["deaths"]) & {i for i, _ in expected}  # deaths whose deadline passed in the run
    assert due <= {i for i, _ in reported}
