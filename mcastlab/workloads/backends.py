"""Backends for a run: simulated ones in sim mode, real servers (started here if no URL) in live mode."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mcastlab.errors import ConfigError, ScenarioError, UnsupportedError
from mcastlab.workloads.scenario import Scenario, Slot


@dataclass
class Backends:
    """The slots of a run (durability optional), what they are, and the local servers started for it."""

    registry: Any
    messaging: Any
    label: str
    durability: Any = None
    versions: dict[str, str] = field(default_factory=dict)
    servers: dict[str, Any] = field(default_factory=dict)
    clusters: dict[str, Any] = field(default_factory=dict)  # "redis-cluster" / "nats-cluster" started here

    def busy_s(self) -> dict[str, tuple[float, int]]:
        """Simulated resources' total service time so far (seconds) and how many servers share it (cores
        x processes, shards x servers), by resource name; ``host-cores``: the CPU seconds of every process
        on the simulated host and its cores."""
        from mcastlab.sim import SimMessaging, SimRegistry

        out: dict[str, tuple[float, int]] = {}
        reg, msg = self.registry, self.messaging
        if isinstance(reg, SimRegistry) and reg.cpu is not None:
            out["coordinator-cpu"] = (reg.cpu.server.busy, reg.cpu.server.servers)
        if isinstance(reg, SimRegistry):
            out["registry-server"] = (reg.server_busy, len(reg.shards) * reg.server.servers)
        if isinstance(msg, SimMessaging):
            out["messaging-server"] = (msg.server.busy, msg.server.servers)
        host = reg.cpu.host if isinstance(reg, SimRegistry) and reg.cpu is not None else None
        if host is not None:  # the machine's cores, shared by all three (mcastlab.sim.host)
            out["host-cores"] = (host.cpu_s(), host.cores)
        return out


def sim_backends(scn: Scenario, rng: np.random.Generator) -> Backends:
    """Simulated backends from the scenario's ``sim:`` section (plus backend-outage faults)."""
    label = f"sim:{scn.slots['registry'].backend}+{scn.slots['messaging'].backend}"
    from mcastlab import sim as mod

    spec = dict(scn.sim)
    if scn.slots["messaging"].backend == "kafka":
        spec.setdefault("kafka", {})  # the Kafka-like messaging model (mcastlab.sim.kafka)
    extra = [f for f in (x.sim_fault() for x in scn.faults) if f is not None]
    if extra:
        spec["faults"] = [*spec.get("faults", []), *extra]
    reg, msg = mod.make_sim_backends(mod.SimSpec.from_dict(spec, source=scn.source), rng=rng)
    return Backends(reg, msg, label, durability=_sim_durability(scn))


def _sim_durability(scn: Scenario) -> Any:
    """SQLite durability runs in virtual time (no I/O waits); PostgreSQL needs a live event loop."""
    slot = scn.slots.get("durability")
    if slot is None:
        return None
    if slot.backend != "sqlite":
        raise ScenarioError(
            f"{scn.source}: slots.durability: the {slot.backend} durability backend needs live mode. "
            "Fix: use 'durability: sqlite' in sim mode, or run with --mode live",
            key="slots.durability",
            source=scn.source,
        )
    return _make("durability", slot, "sim", {}, scn.source)


def _server_version(kind: str, servers: dict[str, Any]) -> str:
    s = servers.get(kind)
    if s is None:
        return "external"
    return f"tansu {s.version}" if kind == "kafka" else str(s.version)  # Kafka protocol, not Apache Kafka


def _make(slot_name: str, slot: Slot, token: str, urls: dict[str, Any], source: str) -> Any:
    from mcastlab import backends as b

    key_prefix, subject_prefix = f"mcl:{token}:", f"mcl.{token}"
    o = dict(slot.options)
    extra = dict(o.pop("options", {}) or {})
    try:
        if slot.backend == "memory":
            return b.MemoryRegistry() if slot_name == "registry" else b.MemoryMessaging()
        if slot.backend == "redis":
            return b.RedisRegistry(o.get("url") or urls["redis"], prefix=o.get("prefix", key_prefix), **extra)
        if slot.backend == "redis-cluster":
            nodes = o.get("nodes") or urls["redis-cluster"]
            return b.RedisClusterRegistry(nodes, prefix=o.get("prefix", key_prefix), **{
                k: o[k] for k in ("shards",) if k in o}, **extra)
        if slot.backend == "nats":
            servers = o.get("servers") or urls["nats-cluster" if "cluster" in o else "nats"]
            return b.NatsMessaging(servers, prefix=o.get("prefix", subject_prefix), **extra)
        if slot.backend == "redis-pubsub":
            return b.RedisPubSubMessaging(
                o.get("url") or urls["redis"], prefix=o.get("prefix", key_prefix), **extra
            )
        if slot.backend == "kafka":
            bootstrap = o.get("bootstrap") or urls["kafka"]
            if slot_name == "messaging":
                kw_m = {k: o[k] for k in ("partitions",) if k in o}
                return b.KafkaMessaging(bootstrap, prefix=o.get("prefix", subject_prefix), **kw_m, **extra)
            kw_d = {k: o[k] for k in ("retention",) if k in o}
            return b.KafkaDurability(bootstrap, topic=o.get("topic", f"{subject_prefix}.journal"), **kw_d,
                                     **extra)
        if slot_name == "durability":
            kw = {"prefix": o.get("prefix", f"mcl_{token}"), **{k: o[k] for k in ("retention",) if k in o}}
            if slot.backend == "sqlite":
                return b.SqliteDurability(o.get("path", ":memory:"), **kw, **extra)
            return b.PostgresDurability(o.get("dsn") or urls["postgres"], **kw, **extra)
        if slot.backend == "sqlite":
            return b.SqliteRegistry(
                o.get("path", ":memory:"), **({"table": o["table"]} if "table" in o else {}), **extra
            )
        if slot.backend == "postgres":
            return b.PostgresRegistry(
                o.get("dsn") or urls["postgres"], table=o.get("table", f"mcl_{token}"), **extra
            )
    except ConfigError as exc:
        sub = f"slots.{slot_name}.{exc.key}" if exc.key else f"slots.{slot_name}"
        raise ScenarioError(
            f"{source}: {sub}: {exc}. Fix: correct that option", key=sub, source=source
        ) from exc
    except UnsupportedError as exc:
        raise ScenarioError(
            f"{source}: slots.{slot_name}: {exc}. Fix: install the live extras "
            "(pip install -e '.[live]') or wait for that backend to land",
            key=f"slots.{slot_name}",
            source=source,
        ) from exc
    except TypeError as exc:
        raise ScenarioError(
            f"{source}: slots.{slot_name}.options: {exc}. Fix: remove or rename the option",
            key=f"slots.{slot_name}.options",
            source=source,
        ) from exc
    raise ScenarioError(
        f"{source}: slots.{slot_name}: unknown backend {slot.backend!r}",
        key=f"slots.{slot_name}",
        source=source,
    )


def make_slot(slot_name: str, scn: Scenario, token: str, urls: dict[str, Any]) -> Any:
    """The live backend of slot ``slot_name`` on the servers at ``urls``, its keys and subjects prefixed by
    ``token`` (replicas of one run pass the same token, so they share one registry and one set of inboxes)."""
    return _make(slot_name, scn.slots[slot_name], token, urls, scn.source)


def _kafka_env() -> str | None:
    """``$KAFKA_BOOTSTRAP``: an external Kafka cluster for slots that name no ``bootstrap``."""
    from mcastlab.servers._kafka import bootstrap_from_env

    return bootstrap_from_env()


def _needed_servers(scn: Scenario) -> list[str]:
    need = []
    reg, msg = scn.slots["registry"], scn.slots["messaging"]
    if (reg.backend == "redis" and not reg.options.get("url")) or (
        msg.backend == "redis-pubsub" and not msg.options.get("url")
    ):
        need.append("redis")
    if reg.backend == "redis-cluster" and not reg.options.get("nodes"):
        need.append("redis-cluster")
    if msg.backend == "nats" and not msg.options.get("servers"):
        need.append("nats-cluster" if "cluster" in msg.options else "nats")
    dur = scn.slots.get("durability")
    kafka = [s for s in (msg, dur) if s is not None and s.backend == "kafka"]
    if any(not s.options.get("bootstrap") for s in kafka) and not _kafka_env():
        need.append("kafka")
    if (reg.backend == "postgres" and not reg.options.get("dsn")) or (
        dur is not None and dur.backend == "postgres" and not dur.options.get("dsn")
    ):
        need.append("postgres")
    return [k for k in need if _SERVER_OF.get(k, k) not in scn.servers]  # the scenario names it: use it


_SERVER_OF = {"nats-cluster": "nats"}  # what a needed server is called in the scenario's servers: section


def _scenario_urls(scn: Scenario) -> dict[str, Any]:
    """The ``servers:`` section as slot URLs (``servers.nats`` also serves ``messaging.cluster``)."""
    urls = dict(scn.servers)
    if "nats" in urls:
        urls["nats-cluster"] = urls["nats"]
    return urls


@dataclass
class LiveServers:
    """The servers a live run uses: those started here (stopped on exit), their URLs, their versions."""

    started: dict[str, Any]
    clusters: dict[str, Any]
    urls: dict[str, Any]
    versions: dict[str, str]


@contextlib.contextmanager
def live_servers(scn: Scenario, *, start: bool = True) -> Iterator[LiveServers]:
    """Start (and afterwards stop) a local server for each slot that names none; ``start=False`` refuses
    such a slot instead (replicas on a remote cluster: the scenario must say where the servers are)."""
    need = _needed_servers(scn)
    if need and not start:
        raise ScenarioError(
            f"{scn.source}: slots: {', '.join(need)} would be started on this machine, which the replicas "
            "of a remote Dask cluster cannot reach. Fix: give every slot its server's address (registry "
            "url / nodes / dsn, messaging servers / url, durability dsn / bootstrap) or list them in the "
            "scenario's servers: section (e.g. 'servers: {redis: redis://HOST:6379/0, nats: nats://HOST:4222}')",
            key="slots", source=scn.source)
    with contextlib.ExitStack() as stack:
        started: dict[str, Any] = {}
        clusters = _start_clusters(scn, need, stack)
        if set(need) - set(clusters):
            from mcastlab import servers as srv

            started = stack.enter_context(srv.servers(*(k for k in need if k not in clusters)))
        urls: dict[str, Any] = _scenario_urls(scn)
        urls.update({k: s.url for k, s in started.items()})
        urls.update({k: c.urls for k, c in clusters.items()})
        if "kafka" not in urls and (external := _kafka_env()):
            urls["kafka"] = external
        versions = {
            f"{k}-server": _server_version(k, started)
            for k in ("redis", "nats", "postgres", "kafka")
            if k in need or any(s.backend.startswith(k) for s in scn.slots.values())
        }
        versions.update({f"{c.kind}-server": c.nodes[0].version for c in clusters.values()})
        yield LiveServers(started, clusters, urls, versions)


def new_token() -> str:
    """A fresh key / subject / table prefix token: isolates a run's state on shared servers."""
    return uuid.uuid4().hex[:10]


@contextlib.contextmanager
def live_backends(scn: Scenario, run_id: str) -> Iterator[Backends]:
    """Live backends; local servers are started for slots without a URL and stopped afterwards."""
    token = new_token()
    with live_servers(scn) as srv:
        registry = make_slot("registry", scn, token, srv.urls)
        messaging = make_slot("messaging", scn, token, srv.urls)
        durability = make_slot("durability", scn, token, srv.urls) if "durability" in scn.slots else None
        yield Backends(registry, messaging, label_of(scn), durability, srv.versions, srv.started,
                       srv.clusters)


def label_of(scn: Scenario) -> str:
    """``<registry backend>+<messaging backend>``: what a run's frames say it ran on."""
    return f"{scn.slots['registry'].backend}+{scn.slots['messaging'].backend}"


def _start_clusters(scn: Scenario, need: list[str], stack: contextlib.ExitStack) -> dict[str, Any]:
    """The local clusters the scenario asks for: Redis 3 masters + 3 replicas; NATS ``cluster`` nodes."""
    from mcastlab import servers as srv

    out: dict[str, Any] = {}
    if "redis-cluster" in need:
        out["redis-cluster"] = stack.enter_context(srv.redis_cluster(3, 1))
    if "nats-cluster" in need:
        n = scn.slots["messaging"].options["cluster"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ScenarioError(
                f"{scn.source}: slots.messaging.cluster: expected a node count >= 1, got {n!r}. "
                "Fix: write e.g. 'cluster: 3' (or list 'servers' of a running cluster instead)",
                key="slots.messaging.cluster", source=scn.source)
        out["nats-cluster"] = stack.enter_context(srv.nats_cluster(n))
    return out


__all__ = ["Backends", "LiveServers", "label_of", "live_backends", "live_servers", "make_slot", "new_token",
           "sim_backends"]
