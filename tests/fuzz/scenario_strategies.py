"""Scenario dicts: the shipped ``scenarios/*.yaml`` loaded as dicts, then mutated, plus dotted overrides.

A mutation picks a path in the dict (a key of a mapping or an index of a list, at any depth) and deletes
it, replaces its value (extreme numbers, wrong types, near-miss strings), retypes it (number <-> text,
mapping <-> list, scalar -> [scalar]), injects an unknown key next to it, or grafts a whole section
(slots, faults, targets, sim, workload) drawn to be bad in interesting ways. Overrides are dotted keys
as ``--set`` writes them, valid or not (list indexes out of range, non-ASCII digits, empty parts).

``bounded=True`` draws runnable scenarios: numbers from a small pool (no tiny periods or huge rates)
and a final clamp of duration and fleet size, so that a sim run takes a fraction of a second.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from .oracle import safe_repr
from .strategies import HUGE, Deferred, Opaque, odd_text, pick

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SHIPPED: dict[str, dict[str, Any]] = {
    p.stem: yaml.safe_load(p.read_text()) for p in sorted(SCENARIOS.glob("*.yaml"))
}


def _loop() -> list[Any]:
    """A list that holds itself (YAML anchors can build one: ``&r [1, *r]``)."""
    out: list[Any] = [1]
    out.append(out)
    return out


def _deep(levels: int) -> Any:
    """A value nested ``levels`` lists deep (deeper than Python's recursion limit for large ``levels``)."""
    out: Any = 1
    for _ in range(levels):
        out = [out]
    return out


def _deep_5000() -> Any:
    return _deep(5000)


EXTREME: tuple[Any, ...] = (
    0, -1, 1, 0.5, 1e-9, 1e9, 1e308, -1e308, math.nan, math.inf, -math.inf, 2**63, 2**64, 10**30, HUGE, True,
    False, None, "", "x", "auto", "all", "none", "sim", "live", "publish", "ack", "redis", "memory", "nats",
    "sqlite", "default", "²", "1e3", "p99", "p²", "p", "p-1", "p1e3", "1.2.3", "\x00", "\ud800", [], {},
    [1, 2], [0, "x"], {"kind": "outage"}, {"rate": 1}, {"backend": "redis"}, Opaque(), b"x", (1, 2),
    _loop(), _deep(50), Deferred(make=_deep_5000),
)
BOUNDED: tuple[Any, ...] = (
    0, -1, 1, 2, 0.5, 5, 10, True, None, "", "x", "auto", "all", "none", [], {}, [1, 2], "²", "p99", "p²",
    "publish", "ack", "memory", _loop(),
)
TYPO_KEYS = (
    "devcies", "ttl ", "Duration", "warmup_s", "heartbeats", "kind_", "rate_", "backend ", "1", "²", "",
    "a.b", "source", "raw",
)


def _paths(node: Any, prefix: tuple[Any, ...] = (), above: frozenset[int] = frozenset()) -> list[Any]:
    """Every path into ``node`` (keys of mappings, indexes of lists), parents before children, at most 13
    deep; a container that holds itself is entered once."""
    out: list[tuple[Any, ...]] = []
    if id(node) in above or len(prefix) > 12:  # deeper paths add nothing but recursion
        return out
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k), above | {id(node)}))
    return out


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for k in path[:-1]:
        data = data[k]
    return data


def _retype(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return safe_repr(value, 10_000)
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return None


def sim_sections(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The ``sim:`` section (:class:`mcastlab.sim.SimSpec`): known keys, models and faults, values from
    ``values``."""
    model = st.one_of(
        values,
        st.fixed_dictionaries(
            {"kind": st.sampled_from(("constant", "lognormal", "exponential", "empirical", "gamma"))},
            optional={
                "value": values,
                "median": values,
                "sigma": values,
                "mean": values,
                "per_item": values,
                "samples": st.one_of(values, st.lists(values, max_size=3)),
            },
        ),
    )
    sim_fault = st.fixed_dictionaries(
        {
            "target": st.one_of(st.sampled_from(("registry", "messaging")), values),
            "kind": st.one_of(st.sampled_from(("outage", "slow", "errors", "drop")), values),
        },
        optional={
            "start": values,
            "duration": values,
            "end": values,
            "probability": values,
            "factor": values,
            "ops": st.one_of(values, st.lists(st.sampled_from(("register", "query", "send", "x")))),
            "delay": values,
        },
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "calibration": st.one_of(
                st.sampled_from(("default", "nope.json", "", "/dev/null", "scenarios")), values
            ),
            "registry": st.fixed_dictionaries(
                {},
                optional={
                    "servers": values, "timeout": values, "connect_timeout": values,
                    "service": st.dictionaries(
                        st.sampled_from(("default", "query", "claim", "bogus")), model, max_size=2
                    ),
                    "network": st.dictionaries(
                        st.sampled_from(("default", "query", "batch")), model, max_size=2
                    ),
                },
            ),
            "messaging": st.fixed_dictionaries(
                {},
                optional={
                    "servers": values, "per_message": model, "flush": model, "delivery": model, "ack": model,
                    "inline": values, "per_request": model,
                },
            ),
            "faults": st.one_of(values, st.lists(sim_fault, max_size=2)),
            "bogus": values,
        },
    )


def _sections(values: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[str, Any]]:
    """Whole sections, each drawn to be half right: keys the schema knows, values from ``values``."""
    slot_backend = st.sampled_from(
        ("memory", "redis", "nats", "sqlite", "postgres", "redis-pubsub", "kafka", "")
    )
    slot = st.one_of(
        slot_backend,
        values,
        st.fixed_dictionaries(
            {"backend": slot_backend},
            optional={
                "url": values, "prefix": values, "path": values, "options": values, "servers": values,
                "bogus": values,
            },
        ),
    )
    slots = st.dictionaries(
        st.sampled_from(("registry", "messaging", "durability", "cache")), slot, max_size=3
    )
    fault = st.fixed_dictionaries(
        {"kind": st.one_of(st.sampled_from(("outage", "expiry_avalanche", "flood")), values)},
        optional={
            "at": values,
            "duration": values,
            "target": st.one_of(st.sampled_from(("devices", "registry", "messaging", "cpu")), values),
            "reconnect_spread": values, "fraction": values, "die_after": values, "jitter": values,
            "extra": values,
        },
    )
    target = st.fixed_dictionaries(
        {
            "metric": st.one_of(
                st.sampled_from(
                    (
                        "latency", "makespan", "stale", "missed", "expiry_lag", "delivered_ratio",
                        "delivery_latency", "speed",
                    )
                ),
                values,
            )
        },
        optional={
            "op": values, "stat": values, "below": values, "above": values, "at_most": values,
            "at_least": values, "window": values, "min_matched": values, "min_samples": values,
            "name": values, "extra": values,
        },
    )
    sim = sim_sections(values)
    return st.one_of(
        st.tuples(st.just("slots"), slots),
        st.tuples(st.just("faults"), st.lists(fault, max_size=3)),
        st.tuples(st.just("targets"), st.lists(target, max_size=3)),
        st.tuples(st.just("sim"), sim),
        st.tuples(st.just("reference"), st.dictionaries(st.sampled_from(("source", "loop", "ops")), values)),
        st.tuples(
            st.just("measure"),
            st.dictionaries(
                st.sampled_from(
                    (
                        "population_interval", "agents", "probe_interval", "probe_max", "tolerance",
                        "window", "bogus",
                    )
                ),
                values,
                max_size=3,
            ),
        ),
        st.tuples(
            st.just("config"),
            st.dictionaries(
                st.sampled_from(
                    (
                        "default_ttl", "max_identities", "delivery_mode", "send_timeout", "sweep_batch",
                        "max_clauses", "bogus",
                    )
                ),
                values,
                max_size=3,
            ),
        ),
        st.tuples(
            st.just("workload"),
            st.sampled_from(sorted(SHIPPED)).map(lambda n: copy.deepcopy(SHIPPED[n]["workload"])),
        ),
    )


@st.composite
def _mutated(draw: st.DrawFn, values: st.SearchStrategy[Any], counts: tuple[int, ...]) -> dict[str, Any]:
    data = copy.deepcopy(SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))])
    for _ in range(draw(st.sampled_from(counts))):
        paths = _paths(data)
        how = draw(
            st.sampled_from(("delete", "replace", "replace", "retype", "inject", "section", "section"))
        )
        if how == "section":
            key, section = draw(_sections(values))
            data[key] = section
            continue
        if not paths:
            continue
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        key = path[-1]
        if how == "delete":
            del parent[key]
        elif how == "replace":
            parent[key] = draw(values)
        elif how == "retype":
            parent[key] = _retype(parent[key])
        elif isinstance(parent, dict):
            parent[draw(st.one_of(st.sampled_from(TYPO_KEYS), odd_text(6)))] = draw(values)
    return data


def _override_keys(data: dict[str, Any]) -> st.SearchStrategy[Any]:
    known = [".".join(map(str, p)) for p in _paths(data)] or ["duration"]
    odd = st.sampled_from((1, None, ("a",), b"duration"))
    return st.one_of(
        st.sampled_from(known), st.sampled_from(known), st.sampled_from(known),
        st.sampled_from(
            (
                "workload.devices", "faults.0.at", "faults.9", "faults.²", "faults.-1", "slots.registry",
                "slots.registry.url", "slots.messaging.backend", "a..b", "", ".", "mode", "duration",
                "sim.registry.servers", "targets.0.stat", "measure.agents", "config.max_identities",
                "workload.heartbeat.period", "workload.firmware.1.2.3", "name.first", "source", "raw",
            )
        ),
        st.integers(0, 9).flatmap(lambda i: odd if i == 0 else st.sampled_from(known)),
    )


@st.composite
def scenario_inputs(draw: st.DrawFn, *, bounded: bool = False) -> tuple[dict[str, Any], dict[Any, Any]]:
    """``(scenario dict, overrides)`` for ``load_scenario``; ``bounded`` ones are cheap to run."""
    values = pick(BOUNDED) if bounded else st.one_of(pick(EXTREME), odd_text(6))
    data = draw(_mutated(values, (0, 0, 1, 1, 2) if bounded else (0, 1, 2, 3, 4, 5)))
    overrides: dict[Any, Any] = draw(
        st.dictionaries(_override_keys(data), values, max_size=1 if bounded else 3)
    )
    if draw(st.integers(0, 15)) == 0:  # what YAML anchors can build: a value that holds itself
        data["reference"] = {"loop": _loop()}
    if bounded:
        overrides.update(_clamp(data, draw(st.floats(1.0, 15.0)), draw(st.integers(1, 20))))
    elif draw(st.integers(0, 40)) == 0:  # not a mapping at all
        return data, draw(st.sampled_from(([("duration", 5)], "duration=5", 5, ("mode",))))
    elif draw(st.integers(0, 4)) == 0:  # as the command line writes them: --set KEY=YAML
        keys = _override_keys(data).map(lambda k: k if isinstance(k, str) else safe_repr(k))
        texts = st.one_of(st.sampled_from(_YAML_SNIPPETS + _SET_VALUES), odd_text(6))
        pairs = draw(st.lists(st.tuples(keys, texts).map("=".join), max_size=3))
        return data, SetPairs(pairs if draw(st.integers(0, 9)) else [*pairs, "no-equals-sign"])
    return data, overrides


class SetPairs(list):  # type: ignore[type-arg]
    """Overrides written as ``--set`` arguments (``"workload.devices=100"``), for ``parse_overrides``."""


_SET_VALUES = ("5", "x", "", "[1, 2]", "{a: 1}", "null", "true", "1e400", "memory", "{kind: outage}")


_YAML_SNIPPETS = (
    "9" * 5000, "2001-13-14", "2001-02-30 25:61:61", "!!binary ?", "!!python/object:os.system", "\t",
    "{", "[", "&a x", "*nope", "? ", "- ", ": :", "\x00", "\ud800", "\udcff", "%TAG ! x", "---\n", "...\n",
    "'", '"', "[" * 3000, "{a: " * 3000, "\n  bad_indent: 1\n", "<<: *a", "=", "~", ".nan", "-.inf", "0x1F",
    "0o17", "1_000", "+1",
)


@st.composite
def scenario_texts(draw: st.DrawFn) -> str:
    """YAML text of a mutated scenario with snippets spliced in (numbers too long for int(), impossible
    dates, unknown tags, broken syntax, NUL and lone surrogates)."""
    data = draw(_mutated(st.one_of(pick(EXTREME), odd_text(6)), (0, 1, 2)))
    try:
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except Exception:  # not representable (objects, ints too long to print): keep the shipped text
        text = yaml.safe_dump(SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))], sort_keys=False)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(_YAML_SNIPPETS)) + text[at:]
    return text


def _clamp(data: dict[str, Any], duration: float, size: int) -> dict[str, Any]:
    """Overrides that keep a run small: short, few identities, low loadtest rate, no warm-up past the end."""
    out: dict[str, Any] = {"duration": duration, "warmup": 0, "drain": 1}
    workload = data.get("workload")
    kind = workload.get("kind") if isinstance(workload, dict) else None
    fleet = {
        "iot-fleet": {"workload.devices": size},
        "presence": {"workload.users": size, "workload.rooms": 3},
        "service-discovery": {"workload.services": 2, "workload.instances": max(1, size // 4)},
        "loadtest": {"workload.rate": min(size, 10)},
    }
    out.update(fleet.get(kind, {}) if isinstance(kind, str) else {})
    return out


__all__ = ["EXTREME", "SHIPPED", "SetPairs", "scenario_inputs", "scenario_texts", "sim_sections"]
