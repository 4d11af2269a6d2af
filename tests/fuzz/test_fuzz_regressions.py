"""Failures the fuzz properties found, each minimised to a plain example (one test per fixed bug)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy
import yaml

from mcastlab import Config, Coordinator
from mcastlab.backends import SqliteDurability, SqliteRegistry
from mcastlab.errors import (
    ConfigError,
    FilterError,
    FilterSyntaxError,
    InvalidIdentityError,
    InvalidMetadataError,
    InvalidTTLError,
    McastlabError,
    ScenarioError,
    UsageError,
)
from mcastlab.filters import And, Compare, F, In, Not, compile_filter
from mcastlab.identity import validate_identity, validate_metadata, validate_payload, validate_ttl
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import SimSpec, make_sim_backends
from mcastlab.workloads import load_scenario
from mcastlab.workloads.scenario import parse_overrides

HUGE = 10 ** ((sys.get_int_max_str_digits() or 4300) + 10)  # too many digits for str() / repr()


SMALL = {"pattern": "multicast-registry", "workload": {"kind": "loadtest"},
         "slots": {"registry": "memory", "messaging": "memory"}}


class IntSub(int):
    pass


class Opaque:
    pass


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: validate_identity(HUGE), InvalidIdentityError),
        (lambda: validate_metadata({HUGE: 1}, max_bytes=100), InvalidMetadataError),
        (lambda: validate_metadata({"a": IntSub(HUGE)}, max_bytes=100), InvalidMetadataError),
        (lambda: compile_filter({"a": HUGE}), FilterError),
        (lambda: compile_filter({HUGE: 1}), FilterError),
        (lambda: compile_filter(HUGE), FilterError),
        (lambda: F(HUGE) == 1, FilterError),
        (lambda: F("a").isin([1, HUGE]), FilterError),
        (lambda: Config.from_dict({HUGE: 1}), ConfigError),
        (lambda: Config(delivery_mode=HUGE), ConfigError),
        (lambda: Config(auto_sweep=HUGE), ConfigError),
    ],
)
def test_messages_about_ints_too_long_to_print(call: Callable[[], Any], error: type[McastlabError]) -> None:
    """Reporting a bad value used repr(value), which raises ValueError for an int past the digit limit."""
    with pytest.raises(error, match="digits"):
        call()


@pytest.mark.parametrize("ttl", [2**1024, -(2**1024), HUGE, -HUGE, IntSub(2**1024)],
                         ids=["2**1024", "-2**1024", "huge", "-huge", "subclass"])
def test_ttl_ints_beyond_the_float_range(ttl: int) -> None:
    """float(ttl) raised OverflowError for an int past the float range (register and heartbeat too)."""
    with pytest.raises(InvalidTTLError, match="finite number of seconds"):
        validate_ttl(ttl)
    sim = SimPyRuntime(simpy.Environment())
    c = Coordinator(runtime=sim)
    sim.run(c.register("keep", {}))
    for call in (lambda: c.register("keep", {"x": 1}, ttl=ttl), lambda: c.heartbeat("keep", ttl=ttl)):
        with pytest.raises(InvalidTTLError):
            sim.run(call())
    assert [(i.id, dict(i.metadata)) for i in sim.run(c.enumerate())] == [("keep", {})]


def test_metadata_ints_json_cannot_write() -> None:
    """validate_metadata accepted an int too long for json.dumps; the SQLite registry then failed with a
    ValueError wrapped as a BackendError (a retry can only fail again) while the memory registry stored it."""
    for md in ({"a": HUGE}, {"a": [1, -HUGE]}, {"a": {"b": 10**640}}):
        with pytest.raises(InvalidMetadataError, match="digits"):
            validate_metadata(md, max_bytes=10**6)
    copy, _ = validate_metadata({"a": 10**640 - 1, "b": [-(10**640) + 1]}, max_bytes=10**6)
    assert json.loads(json.dumps(copy)) == copy
    sim = SimPyRuntime(simpy.Environment())
    c = Coordinator(registry=SqliteRegistry(":memory:"), runtime=sim)
    with pytest.raises(InvalidMetadataError):
        sim.run(c.register("dev-1", {"big": HUGE}))
    assert sim.run(c.count()) == 0


def test_payload_text_with_a_lone_surrogate() -> None:
    """str payloads were encoded unchecked: a lone surrogate raised UnicodeEncodeError, which multicast
    reported as a BackendError; now a UsageError, before anything is sent or journaled."""
    with pytest.raises(UsageError, match="position 2"):
        validate_payload("ok\ud800", max_bytes=100)
    sim = SimPyRuntime(simpy.Environment())
    journal = SqliteDurability(":memory:")
    c = Coordinator(registry=SqliteRegistry(":memory:"), durability=journal, runtime=sim)
    sim.run(c.register("dev-1", {}))
    with pytest.raises(UsageError, match="surrogate"):
        sim.run(c.multicast(None, "\udc80"))
    assert sim.run(journal.messages()) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("default_ttl", 2**1024), ("send_timeout", HUGE), ("sweep_interval", -(2**1024)),
     ("retry_backoff", 2**1024), ("sweep_resolution", HUGE), ("max_identities", 2**63),
     ("sweep_batch", 2**63), ("max_in_flight", HUGE), ("max_payload_bytes", 10**30)],
    ids=["ttl", "timeout", "interval", "backoff", "resolution", "identities", "batch", "window", "payload"],
)
def test_config_numbers_it_cannot_use(key: str, value: int) -> None:
    """Config raised OverflowError for ints beyond the float range (math.isfinite), and accepted counts
    beyond 64 bits that SQLite then refused (OverflowError in LIMIT ?, surfacing as a BackendError)."""
    with pytest.raises(ConfigError, match=f"Config.{key}") as info:
        Config.from_dict({key: value})
    assert info.value.key == key
    cfg = Config(sweep_batch=2**63 - 1, max_identities=2**63 - 1)  # the largest allowed still work
    sim = SimPyRuntime(simpy.Environment())
    c = Coordinator(cfg, registry=SqliteRegistry(":memory:"), runtime=sim)
    sim.run(c.register("dev-1", {}, ttl=1))
    sim.run(c.unregister("dev-1"))
    assert sim.run(c.sweep()) == 0


@pytest.mark.timeout(20)
def test_sweep_interval_too_short_to_advance_the_clock() -> None:
    """Config(sweep_interval=1e-300) was accepted; the sweeper then slept 1e-300 s per round, which does not
    move a clock past ~1e-284, so any wait in virtual time hung (and live, the sweeper spun a core)."""
    for tiny in (1e-300, 1e-9, 0.0009):
        with pytest.raises(ConfigError, match="sweep_interval must be at least 0.001") as info:
            Config(sweep_interval=tiny)
        assert info.value.key == "sweep_interval"
    sim = SimPyRuntime(simpy.Environment())

    async def body() -> int:
        async with Coordinator(Config(sweep_interval=0.001), runtime=sim) as c:
            await c.register("dev-1", {}, ttl=1)
            await sim.sleep(2)
            return c.expired_total

    assert sim.run(body()) == 1


@pytest.mark.timeout(20)
def test_failing_sweeps_wait_even_without_backoff_or_resolution() -> None:
    """With retry_backoff=0 and sweep_resolution=0 a failed background sweep was retried after 0 s: while
    the registry failed at once (a simulated outage, connect_timeout 0) virtual time stood still forever."""
    sim = SimPyRuntime(simpy.Environment())
    outage = {"target": "registry", "kind": "outage", "start": 1, "duration": 5}
    reg, msg = make_sim_backends({"registry": {"connect_timeout": 0}, "faults": [outage]},
                                 rng=np.random.default_rng(1))
    cfg = Config(retry_backoff=0, sweep_resolution=0, sweep_interval=0.5)

    async def body() -> tuple[int, int]:
        async with Coordinator(cfg, registry=reg, messaging=msg, runtime=sim) as c:
            await c.register("dev-1", {}, ttl=2)
            await sim.sleep(10)
            return c.sweep_errors, c.expired_total

    errors, expired = sim.run(body())
    assert 0 < errors <= 5 / 0.5 + 1 and expired == 1  # one retry per interval, and the expiry after it


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


LEAF = F("a") == 1


@pytest.mark.parametrize(
    "build",
    [lambda: LEAF & HUGE, lambda: HUGE | LEAF, lambda: And((LEAF, HUGE)), lambda: Not(HUGE),
     lambda: Compare("a", HUGE, 1), lambda: In("a", HUGE), lambda: In("a", (1,), HUGE),
     lambda: F("a").startswith(HUGE)],
    ids=["and", "or", "And", "Not", "Compare-op", "In-values", "In-negated", "startswith"],
)
def test_filter_nodes_report_ints_too_long_to_print(build: Callable[[], Any]) -> None:
    """Building a filter node from a bad piece reported it with repr(piece): ValueError for huge ints."""
    with pytest.raises(FilterError, match="digits"):
        build()


def test_coordinator_calls_report_ints_too_long_to_print() -> None:
    """The Guard reported a failed call's identity with str(identity), and ack its ids with repr: both
    raised ValueError for an int past the digit limit, instead of the typed refusal."""
    sim = SimPyRuntime(simpy.Environment())
    c = Coordinator(durability=SqliteDurability(":memory:"), runtime=sim)
    events: list[Any] = []
    c.add_listener(events.append)
    for call in (lambda: c.register(HUGE), lambda: c.heartbeat(HUGE), lambda: c.unregister(HUGE),
                 lambda: c.get(HUGE)):
        with pytest.raises(InvalidIdentityError, match="digits"):
            sim.run(call())
    with pytest.raises(UsageError, match="digits"):
        sim.run(c.ack("dev-1", HUGE))
    assert events and all("digits" in e.identity for e in events)


@pytest.mark.parametrize("since", [2**1024, -(2**1024), HUGE], ids=["2**1024", "-2**1024", "huge"])
def test_replay_since_beyond_the_float_range(since: int) -> None:
    """replay(since=2**1024) passed the check and float(since) raised OverflowError: a BackendError."""
    sim = SimPyRuntime(simpy.Environment())
    c = Coordinator(durability=SqliteDurability(":memory:"), runtime=sim)
    with pytest.raises(UsageError, match="since must be a time"):
        sim.run(c.replay("dev-1", since=since))
    assert sim.run(c.replay("dev-1", since=float("inf"))) == []


@pytest.mark.parametrize("text", ["¹", "a == ²", "٣", "a == -٣", "x in [1, ¹]"])
def test_filter_text_with_non_ascii_digits(text: str) -> None:
    """The tokenizer took any str.isdigit() character for the start of a number, but its number pattern is
    ASCII: '¹', '²' or '٣' tripped an assert (AssertionError, a BackendError through enumerate)."""
    with pytest.raises(FilterSyntaxError):
        compile_filter(text)
    assert compile_filter("¹ == 1").text == "¹ == 1"  # a field named '¹' is fine


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


def test_config_yaml_nested_too_deeply(tmp_path: Path) -> None:
    """Config.from_yaml let the YAML reader's RecursionError escape for thousands of open brackets."""
    p = tmp_path / "c.yaml"
    p.write_text("config: " + "{a: " * 3000 + "\n")
    with pytest.raises(ConfigError, match="nests deeper"):
        Config.from_yaml(p)


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
