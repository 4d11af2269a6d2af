"""SimSpec: everything a simulated run's backends do, declared as data (a dict or a YAML ``sim:`` section).

Schema (every key optional; unknown keys raise ConfigError naming the key and the fix)::

    calibration: data/calibration/default.json   # models measured on a machine; keys below override it
    registry:
      servers: 1              # a Redis is one thread: operations queue FCFS behind each other
      shards: 1               # independent servers (a Redis Cluster's masters): an identity's operations
                              # go to its shard; queries, counts and claims ask every shard at once
      wake: null              # extra latency of a call reaching a server idle for a gap (a GapTable from
                              # mcastlab calibrate: the server process and its CPU waking up)
      connect_timeout: 0.001  # seconds before an operation fails during an outage
      timeout: 1.0            # client timeout: a dropped request fails after this
      service:                # queued at the server, per operation kind (seconds, or a model)
        default: 5.0e-6
        query: {kind: constant, value: 1.0e-5, per_item: 5.0e-7}
        batch: {kind: constant, value: 1.0e-5, per_item: 8.0e-7}
      network:                # not queued: client work + round trip
        default: {kind: lognormal, median: 6.0e-5, sigma: 0.25}
        query: {kind: empirical, samples: [1.1e-4, 1.2e-4, 1.6e-4], per_item: 8.0e-6}
    messaging:
      servers: 1
      connect_timeout: 0.001
      per_message: 2.0e-6     # queued cost per published message (the fan-out pipeline)
      per_request: null       # queued cost per ack-mode request (default: per_message)
      flush: {kind: lognormal, median: 1.0e-4, sigma: 0.2}     # one round trip per publish fan-out
      delivery: {kind: lognormal, median: 6.6e-4, sigma: 0.2}  # server -> subscriber inbox
      ack: {kind: lognormal, median: 6.0e-5, sigma: 0.2}       # inbox acknowledgement back to the sender
      inline: false           # true: publish-only fast path (the coordinator fans out with one worker)
    cpu:                      # the coordinator process's CPU (mcastlab.sim.cpu has every key; off: none)
      cores: 1
      call: {default: 6.0e-5, query: 1.2e-4}
      per_item: {query: 3.0e-6}
    faults:                   # keys: target, kind, start, duration|end, probability, factor, ops, delay
      - {target: messaging, kind: outage, start: 600, duration: 30}
      - {target: registry, kind: slow, start: 100, duration: 10, factor: 5}
      - {target: registry, kind: errors, probability: 0.001, ops: [register]}
      - {target: messaging, kind: drop, probability: 0.01}

Faults act on operations *arriving* in ``[start, start + duration)``: ``outage`` fails them after
``connect_timeout`` (or ``delay``) and loses deliveries due inside it; ``errors`` serves then fails them;
``drop`` loses the request (registry: OperationTimeoutError after ``timeout``; publish: accepted but
never delivered; ack: TIMEOUT after the send timeout); ``slow`` multiplies their service and network
times by ``factor``.

Registry operation kinds (keys of ``service``/``network`` and fault ``ops``): register, heartbeat,
unregister, get, query, count, claim, next_deadline, batch (bulk upserts/touches) and ``default``.
Layers merge key by key (built-in defaults < calibration file < this spec); a model replaces a model
wholesale, and a ``service``/``network`` table that sets ``default`` replaces the whole table below it.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcastlab.errors import ConfigError, preview
from mcastlab.sim._calfile import DEFAULT_CALIBRATION, load_calibration_sim, resolve_calibration
from mcastlab.sim.cpu import CpuSpec
from mcastlab.sim.faults import REGISTRY_OPS, FaultSpec, parse_fault
from mcastlab.sim.models import GapTable, Model, parse_model

# Constants close to what was measured on the project's machines (Redis via redis.asyncio ~60-70 us per
# op, NATS end-to-end p50 0.66 ms, request/reply p50 121 us); a calibration file replaces them with this
# machine's measurements.
REGISTRY_DEFAULTS: dict[str, Any] = {
    "servers": 1,
    "shards": 1,
    "wake": None,
    "connect_timeout": 0.001,
    "timeout": 1.0,
    "service": {
        "default": {"kind": "constant", "value": 5.0e-6},
        "query": {"kind": "constant", "value": 1.0e-5, "per_item": 5.0e-7},
        "count": {"kind": "constant", "value": 1.0e-5, "per_item": 1.0e-7},
        "claim": {"kind": "constant", "value": 1.0e-5, "per_item": 1.0e-6},
        "batch": {"kind": "constant", "value": 1.0e-5, "per_item": 8.0e-7},
    },
    "network": {
        "default": {"kind": "lognormal", "median": 6.0e-5, "sigma": 0.25},
        "query": {"kind": "lognormal", "median": 1.0e-4, "sigma": 0.25, "per_item": 8.0e-6},
        "batch": {"kind": "lognormal", "median": 1.0e-4, "sigma": 0.25, "per_item": 1.5e-5},
    },
}
MESSAGING_DEFAULTS: dict[str, Any] = {
    "servers": 1,
    "connect_timeout": 0.001,
    "per_message": {"kind": "constant", "value": 2.0e-6},
    "per_request": None,
    "flush": {"kind": "lognormal", "median": 1.0e-4, "sigma": 0.2},
    "delivery": {"kind": "lognormal", "median": 6.6e-4, "sigma": 0.2},
    "ack": {"kind": "lognormal", "median": 6.0e-5, "sigma": 0.2},
    "inline": False,
}
MAX_SERVERS = 4096  # the queue keeps a slot per server: 10**9 of them would not fit in memory
_TOP = ("calibration", "registry", "messaging", "cpu", "faults", "kafka")
_REG_KEYS = tuple(REGISTRY_DEFAULTS)
_MSG_KEYS = tuple(MESSAGING_DEFAULTS)
_OP_KEYS = ("default", *REGISTRY_OPS)


def _unknown(d: Mapping[str, Any], known: tuple[str, ...], path: str, source: str | None) -> None:
    for k in d:
        if k not in known:
            close = difflib.get_close_matches(str(k), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = f" in {source}" if source else ""
            raise ConfigError(
                f"unknown key {path}.{k}{where}{hint}; known keys: {', '.join(known)}",
                key=f"{path}.{k}",
                source=source,
            )


def _mapping(v: Any, path: str, source: str | None) -> Mapping[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ConfigError(f"{path} must be a mapping, got {type(v).__name__}", key=path, source=source)
    return v


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` onto ``base``; a model (a mapping with ``kind``) replaces wholesale."""
    out = dict(base)
    for k, v in over.items():
        b = out.get(k)
        if isinstance(v, Mapping) and isinstance(b, Mapping) and "kind" not in v:
            out[k] = merge(b, v)
        else:
            out[k] = v
    return out


def _merge_registry(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Like :func:`merge`, but a ``service``/``network`` table setting ``default`` replaces the old one."""
    out = merge(base, over)
    for section in ("service", "network"):
        table = over.get(section)
        if isinstance(table, Mapping) and "default" in table:
            out[section] = dict(table)
    return out


def _positive(
    d: Mapping[str, Any], key: str, path: str, *, allow_none: bool = False, zero: bool = True
) -> Any:
    v = d[key]
    if v is None and allow_none:
        return None
    if (
        isinstance(v, bool)
        or not isinstance(v, int | float)
        or not abs(v) <= sys.float_info.max  # not NaN or infinite, and no int beyond the float range
        or v < 0
        or (not zero and v == 0)
    ):
        raise ConfigError(
            f"{path}.{key} must be a finite number {'>= 0' if zero else '> 0'}, got {preview(v)}",
            key=f"{path}.{key}",
        )
    return v


@dataclass(frozen=True)
class RegistrySpec:
    """Single-server (or k-server) FCFS queue with per-operation service and network models."""

    servers: int
    connect_timeout: float
    timeout: float | None
    service: Mapping[str, Model]
    network: Mapping[str, Model]
    shards: int = 1
    wake: GapTable | None = None

    def model(self, section: str, op: str) -> Model:
        table = self.service if section == "service" else self.network
        return table.get(op) or table["default"]


@dataclass(frozen=True)
class MessagingSpec:
    """Per-message cost (queued), flush round trip, per-subscriber delivery and ack delays."""

    servers: int
    connect_timeout: float
    per_message: Model
    per_request: Model | None
    flush: Model
    delivery: Model
    ack: Model
    inline: bool = False


def _servers(d: Mapping[str, Any], path: str) -> int:
    v = d["servers"]
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SERVERS:  # one queue slot each
        raise ConfigError(f"{path}.servers must be an int from 1 to {MAX_SERVERS}, got {preview(v)}",
                          key=f"{path}.servers")
    return v


def _registry(d: Mapping[str, Any], source: str | None) -> RegistrySpec:
    _unknown(d, _REG_KEYS, "registry", source)
    tables = {}
    for section in ("service", "network"):
        raw = _mapping(d.get(section), f"registry.{section}", source)
        _unknown(raw, _OP_KEYS, f"registry.{section}", source)
        tables[section] = {op: parse_model(m, f"registry.{section}.{op}") for op, m in raw.items()}
        if "default" not in tables[section]:
            raise ConfigError(
                f"registry.{section}.default is required (the model for unlisted operations)",
                key=f"registry.{section}.default",
                source=source,
            )
    shards = d.get("shards", 1)
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 4096:
        raise ConfigError(f"registry.shards must be an int from 1 to 4096, got {shards!r}",
                          key="registry.shards", source=source)
    return RegistrySpec(
        _servers(d, "registry"),
        float(_positive(d, "connect_timeout", "registry")),
        _positive(d, "timeout", "registry", allow_none=True, zero=False),
        tables["service"],
        tables["network"],
        shards,
        GapTable.from_dict(d.get("wake"), "registry.wake"),
    )


def _messaging(d: Mapping[str, Any], source: str | None) -> MessagingSpec:
    _unknown(d, _MSG_KEYS, "messaging", source)
    models = {k: parse_model(d[k], f"messaging.{k}") for k in ("per_message", "flush", "delivery", "ack")}
    per_request = (
        None if d.get("per_request") is None else parse_model(d["per_request"], "messaging.per_request")
    )
    if not isinstance(d["inline"], bool):
        raise ConfigError(
            f"messaging.inline must be true or false, got {d['inline']!r}", key="messaging.inline"
        )
    return MessagingSpec(
        _servers(d, "messaging"),
        float(_positive(d, "connect_timeout", "messaging")),
        models["per_message"],
        per_request,
        models["flush"],
        models["delivery"],
        models["ack"],
        d["inline"],
    )


def _check_shape(node: Any, path: str, source: str | None, above: list[int]) -> None:
    """Refuse values no check below could quote in its message: ints of more than 640 digits (repr fails
    past Python's digit limit) and nesting deeper than a spec has (10 levels) or containing itself (repr
    recurses)."""
    if isinstance(node, int) and abs(node) >= 10**640:
        raise ConfigError(f"{path or 'sim'} is {preview(node)}; use a number of seconds", key=path,
                          source=source)
    if not isinstance(node, Mapping | list | tuple):
        return
    if len(above) >= 10 or id(node) in above:
        raise ConfigError(f"{path or 'sim'} nests deeper than a sim spec does (or contains itself); "
                          "flatten it", key=path, source=source)
    above.append(id(node))
    for k, v in node.items() if isinstance(node, Mapping) else enumerate(node):
        sub = f"{path}.{k if isinstance(k, str) else preview(k)}".lstrip(".")
        _check_shape(k, sub, source, above)
        _check_shape(v, sub, source, above)
    above.pop()


@dataclass(frozen=True)
class SimSpec:
    """Simulated backends as data; build with :meth:`from_dict` (see the module docstring)."""

    registry: RegistrySpec
    messaging: MessagingSpec
    faults: tuple[FaultSpec, ...] = ()
    cpu: CpuSpec = field(default_factory=CpuSpec)
    calibration: str | None = None
    source: str | None = field(default=None, compare=False)
    kafka: Any = None  # a mcastlab.sim.kafka.KafkaSpec: Kafka-like messaging instead of the NATS-like one

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, *, source: str | None = None) -> SimSpec:
        """Validate and build; unknown keys raise ConfigError naming the key (and a close match)."""
        d = {} if d is None else d
        if not isinstance(d, Mapping):
            raise ConfigError(f"sim spec must be a mapping, got {type(d).__name__}", key="sim", source=source)
        _check_shape(d, "", source, [])
        _unknown(d, _TOP, "sim", source)
        reg: dict[str, Any] = dict(REGISTRY_DEFAULTS)
        msg: dict[str, Any] = dict(MESSAGING_DEFAULTS)
        cpu: dict[str, Any] = {}
        cal = d.get("calibration")
        cal_kafka = None
        if cal is not None:
            if not isinstance(cal, str | Path):
                raise ConfigError(
                    "sim.calibration must be a file path or 'default'", key="sim.calibration", source=source
                )
            cal_sim = load_calibration_sim(cal, source)
            cal_kafka = cal_sim.get("kafka")
            reg = _merge_registry(reg, _mapping(cal_sim.get("registry"), "calibration.registry", source))
            msg = merge(msg, _mapping(cal_sim.get("messaging"), "calibration.messaging", source))
            # a calibration file from before the CPU model has no cpu section: the defaults apply
            cpu = merge(cpu, _mapping(cal_sim.get("cpu"), "calibration.cpu", source))
        reg = _merge_registry(reg, _mapping(d.get("registry"), "sim.registry", source))
        msg = merge(msg, _mapping(d.get("messaging"), "sim.messaging", source))
        cpu_off = d.get("cpu") == "off"
        cpu = merge(cpu, {} if cpu_off else _mapping(d.get("cpu"), "sim.cpu", source))
        kafka = None
        if "kafka" in d:  # ``kafka: {}`` (or null) selects the Kafka-like model with its defaults
            from mcastlab.sim.kafka import KafkaSpec

            layered = merge(_mapping(cal_kafka, "calibration.kafka", source),
                            _mapping(d.get("kafka"), "sim.kafka", source))
            kafka = KafkaSpec.from_dict(layered)
        raw_faults = d.get("faults") or []
        if not isinstance(raw_faults, list | tuple):
            raise ConfigError("sim.faults must be a list of fault mappings", key="sim.faults", source=source)
        try:
            faults = tuple(parse_fault(f, f"faults[{i}]") for i, f in enumerate(raw_faults))
            return cls(
                _registry(reg, source),
                _messaging(msg, source),
                faults,
                CpuSpec.off() if cpu_off else CpuSpec.from_dict(cpu, "sim.cpu"),
                None if cal is None else str(cal),
                source,
                kafka,
            )
        except ConfigError as exc:
            if source and exc.source is None:
                raise ConfigError(f"{exc} (in {source})", key=exc.key, source=source) from None
            raise

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as data (calibration applied), loadable again by :meth:`from_dict`."""
        r, m = self.registry, self.messaging
        return {
            "registry": {
                "servers": r.servers,
                "shards": r.shards,
                "wake": None if r.wake is None else r.wake.to_dict(),
                "connect_timeout": r.connect_timeout,
                "timeout": r.timeout,
                "service": {k: v.to_dict() for k, v in r.service.items()},
                "network": {k: v.to_dict() for k, v in r.network.items()},
            },
            "messaging": {
                "servers": m.servers,
                "connect_timeout": m.connect_timeout,
                "per_message": m.per_message.to_dict(),
                "per_request": None if m.per_request is None else m.per_request.to_dict(),
                "flush": m.flush.to_dict(),
                "delivery": m.delivery.to_dict(),
                "ack": m.ack.to_dict(),
                "inline": m.inline,
            },
            "cpu": self.cpu.to_dict(),
            "faults": [f.to_dict() for f in self.faults],
            **({"kafka": self.kafka.to_dict()} if self.kafka is not None else {}),
        }


__all__ = [
    "DEFAULT_CALIBRATION",
    "MESSAGING_DEFAULTS",
    "REGISTRY_DEFAULTS",
    "MessagingSpec",
    "RegistrySpec",
    "SimSpec",
    "load_calibration_sim",
    "merge",
    "resolve_calibration",
]
