"""Failures the fuzz properties found in scenario loading, tiny sim runs and the simulated backends,
each minimised to a plain example: one test per fixed bug. The core ones are in
test_fuzz_regressions.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy
import yaml

from mcastlab import Config, Coordinator
from mcastlab.errors import ConfigError, ScenarioError
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import SimSpec, make_sim_backends
from mcastlab.workloads import load_scenario
from mcastlab.workloads.scenario import parse_overrides

HUGE = 10 ** ((sys.get_int_max_str_digits() or 4300) + 10)  # too many digits for str() / repr()
SMALL = {"pattern": "multicast-registry", "workload": {"kind": "loadtest"},
         "slots": {"registry": "memory", "messaging": "memory"}}


class Opaque:
    pass


@pytest.mark.parametrize("value", ["9" * 5000, "2001-13-14"], ids=["long-int", "bad-date"])
def test_yaml_values_yaml_cannot_convert(tmp_path: Path, value: str) -> None:
    """yaml.safe_load raises ValueError (not YAMLError) for an int past Python's digit limit or an
    impossible date; Config.from_yaml and load_scenario let it escape."""
    p = tmp_path / "x.yaml"
    p.write_text(f"pattern: multicast-registry\nseed: {value}\n")
    with pytest.raises(ScenarioError, match="YAML cannot convert.*Fix"):
        load_scenario(p)
    p.write_text(f"default_ttl: {value}\n")
    with pytest.raises(ConfigError, match="YAML cannot convert"):
        Config.from_yaml(p)


@pytest.mark.parametrize(
    "overrides", [{1: 5}, {None: 5}, {b"duration": 5}, {("a",): 5}, ["duration=5"], "mode"],
    ids=["int-key", "none-key", "bytes-key", "tuple-key", "list", "str"])
def test_scenario_overrides_of_the_wrong_shape(overrides: Any) -> None:
    """load_scenario(data, overrides) split override keys with str methods (AttributeError / TypeError for
    other keys) and iterated overrides.items() (AttributeError for a list)."""
    assert load_scenario(SMALL).workload.kind == "loadtest"
    with pytest.raises(ScenarioError, match="Fix"):
        load_scenario(SMALL, overrides)


@pytest.mark.parametrize("index", ["²", "¹", "٣"])
def test_override_list_index_with_a_non_ascii_digit(index: str) -> None:
    """set_path took str.isdigit() for 'an index', but '²'.isdigit() is True and int('²') a ValueError."""
    data = {**SMALL, "faults": [{"kind": "outage", "at": 1, "duration": 1}]}
    with pytest.raises(ScenarioError, match="is not an index") as info:
        load_scenario(data, {f"faults.{index}.at": 2})
    assert info.value.key == f"faults.{index}.at"
    assert load_scenario(data, {"faults.0.at": 2}).faults[0].at == 2


@pytest.mark.parametrize(
    ("override", "key"),
    [({"slots.registry": [1, 2]}, "slots.registry"),
     ({"slots.messaging": {"backend": ["nats"]}}, "slots.messaging"),
     ({"workload.kind": ["loadtest"]}, "workload.kind"),
     ({"faults": [{"kind": {"outage": 1}}]}, "faults.0.kind"),
     ({"targets": [{"metric": ["latency"], "below": 1}]}, "targets.0.metric")],
    ids=["slot", "slot-backend", "workload-kind", "fault-kind", "target-metric"],
)
def test_unhashable_names_in_a_scenario(override: dict[str, Any], key: str) -> None:
    """Backend, workload-kind, fault-kind and metric names were looked up in dicts unchecked: a list or a
    mapping in their place raised TypeError (unhashable type)."""
    with pytest.raises(ScenarioError, match="Fix") as info:
        load_scenario(SMALL, override)
    assert info.value.key == key


@pytest.mark.parametrize(
    "override",
    [{"duration": 2**1024}, {"workload.rate": HUGE}, {"seed": 2**64}, {"reference": {"figures": [1, -HUGE]}},
     {"reference": {HUGE: 1}}],
    ids=["float-field", "huge", "seed", "nested", "key"],
)
def test_scenario_ints_beyond_64_bits(override: dict[str, Any]) -> None:
    """A scenario number beyond the float range raised OverflowError in the schema's float(value), and
    past 4300 digits the error message about it raised ValueError."""
    with pytest.raises(ScenarioError, match="signed 64-bit range.*Fix"):
        load_scenario(SMALL, override)


def test_scenario_value_that_contains_itself(tmp_path: Path) -> None:
    """YAML anchors can build a list holding itself; such a scenario loaded, and run_scenario then died
    of RecursionError writing its manifest. Now refused at load, naming the key; shared (not cyclic)
    anchors still load."""
    p = tmp_path / "x.yaml"
    head = yaml.safe_dump(SMALL)
    p.write_text(head + "reference: {loop: &r [1, *r]}\n")
    with pytest.raises(ScenarioError, match="contains itself.*Fix") as info:
        load_scenario(p)
    assert info.value.key == "reference.loop.1"
    p.write_text(head + "reference: {a: &s [1, 2], b: *s}\n")
    assert load_scenario(p).reference == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize("where", ["", "dir", "binary", "long-int"])
def test_sim_calibration_that_cannot_be_read(tmp_path: Path, where: str) -> None:
    """sim.calibration caught only a missing file and bad JSON: '' (resolved to '.', a directory), a
    directory, a file that is not UTF-8 or holds an int json.loads refuses escaped as OSError/ValueError."""
    path = {"": "", "dir": str(tmp_path), "binary": str(tmp_path / "b.json"),
            "long-int": str(tmp_path / "n.json")}[where]
    (tmp_path / "b.json").write_bytes(b"\xff\xfe{")
    (tmp_path / "n.json").write_text('{"sim": {"registry": {"servers": ' + "9" * 5000 + "}}}")
    with pytest.raises(ConfigError, match="cannot be read") as info:
        SimSpec.from_dict({"calibration": path})
    assert info.value.key == "calibration"
    with pytest.raises(ScenarioError, match="sim.calibration"):
        load_scenario(SMALL, {"sim": {"calibration": path}})


@pytest.mark.parametrize("stat", ["p²", "p9¹", "p101", "p1000000"])
def test_target_percentiles_evaluation_cannot_compute(stat: str) -> None:
    """A target's stat passed the loader's check when stat[1:] was str.isdigit() - true for '²' and for
    101 - and the run then failed in evaluate: float('²') or numpy's 'Percentiles must be in [0, 100]'."""
    target = {"metric": "latency", "op": "register", "stat": stat, "below": 1}
    with pytest.raises(ScenarioError, match="unknown statistic") as info:
        load_scenario(SMALL, {"targets": [target]})
    assert info.value.key == "targets.0.stat"
    for ok in ("p0", "p100", "p99.9"):
        assert load_scenario(SMALL, {"targets": [{**target, "stat": ok}]}).targets[0].stat == ok


@pytest.mark.parametrize("value", ["[", '"', "*nope", "%TAG ! x", "=", "\x9b", "9" * 5000, "2001-13-14"],
                         ids=["bracket", "quote", "alias", "directive", "tag", "control", "long-int", "date"])
def test_set_values_yaml_cannot_read(value: str) -> None:
    """parse_overrides (the CLI's --set KEY=VALUE) let the YAML parser's errors escape - YAMLError, or
    ValueError for an int too long or an impossible date - as a traceback instead of a ScenarioError."""
    with pytest.raises(ScenarioError, match="Fix") as info:
        parse_overrides([f"workload.devices={value}"])
    assert info.value.key == "workload.devices"
    assert parse_overrides(["workload.devices=5", "name='['"]) == {"workload.devices": 5, "name": "["}
    with pytest.raises(ScenarioError) as info:  # no key at all: the error names the whole pair
        parse_overrides([f"={value}"])
    assert info.value.key == f"={value}"


@pytest.mark.parametrize("samples", [["all", 0.1], [0.1, [1, 2]], [{}, 0.1], [Opaque(), 0.1], [2**1024]],
                         ids=["text", "nested", "mapping", "object", "int-past-float"])
def test_empirical_samples_that_are_not_numbers(samples: list[Any]) -> None:
    """An empirical model's samples went straight into np.asarray(samples, dtype=float), so text, nested
    lists, mappings, objects or an int past the float range raised ValueError/TypeError/OverflowError
    out of SimSpec.from_dict (and make_sim_backends)."""
    model = {"kind": "empirical", "samples": samples}
    with pytest.raises(ConfigError, match="samples must be finite numbers") as info:
        SimSpec.from_dict({"messaging": {"flush": model}})
    assert info.value.key == "messaging.flush.samples"


@pytest.mark.parametrize(
    ("section", "key"),
    [({"registry": {"timeout": 2**1024}}, "registry.timeout"),
     ({"messaging": {"connect_timeout": -HUGE}}, "messaging.connect_timeout"),
     ({"messaging": {"ack": {"kind": "constant", "value": HUGE}}}, "messaging.ack.value"),
     ({"registry": {"service": {"default": {"kind": "lognormal", "median": 1e-4, "sigma": 2**1024}}}},
      "registry.service.default.sigma"),
     ({"faults": [{"target": "registry", "kind": "outage", "start": 2**1024}]}, "faults[0].start")],
    ids=["timeout", "connect", "model-value", "model-sigma", "fault-start"],
)
def test_sim_numbers_beyond_the_float_range(section: dict[str, Any], key: str) -> None:
    """The sim spec's number checks called math.isfinite / math.isnan / float on the value: an int past
    the float range raised OverflowError out of SimSpec.from_dict, and its message could not print it."""
    with pytest.raises(ConfigError) as info:
        SimSpec.from_dict(section)
    assert info.value.key == key
    assert SimSpec.from_dict({"registry": {"timeout": 10**300}}).registry.timeout == 10**300


@pytest.mark.parametrize("servers", [2**63, 10**9, 4097], ids=["2**63", "1e9", "4097"])
def test_sim_servers_the_queue_cannot_hold(servers: int) -> None:
    """registry/messaging servers had no upper bound; FcfsServer keeps a slot per server ([0.0] * n), so
    2**63 raised OverflowError in make_sim_backends and 10**9 asked for 8 GB."""
    for slot in ("registry", "messaging"):
        with pytest.raises(ConfigError, match="from 1 to 4096") as info:
            make_sim_backends({slot: {"servers": servers}}, rng=np.random.default_rng(1))
        assert info.value.key == f"{slot}.servers"
    assert SimSpec.from_dict({"registry": {"servers": 4096}}).registry.servers == 4096


@pytest.mark.timeout(20)
def test_ack_send_to_nobody_honours_the_send_timeout() -> None:
    """SimMessaging declares self_timed (send honours its timeout), but an ack-mode send to an identity
    without a listener waited for the server's 'no responders' answer however late it came: with a
    server cost of 1e30 s the multicast waited 1e30 virtual seconds, so the run never ended."""
    sim = SimPyRuntime(simpy.Environment())
    reg, msg = make_sim_backends({"messaging": {"per_message": 1e30}}, rng=np.random.default_rng(1))
    cfg = Config(send_timeout=0.5, send_retries=0)

    async def body() -> dict[str, str]:
        async with Coordinator(cfg, registry=reg, messaging=msg, runtime=sim) as c:
            await c.register("dev-1", {})
            return dict((await c.multicast(None, b"x", mode="ack")).statuses)

    assert sim.run(body()) == {"dev-1": "timeout"}
    assert sim.now() < 1.0


def test_empirical_samples_nested_evenly() -> None:
    """samples: [[1, 2]] made a 2-D array that passed the finiteness check; the model then drew lists,
    and the first simulated register failed with TypeError (float + list), reported as a BackendError."""
    with pytest.raises(ConfigError, match="samples must be finite numbers"):
        SimSpec.from_dict({"registry": {"network": {"register": {"kind": "empirical", "samples": [[1, 2]]}}}})


def _nested(levels: int) -> Any:
    out: Any = 1
    for _ in range(levels):
        out = [out]
    return out


def test_scenarios_nested_too_deeply(tmp_path: Path) -> None:
    """A scenario nested thousands of levels deep - in the dict (copy.deepcopy), in a YAML file or a --set
    value (the YAML reader), or in an override value (the loader's own walk) - raised RecursionError."""
    with pytest.raises(ScenarioError, match="nests deeper"):
        load_scenario({**SMALL, "reference": {"x": _nested(5000)}})
    with pytest.raises(ScenarioError, match="nests deeper than 100 levels") as info:
        load_scenario(SMALL, {"reference": {"x": _nested(200)}})
    assert info.value.key.startswith("reference.x.0.0")
    p = tmp_path / "deep.yaml"
    p.write_text(yaml.safe_dump(SMALL) + "reference: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ScenarioError, match="nests deeper"):
        load_scenario(p)
    with pytest.raises(ScenarioError, match="Fix"):
        parse_overrides(["reference=" + "[" * 5000])
    assert load_scenario({**SMALL, "reference": {"x": _nested(90)}}).reference["x"] == _nested(90)


def _loop() -> list[Any]:
    out: list[Any] = [1]
    out.append(out)
    return out


@pytest.mark.parametrize(
    "section",
    [{"messaging": {"flush": _nested(5000)}}, {"faults": [_nested(5000)]}, {"faults": [_loop()]},
     {"messaging": {"inline": HUGE}}, {"registry": {"service": {"default": {"kind": _nested(5000)}}}}],
    ids=["deep-model", "deep-fault", "looped-fault", "huge-inline", "deep-kind"],
)
def test_sim_spec_values_no_message_can_show(section: dict[str, Any]) -> None:
    """The sim spec's refusals quoted the bad value with repr(): a value nested thousands deep (or holding
    itself) made that repr raise RecursionError, an int past the digit limit ValueError."""
    with pytest.raises(ConfigError):
        SimSpec.from_dict(section)
    with pytest.raises(ConfigError):
        make_sim_backends(section, rng=np.random.default_rng(1))


def test_load_scenario_leaves_the_callers_overrides_alone() -> None:
    """Override values went into the scenario uncopied, so a later dotted override wrote into the caller's
    own object ({'reference': ref, 'reference.figures.0': 99} changed ref) - found because the fuzz
    strategy's shared pool values changed between examples."""
    ref = {"figures": [1, 2]}
    scn = load_scenario(SMALL, {"reference": ref, "reference.figures.0": 99})
    assert scn.reference == {"figures": [99, 2]} and ref == {"figures": [1, 2]}
    with pytest.raises(ScenarioError, match="nest deeper|nests deeper"):
        load_scenario(SMALL, {"reference": _nested(5000)})
