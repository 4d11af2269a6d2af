"""SimSpec from data: defaults, calibration files, and ConfigError naming the bad key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import simpy

from mcastlab.errors import ClosedError, ConfigError, RuntimeMisuseError
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import Constant, Empirical, LogNormal, SimSpec, make_sim_backends


def test_defaults_are_close_to_baselines() -> None:
    spec = SimSpec.from_dict(None)
    assert isinstance(spec.registry.model("network", "register"), LogNormal)
    assert 40e-6 < spec.registry.model("network", "register").median() < 120e-6
    assert spec.registry.servers == 1
    assert spec.faults == ()
    assert SimSpec.from_dict(spec.to_dict()) == spec


def test_overrides_merge_onto_defaults() -> None:
    spec = SimSpec.from_dict(
        {
            "registry": {"service": {"register": 1e-5}, "servers": 2},
            "messaging": {"delivery": {"kind": "constant", "value": 0.001}},
        }
    )
    assert spec.registry.model("service", "register") == Constant(1e-5)
    assert spec.registry.model("service", "get") == spec.registry.service["default"]
    assert spec.registry.servers == 2
    assert spec.messaging.delivery == Constant(0.001)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"registy": {}}, "sim.registy"),
        ({"registry": {"servce": {}}}, "registry.servce"),
        ({"registry": {"service": {"regster": 1e-5}}}, "registry.service.regster"),
        ({"registry": {"servers": 0}}, "registry.servers"),
        (
            {"messaging": {"delivery": {"kind": "lognormal", "median": 1e-4, "sigmaa": 0.2}}},
            "messaging.delivery.sigmaa",
        ),
        ({"messaging": {"inline": "yes"}}, "messaging.inline"),
        ({"faults": [{"target": "messaging", "kind": "outage", "strat": 5}]}, "faults[0].strat"),
        ({"faults": [{"target": "db", "kind": "outage"}]}, "faults[0].target"),
        ({"faults": [{"target": "registry", "kind": "errors"}]}, "faults[0].probability"),
        ({"faults": [{"target": "registry", "kind": "slow", "factor": 2, "ops": ["send"]}]}, "faults[0].ops"),
        ({"faults": [{"target": "registry", "kind": "drop", "probability": 1.5}]}, "faults[0].probability"),
    ],
)
def test_bad_input_raises_config_error_naming_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        SimSpec.from_dict(data, source="scenario.yaml")
    assert err.value.key == key
    assert key.split(".")[-1] in str(err.value)
    assert "scenario.yaml" in str(err.value)


def test_a_table_with_default_replaces_the_built_in_table() -> None:
    spec = SimSpec.from_dict({"registry": {"network": {"default": 1e-4}}})
    assert spec.registry.model("network", "query") == Constant(1e-4)
    assert spec.registry.model("service", "query") != spec.registry.service["default"]  # untouched table


def test_did_you_mean() -> None:
    with pytest.raises(ConfigError, match="did you mean 'registry'"):
        SimSpec.from_dict({"registy": {}})


def test_calibration_file_supplies_models_and_spec_overrides(tmp_path: Path) -> None:
    cal = {
        "sim": {
            "registry": {"network": {"register": {"kind": "empirical", "samples": [1e-4, 2e-4]}}},
            "messaging": {"flush": {"kind": "constant", "value": 3e-4}},
        }
    }
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(cal))
    spec = SimSpec.from_dict({"calibration": str(path), "messaging": {"flush": 1e-4}})
    assert spec.registry.model("network", "register") == Empirical((1e-4, 2e-4))
    assert spec.messaging.flush == Constant(1e-4)
    with pytest.raises(ConfigError, match="does not exist") as err:
        SimSpec.from_dict({"calibration": str(tmp_path / "missing.json")})
    assert err.value.key == "calibration"


def test_make_sim_backends_checks_its_arguments() -> None:
    rt = SimPyRuntime(simpy.Environment())
    with pytest.raises(ConfigError, match="Generator"):
        make_sim_backends(None, rng=42)  # type: ignore[arg-type]
    reg, msg = make_sim_backends(None, rng=np.random.default_rng(1))
    with pytest.raises(RuntimeMisuseError, match="SimPyRuntime"):
        rt.run(reg.open(object()))
    with pytest.raises(RuntimeMisuseError, match="SimPyRuntime"):
        rt.run(msg.open(object()))
    rt.run(reg.open(rt))
    with pytest.raises(ClosedError, match="another SimPy environment"):
        SimPyRuntime(simpy.Environment()).run(reg.open(SimPyRuntime(simpy.Environment())))
    reg, msg = make_sim_backends(
        {"faults": [{"target": "messaging", "kind": "outage", "start": 1, "duration": 2}]},
        rng=np.random.default_rng(1),
    )
    assert bool(msg.faults) and not reg.faults


def test_module_docstring_yaml_example_is_valid() -> None:
    import yaml

    from mcastlab.sim import spec as spec_module

    doc = spec_module.__doc__ or ""
    block = doc.split("::", 1)[1].split("\n\n", 2)[1]
    data = yaml.safe_load(block)
    spec = SimSpec.from_dict(data)
    assert spec.calibration == "data/calibration/default.json"
    assert [f.kind for f in spec.faults] == ["outage", "slow", "errors", "drop"]
    assert spec.registry.model("service", "query").per_item == 5.0e-7
