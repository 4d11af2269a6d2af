"""Parsers of scenario sections: slots, config, faults, targets, measure.agents and sim."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcastlab.config import Config
from mcastlab.errors import ConfigError, ScenarioError
from mcastlab.measure.targets import COMPARISONS, METRICS, TargetSpec
from mcastlab.workloads._schema import fail, join
from mcastlab.workloads.faults import ExpiryAvalanche, Outage, parse_fault

BACKENDS: dict[str, dict[str, tuple[str, ...]]] = {
    "registry": {
        "memory": (),
        "redis": ("url", "prefix"),
        "redis-cluster": ("nodes", "prefix", "shards"),  # no nodes: a local 3+3 cluster is started
        "sqlite": ("path", "table"),
        "postgres": ("dsn", "table"),
    },
    "messaging": {"memory": (), "nats": ("servers", "prefix", "cluster"), "redis-pubsub": ("url", "prefix"),
                  "kafka": ("bootstrap", "prefix", "partitions")},
    "durability": {"sqlite": ("path", "prefix", "retention"), "postgres": ("dsn", "prefix", "retention"),
                   "kafka": ("bootstrap", "topic", "retention")},
}
OPTIONAL_SLOTS = ("durability",)
OP_NAMES = ("register", "heartbeat", "unregister", "enumerate", "count", "multicast")


@dataclass(frozen=True, slots=True)
class Slot:
    """One slot's backend and its options (url, servers, prefix, path, dsn, options: {...})."""

    backend: str
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return self.backend


def _parse_slots(value: Any, *, key: str, source: str) -> dict[str, Slot]:
    if not isinstance(value, Mapping):
        fail(
            source,
            key,
            f"expected a mapping of slot -> backend, got {value!r:.60}",
            "write e.g. 'slots: {registry: redis, messaging: nats}'",
        )
    for k in value:
        if k not in BACKENDS:
            fail(source, join(key, k), "unknown slot", f"use {', '.join(BACKENDS)}")
    out = {}
    for slot, known in BACKENDS.items():
        sub = join(key, slot)
        if slot not in value and slot in OPTIONAL_SLOTS:
            continue
        if slot not in value:
            fail(
                source, sub, f"missing the {slot} backend", f"add '{slot}: <{' | '.join(known)}>' under {key}"
            )
        v = value[slot]
        opts: dict[str, Any] = {}
        if isinstance(v, Mapping):
            opts = dict(v)
            backend = opts.pop("backend", None)
            if backend is None:
                fail(
                    source,
                    join(sub, "backend"),
                    "missing the backend name",
                    f"add 'backend: <{' | '.join(known)}>'",
                )
        else:
            backend = v
        if not isinstance(backend, str) or backend not in known:  # a list or dict is not even hashable
            fail(source, sub, f"unknown {slot} backend {backend!r}", f"use one of {', '.join(known)}")
        allowed = (*known[backend], "options")
        for k in opts:
            if k not in allowed:
                fail(
                    source,
                    join(sub, k),
                    f"unknown option for the {backend} backend",
                    f"use {', '.join(allowed)} (extra constructor arguments go under 'options')",
                )
        if "options" in opts and not isinstance(opts["options"], Mapping):
            fail(source, join(sub, "options"), "expected a mapping", "write options as 'name: value' lines")
        out[slot] = Slot(str(backend), opts)
    return out


def _parse_config(value: Any, *, key: str, source: str) -> Config:
    try:
        return Config.from_dict(value or {}, source=source)
    except ConfigError as exc:
        sub = join(key, exc.key or "")
        raise ScenarioError(
            f"{source}: {sub}: {exc}. Fix: see mcastlab.Config for the keys and limits",
            key=sub,
            source=source,
        ) from None


def _parse_faults(value: Any, *, key: str, source: str) -> list[Outage | ExpiryAvalanche]:
    if value is None:
        return []
    if not isinstance(value, list):
        fail(source, key, f"expected a list, got {value!r:.60}", "write each fault as a '- kind: ...' item")
    return [parse_fault(v, key=join(key, i), source=source) for i, v in enumerate(value)]


def _parse_target(value: Any, *, key: str, source: str) -> TargetSpec:
    if not isinstance(value, Mapping):
        fail(
            source,
            key,
            f"expected a mapping, got {value!r:.60}",
            "write e.g. '- {metric: latency, op: enumerate, stat: p99, below: 0.02}'",
        )
    d = dict(value)
    allowed = ("metric", "op", "stat", "min_matched", "max_matched", "window", "name", "min_samples",
               *COMPARISONS)
    for k in d:
        if k not in allowed:
            fail(source, join(key, k), "unknown key", f"use {', '.join(allowed)}")
    metric = d.get("metric")
    if not isinstance(metric, str) or metric not in METRICS:
        fail(source, join(key, "metric"), f"unknown metric {metric!r}", f"use one of {', '.join(METRICS)}")
    op = d.get("op")
    if op is not None and op not in OP_NAMES:
        fail(source, join(key, "op"), f"unknown operation {op!r}", f"use one of {', '.join(OP_NAMES)}")
    given = [c for c in COMPARISONS if c in d]
    if len(given) != 1:
        fail(
            source,
            key,
            "needs exactly one threshold",
            f"give one of {', '.join(COMPARISONS)}, e.g. 'below: 0.02'",
        )
    threshold = d[given[0]]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        fail(
            source,
            join(key, given[0]),
            f"expected a number, got {threshold!r}",
            "give the threshold as a number",
        )
    stat = d.get("stat", "p99")
    if not isinstance(stat, str) or not (
        stat in ("count", "sum", "mean", "min", "max")
        or (stat.startswith("p") and _percentile(stat[1:]))
    ):
        fail(
            source,
            join(key, "stat"),
            f"unknown statistic {stat!r}",
            "use count, sum, mean, min, max or a percentile from p0 to p100 such as p50/p99/p99.9",
        )
    for k in ("min_matched", "max_matched", "min_samples"):
        v = d.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            fail(source, join(key, k), f"expected a whole number >= 0, got {v!r}", f"set {k} to a count")
    window = d.get("window", 300.0)
    if isinstance(window, bool) or not isinstance(window, int | float) or window <= 0:
        fail(
            source, join(key, "window"), f"expected seconds > 0, got {window!r}", "give the window in seconds"
        )
    return TargetSpec(
        metric,
        float(threshold),
        COMPARISONS[given[0]],
        stat,
        op,
        d.get("min_matched"),
        d.get("max_matched"),
        float(window),
        str(d.get("name", "")),
        "scenario",
        d.get("min_samples"),
    )


def _percentile(text: str) -> bool:
    """``text`` is a percentile numpy computes: ASCII digits ('²'.isdigit() is true too), at most 100."""
    digits = text.replace(".", "", 1)
    return digits.isascii() and digits.isdigit() and float(text) <= 100


def _parse_targets(value: Any, *, key: str, source: str) -> list[TargetSpec]:
    if value is None:
        return []
    if not isinstance(value, list):
        fail(
            source, key, f"expected a list, got {value!r:.60}", "write each target as a '- metric: ...' item"
        )
    return [_parse_target(v, key=join(key, i), source=source) for i, v in enumerate(value)]


def _parse_agents(value: Any, *, key: str, source: str) -> str | int:
    if value in ("all", "none") or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value  # type: ignore[no-any-return]
    fail(
        source,
        key,
        f"expected all, none or a number of identities, got {value!r}",
        "use 'all', 'none' or e.g. 100 (agents on the first 100 identities)",
    )
    return "none"  # unreachable: fail() raises


SERVER_KINDS = {  # servers: section -> what each kind takes, and which slot options it fills
    "redis": "a redis:// URL (registry: redis, messaging: redis-pubsub)",
    "redis-cluster": "a list of redis:// node URLs (registry: redis-cluster)",
    "nats": "a nats:// URL or a list of them (messaging: nats)",
    "postgres": "a postgresql:// DSN (registry / durability: postgres)",
    "kafka": "a host:port[,host:port] bootstrap (messaging / durability: kafka)",
}


def _parse_servers(value: Any, *, key: str, source: str) -> dict[str, Any]:
    """``servers: {redis: URL, nats: URL | [URL], ...}``: running servers for the slots that name none."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        fail(source, key, f"expected a mapping of server kind -> address, got {value!r:.60}",
             "write e.g. 'servers: {redis: redis://10.0.0.5:6379/0, nats: nats://10.0.0.6:4222}'")
    out: dict[str, Any] = {}
    for kind, addr in value.items():
        sub = join(key, str(kind))
        if kind not in SERVER_KINDS:
            fail(source, sub, "unknown server kind", f"use {', '.join(SERVER_KINDS)}")
        many = isinstance(addr, list | tuple)
        items = list(addr) if many else [addr]
        texts = bool(items) and all(isinstance(a, str) and a.strip() for a in items)
        shape = many == (kind == "redis-cluster") or (many and kind == "nats")
        if not (texts and shape):
            what = SERVER_KINDS[kind]
            fail(source, sub, f"expected {what}, got {addr!r:.60}", f"give {what}")
        out[str(kind)] = [a.strip() for a in items] if many else items[0].strip()
    return out


def _parse_sim(value: Any, *, key: str, source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        fail(source, key, f"expected a mapping, got {value!r:.60}", "see mcastlab.sim.spec for the schema")
    try:
        from mcastlab.sim import SimSpec
    except ImportError:  # mcastlab.sim not built yet: validated when it is
        return dict(value)
    try:
        SimSpec.from_dict(value, source=source)
    except ConfigError as exc:
        sub = join(key, exc.key or "")
        raise ScenarioError(
            f"{source}: {sub}: {exc}. Fix: see mcastlab.sim.spec for the schema", key=sub, source=source
        ) from None
    return dict(value)


__all__ = ["BACKENDS", "OP_NAMES", "SERVER_KINDS", "Slot"]
