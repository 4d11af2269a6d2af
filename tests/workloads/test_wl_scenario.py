"""Scenario files: shipped ones validate; bad ones are refused with file, key and fix in the message."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from mcastlab.errors import ConfigError, ScenarioError
from mcastlab.workloads import load_scenario, parse_overrides
from mcastlab.workloads.arrivals import Arrival

from .wl_helpers import ROOT, SCENARIOS

SHIPPED = sorted(SCENARIOS.glob("*.yaml"))
REQUIRED = {"iot-device-management", "user-presence", "service-discovery", "prism-loadtest"}


def test_required_scenarios_are_shipped() -> None:
    assert {p.stem for p in SHIPPED} >= REQUIRED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenarios_validate(path: Path) -> None:
    scn = load_scenario(path)
    assert scn.pattern == "multicast-registry" and scn.name == path.stem
    assert set(scn.slots) == {"registry", "messaging"}
    assert scn.warmup < scn.duration


def test_iot_scenario_matches_the_issue() -> None:
    scn = load_scenario(SCENARIOS / "iot-device-management.yaml")
    w = scn.workload
    assert (w.kind, w.devices, w.ttl, scn.mode) == ("iot-fleet", 10_000, 300.0, "sim")
    assert w.heartbeat.jitter > 0 and w.deaths.fraction > 0


def test_prism_scenario_matches_the_reference() -> None:
    scn = load_scenario(SCENARIOS / "prism-loadtest.yaml")
    w = scn.workload
    assert (scn.duration, w.rate.rate, w.rate.process, w.ttl) == (60.0, 100.0, "constant", 300.0)
    assert w.mix == {"register": 0.5, "enumerate": 0.3, "multicast": 0.2}
    assert w.filter == 'status == "online"'
    assert scn.reference["ops"]["multicast"]["mean"] == 2.43


BASE = {
    "pattern": "multicast-registry",
    "slots": {"registry": "memory", "messaging": "memory"},
    "workload": {"kind": "loadtest", "rate": 10},
    "duration": 5,
}


def _write(tmp_path: Path, data: dict, name: str = "bad.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"wokload": {}}, "wokload", ["unknown key", "did you mean 'workload'"]),
        (
            {"workload": {"kind": "loadtest", "rate": 10, "ttll": 3}},
            "workload.ttll",
            ["unknown key", "'ttl'"],
        ),
        ({"duration": "long"}, "duration", ["expected a number"]),
        ({"seed": 1.5}, "seed", ["whole number"]),
        ({"slots": {"registry": "memory"}}, "slots.messaging", ["missing the messaging backend"]),
        (
            {"slots": {"registry": "mongo", "messaging": "nats"}},
            "slots.registry",
            ["unknown registry backend"],
        ),
        ({"workload": {"kind": "loadtest", "rate": -5}}, "workload.rate.rate", ["must not be negative"]),
        (
            {"workload": {"kind": "iot-fleet", "dashboard": {"rate": -1}}},
            "workload.dashboard.rate",
            ["must not be negative"],
        ),
        ({"workload": {"kind": "weather"}}, "workload.kind", ["unknown workload kind", "iot-fleet"]),
        ({"workload": {"kind": "iotfleet"}}, "workload.kind", ["did you mean 'iot-fleet'"]),
        ({"mode": "fast"}, "mode", ["not one of"]),
        ({"config": {"default_tll": 3}}, "config.default_tll", ["default_ttl"]),
        ({"targets": [{"metric": "latency", "op": "enumerate"}]}, "targets.0", ["exactly one threshold"]),
        ({"targets": [{"metric": "speed", "below": 1}]}, "targets.0.metric", ["unknown metric"]),
        ({"faults": [{"kind": "meteor"}]}, "faults.0.kind", ["unknown fault kind"]),
        ({"faults": [{"kind": "outage", "at": 10}]}, "faults.0.duration", ["missing required key"]),
        ({"measure": {"agents": "some"}}, "measure.agents", ["all, none"]),
        ({"pattern": "pubsub"}, "pattern", ["not one of"]),
        ({"warmup": 10}, "warmup", ["not shorter than the duration"]),
        (
            {"workload": {"kind": "iot-fleet", "heartbeat": {"period": 400}}},
            "workload.heartbeat.period",
            ["exceed the TTL"],
        ),
        ({"workload": {"kind": "iot-fleet", "devices": 20000}, "config": {"max_identities": 12000}},
         "config.max_identities", ["peak population", "auto"]),
        ({"sim": {"registry": {"servers": 0}}}, "sim.", ["sim"]),
    ],
)
def test_bad_scenarios_name_file_key_and_fix(
    tmp_path: Path, change: dict, key: str, words: list[str]
) -> None:
    path = _write(tmp_path, {**BASE, **change})
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    msg = str(info.value)
    assert str(path) in msg and "Fix:" in msg, msg
    assert info.value.source == str(path)
    assert (info.value.key or "").startswith(key), (info.value.key, msg)
    for w in words:
        assert w in msg, msg
    assert isinstance(info.value, ConfigError)  # ScenarioError is a ConfigError (a UsageError)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.yaml")
    bad = tmp_path / "broken.yaml"
    bad.write_text("pattern: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)


def test_overrides_apply_before_validation() -> None:
    scn = load_scenario(
        SCENARIOS / "iot-device-management.yaml",
        parse_overrides(
            [
                "workload.devices=50",
                "mode=live",
                "workload.deaths.fraction=0.5",
                "slots.registry.url=redis://127.0.0.1:1/0",
            ]
        ),
    )
    assert scn.workload.devices == 50 and scn.mode == "live" and scn.workload.deaths.fraction == 0.5
    assert scn.slots["registry"].backend == "redis" and scn.slots["registry"].options["url"].endswith(":1/0")
    with pytest.raises(ScenarioError, match="workload.devices"):
        load_scenario(SCENARIOS / "iot-device-management.yaml", {"workload.devices": -1})
    with pytest.raises(ScenarioError, match="KEY=VALUE"):
        parse_overrides(["workload.devices"])


def test_dict_scenarios_and_slot_options() -> None:
    scn = load_scenario(
        {
            **BASE,
            "slots": {
                "registry": {"backend": "redis", "url": "redis://h:1/0"},
                "messaging": {"backend": "nats", "servers": ["nats://h:2"]},
            },
        }
    )
    assert scn.slots["registry"].options == {"url": "redis://h:1/0"}
    with pytest.raises(ScenarioError, match="unknown option"):
        load_scenario(
            {**BASE, "slots": {"registry": {"backend": "redis", "host": "h"}, "messaging": "memory"}}
        )


def test_arrival_processes() -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    c = Arrival(rate=10, process="constant").times(rng, 5)
    assert len(c) == 50 and np.allclose(np.diff(c), 0.1)
    p = Arrival(rate=100).times(rng, 100)
    assert 9_400 < len(p) < 10_600 and (np.diff(p) > 0).all() and p.max() < 100
    r = Arrival(rate=0, process="ramp", to=200, start=10, end=110).times(rng, 1000)
    assert 9_400 < len(r) < 10_600 and r.min() >= 10 and r.max() < 110
    assert (r < 60).sum() < (r >= 60).sum() / 2  # the rate ramps up
    assert len(Arrival(rate=0).times(rng, 10)) == 0
    a = Arrival(rate=5).times(np.random.default_rng(7), 50)
    b = Arrival(rate=5).times(np.random.default_rng(7), 50)
    assert np.array_equal(a, b)


WORKLOAD_CORE = [
    "context.py",
    "_ops.py",
    "truth.py",
    "arrivals.py",
    "faults.py",
    "scenario.py",
    "_schema.py",
    "kinds/_common.py",
    "kinds/iot.py",
    "kinds/presence.py",
    "kinds/discovery.py",
    "kinds/loadtest.py",
]


@pytest.mark.parametrize("module", WORKLOAD_CORE)
def test_workloads_never_import_asyncio_or_simpy(module: str) -> None:
    tree = ast.parse((ROOT / "mcastlab" / "workloads" / module).read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {
        n.module.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and n.level == 0
    }
    assert not names & {"asyncio", "simpy", "time", "random", "threading"}, module


@pytest.mark.parametrize(("key", "value", "says"), [
    ("workload.warehouses", 10**9, "workload.warehouses: 1,000,000,000 warehouses for 10,000 devices"),
    ("workload.payload_bytes", 10**8, "workload.payload_bytes: 100,000,000 bytes is above config.max"),
])
def test_workload_sizes_that_cannot_run_are_refused_before_running(key: str, value: int, says: str) -> None:
    with pytest.raises(ScenarioError, match=says):
        load_scenario(SCENARIOS / "iot-device-management.yaml", overrides={key: value})
