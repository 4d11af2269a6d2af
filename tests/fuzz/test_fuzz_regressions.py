"""Failures the fuzz properties found in the core entry points (validation, filters, configs, coordinator
calls, the sweeper), each minimised to a plain example: one test per fixed bug. The scenario and
simulator ones are in test_fuzz_regressions_scenarios.py."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy

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
    UsageError,
)
from mcastlab.filters import And, Compare, F, In, Not, compile_filter
from mcastlab.identity import validate_identity, validate_metadata, validate_payload, validate_ttl
from mcastlab.runtime import SimPyRuntime
from mcastlab.sim import make_sim_backends

HUGE = 10 ** ((sys.get_int_max_str_digits() or 4300) + 10)  # too many digits for str() / repr()


class IntSub(int):
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


def test_config_yaml_nested_too_deeply(tmp_path: Path) -> None:
    """Config.from_yaml let the YAML reader's RecursionError escape for thousands of open brackets."""
    p = tmp_path / "c.yaml"
    p.write_text("config: " + "{a: " * 3000 + "\n")
    with pytest.raises(ConfigError, match="nests deeper"):
        Config.from_yaml(p)
