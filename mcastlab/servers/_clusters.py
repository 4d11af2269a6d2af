"""Local clusters for fault tests and live runs: a Redis 7 Cluster and a NATS cluster on loopback.

Each node is an ordinary :class:`~mcastlab.servers._process.Server` (started, killed, restarted and stopped
by PID, its data in a throwaway directory); a cluster only adds the wiring between them and a readiness
check that means "clients can use it now":

* :func:`redis_cluster` starts ``masters * (1 + replicas)`` redis-servers with ``cluster-enabled``, splits
  the 16384 hash slots evenly over the masters (``CLUSTER ADDSLOTSRANGE``), introduces the nodes
  (``CLUSTER MEET``), attaches the replicas (``CLUSTER REPLICATE``) and waits until every node reports
  ``cluster_state:ok`` and every replica is in sync — what ``redis-cli --cluster create`` does, without
  needing redis-cli. A node's cluster bus listens on its port + 10000, so ports are chosen below 55536.
  ``cluster-node-timeout`` (default 2000 ms) sets how fast a dead master is failed over.
* :func:`nats_cluster` starts ``nodes`` nats-servers, each with a cluster listener, routes to all the
  others, one ``-cluster_name`` and a monitoring port, and waits until every node has a route to every
  other (``/routez``).

Both are context managers yielding a handle with ``nodes`` (the Servers), ``urls``, ``kill(i)``,
``restart(i)`` and ``stop()``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mcastlab.errors import ServerError, UsageError
from mcastlab.servers._kinds import HOST
from mcastlab.servers._process import READY_TIMEOUT, Server, _PortBusyError, free_port, start

SLOTS = 16384
_BUS_OFFSET = 10000  # Redis Cluster's bus port is the client port + 10000


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _wait(what: str, ok: Any, timeout: float, kind: str) -> None:
    """Poll ``ok()`` until it returns True (errors count as not yet), or raise a ServerError."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            if ok():
                return
        except Exception as exc:  # a node still starting, a refused connection: keep polling
            last = exc
        if time.monotonic() > deadline:
            why = f" (last error: {last!r})" if last else ""
            raise ServerError(f"{what} not reached within {timeout:g} s{why}", backend=kind)
        time.sleep(0.02)


@dataclass
class _Cluster:
    """What both clusters share: the node servers, stopping them, killing and restarting one."""

    nodes: list[Server]
    kind: str = field(default="", init=False)

    @property
    def urls(self) -> list[str]:
        """Client URLs of every node (seeds for a client; any one is enough to find the others)."""
        return [self._url(s) for s in self.nodes]

    def _url(self, s: Server) -> str:
        return s.url

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (a crash); its port and data stay for :meth:`restart`."""
        self.nodes[i].kill()

    def restart(self, i: int, timeout: float = READY_TIMEOUT) -> None:
        """Start node ``i`` again on the same ports with the same data (it rejoins the cluster)."""
        self.nodes[i].restart(timeout)

    def alive(self) -> list[int]:
        """Indexes of the nodes whose process runs."""
        return [i for i, s in enumerate(self.nodes) if s.alive()]

    def stop(self) -> None:
        """Stop every node by PID and remove its data (idempotent; tries them all even if one fails)."""
        errors = []
        for s in self.nodes:
            try:
                s.stop()
            except ServerError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def detach(self) -> None:
        """Let the nodes outlive this process (``servers up``)."""
        for s in self.nodes:
            s.detach()

    def __enter__(self) -> _Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------- Redis Cluster


@dataclass
class RedisClusterNodes(_Cluster):
    """A running Redis Cluster: ``nodes[:masters]`` started as masters, the rest as their replicas
    (``nodes[masters + k * masters + i]`` replicates master ``i``); roles change on failover."""

    masters: int = 3
    replicas: int = 1
    node_timeout_ms: int = 2000

    def __post_init__(self) -> None:
        self.kind = "redis"

    def _url(self, s: Server) -> str:
        return f"redis://{s.host}:{s.port}"  # a cluster has database 0 only: no /db in the URL

    def client(self, i: int) -> Any:
        """A synchronous redis-py client on node ``i`` (caller closes it)."""
        import redis

        s = self.nodes[i]
        return redis.Redis(host=s.host, port=s.port, decode_responses=True, socket_timeout=2.0,
                           socket_connect_timeout=1.0)

    def command(self, i: int, *args: Any) -> Any:
        """Run one command on node ``i`` and return its reply."""
        with contextlib.closing(self.client(i)) as c:
            return c.execute_command(*args)

    def shards(self) -> list[dict[str, Any]]:
        """``CLUSTER SHARDS`` as seen by the first live node: slot ranges and nodes with their roles."""
        for i in self.alive():
            with contextlib.suppress(Exception):
                return list(self.command(i, "CLUSTER", "SHARDS"))
        raise ServerError("no Redis Cluster node answers", backend="redis")

    def master_for_slot(self, slot: int) -> int:
        """Index in ``nodes`` of the node currently serving ``slot`` as a master."""
        by_port = {s.port: i for i, s in enumerate(self.nodes)}
        for shard in self.shards():
            ranges = shard["slots"]
            if any(ranges[k] <= slot <= ranges[k + 1] for k in range(0, len(ranges), 2)):
                for node in shard["nodes"]:
                    if node["role"] == "master" and node["health"] == "online":
                        return by_port[int(node["port"])]
        raise ServerError(f"no online master serves slot {slot}", backend="redis")

    def master_for_key(self, key: str) -> int:
        """Index in ``nodes`` of the master currently owning ``key``'s slot."""
        from redis.crc import key_slot

        return self.master_for_slot(key_slot(key.encode()))

    def healthy(self, *, replicated: bool = True) -> bool:
        """Every live node says ``cluster_state:ok`` and (``replicated``, when replicas were asked for)
        every master serving slots has an in-sync replica."""
        live = self.alive()
        for i in live:
            if "cluster_state:ok" not in self.command(i, "CLUSTER", "INFO"):
                return False
        live_ports = {self.nodes[i].port for i in live}
        for i in live:  # every node agrees that every slot range has a live master (failover done)
            for shard in self.command(i, "CLUSTER", "SHARDS"):
                if shard["slots"] and not any(n["role"] == "master" and int(n["port"]) in live_ports
                                              for n in shard["nodes"]):
                    return False
        if self.replicas and replicated:
            for i in live:
                role = self.command(i, "ROLE")
                if role[0] == "slave" and role[3] != "connected":
                    return False
                ranges = self._slot_ranges(i) if role[0] == "master" else []
                if ranges and not self._replicates(i, ranges):
                    return False
        return True

    def _slot_ranges(self, i: int) -> list[int]:
        port = self.nodes[i].port
        return [x for sh in self.shards() for n in sh["nodes"]
                if int(n["port"]) == port and n["role"] == "master" for x in sh["slots"]]

    def _replicates(self, i: int, ranges: list[int]) -> bool:
        """A write on master ``i`` reaches a replica (``WAIT``). A replica after a full sync counts as
        connected before its master streams to it (the master waits for its first ack, up to a second):
        a write in that window exists on the master alone."""
        from redis.crc import key_slot

        keys = (f"{{mcl-probe-{n}}}" for n in range(1 << 20))
        key = next(k for k in keys if _in_ranges(key_slot(k.encode()), ranges))
        with contextlib.closing(self.client(i)) as c:
            pipe = c.pipeline(transaction=False)
            pipe.set(key, "1").execute_command("WAIT", 1, 100).delete(key)
            return int(pipe.execute()[1]) >= 1

    def wait_healthy(self, timeout: float = 30.0, *, replicated: bool = True) -> None:
        """Block until :meth:`healthy` (after a failover without a restart: ``replicated=False``)."""
        _wait("Redis Cluster healthy", lambda: self.healthy(replicated=replicated), timeout, "redis")


def _in_ranges(slot: int, ranges: list[int]) -> bool:
    return any(ranges[k] <= slot <= ranges[k + 1] for k in range(0, len(ranges), 2))


def _form_redis_cluster(c: RedisClusterNodes, timeout: float) -> None:
    ids = [c.command(i, "CLUSTER", "MYID") for i in range(len(c.nodes))]
    step = SLOTS // c.masters
    for i in range(c.masters):
        hi = SLOTS - 1 if i == c.masters - 1 else (i + 1) * step - 1
        c.command(i, "CLUSTER", "ADDSLOTSRANGE", i * step, hi)
    for i in range(len(c.nodes)):
        c.command(i, "CLUSTER", "SET-CONFIG-EPOCH", i + 1)  # distinct epochs: no collision to resolve
    first = c.nodes[0]
    for i in range(1, len(c.nodes)):
        c.command(i, "CLUSTER", "MEET", first.host, first.port)
    n = len(c.nodes)
    _wait("every Redis Cluster node knows every other",
          lambda: all(len(c.command(i, "CLUSTER", "NODES").strip().splitlines()) == n for i in range(n)),
          timeout, "redis")
    for k in range(c.replicas):
        for i in range(c.masters):
            c.command(c.masters * (1 + k) + i, "CLUSTER", "REPLICATE", ids[i])
    c.wait_healthy(timeout)


@contextlib.contextmanager
def redis_cluster(masters: int = 3, replicas: int = 1, *, node_timeout_ms: int = 2000,
                  extra_args: tuple[str, ...] = (), timeout: float = 30.0) -> Iterator[RedisClusterNodes]:
    """Start a Redis Cluster of ``masters`` masters with ``replicas`` replicas each; stop it afterwards."""
    cluster = start_redis_cluster(masters, replicas, node_timeout_ms=node_timeout_ms, extra_args=extra_args,
                                  timeout=timeout)
    try:
        yield cluster
    finally:
        cluster.stop()


def start_redis_cluster(masters: int = 3, replicas: int = 1, *, node_timeout_ms: int = 2000,
                        extra_args: tuple[str, ...] = (), timeout: float = 30.0) -> RedisClusterNodes:
    """Like :func:`redis_cluster` but returns the running cluster; the caller calls ``stop()``."""
    _check_count("masters", masters, 1)
    _check_count("replicas", replicas, 0)
    _check_count("node_timeout_ms", node_timeout_ms, 100)
    args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            "--repl-diskless-sync-delay", "0",  # a new replica syncs now, not after the default 5 s
            *extra_args)
    cluster = RedisClusterNodes([], masters=masters, replicas=replicas, node_timeout_ms=node_timeout_ms)
    try:
        for _ in range(masters * (1 + replicas)):
            cluster.nodes.append(_start_redis_node(args))
        _form_redis_cluster(cluster, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _start_redis_node(args: tuple[str, ...]) -> Server:
    """One cluster node on a port whose bus port (+10000) is free too; another port if either was taken."""
    for attempt in range(10):
        port = free_port(below=65536 - _BUS_OFFSET)
        if not _bindable(port + _BUS_OFFSET):
            continue
        try:
            return start("redis", port=port, extra_args=args)
        except _PortBusyError:
            if attempt == 9:
                raise
    raise ServerError("no free port pair (port, port + 10000) for a Redis Cluster node", backend="redis")


# ---------------------------------------------------------------------- NATS cluster


@dataclass
class NatsClusterNodes(_Cluster):
    """A running NATS cluster: full mesh of routes, one cluster name, a monitoring port per node."""

    name: str = "mcastlab"
    cluster_ports: list[int] = field(default_factory=list)
    monitor_ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kind = "nats"

    def routes(self, i: int) -> set[str]:
        """Server ids node ``i`` currently has a route to (from its ``/routez``)."""
        url = f"http://{HOST}:{self.monitor_ports[i]}/routez"
        with urllib.request.urlopen(url, timeout=2) as resp:
            data = json.load(resp)
        return {r["remote_id"] for r in data.get("routes") or []}

    def healthy(self) -> bool:
        """Every live node has a route to every other live node."""
        live = self.alive()
        return all(len(self.routes(i)) >= len(live) - 1 for i in live)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Block until :meth:`healthy` (e.g. after a restart)."""
        _wait("NATS cluster fully routed", self.healthy, timeout, "nats")


@contextlib.contextmanager
def nats_cluster(nodes: int = 3, *, name: str = "mcastlab", extra_args: tuple[str, ...] = (),
                 timeout: float = 30.0) -> Iterator[NatsClusterNodes]:
    """Start a NATS cluster of ``nodes`` servers; stop it afterwards."""
    cluster = start_nats_cluster(nodes, name=name, extra_args=extra_args, timeout=timeout)
    try:
        yield cluster
    finally:
        cluster.stop()


def start_nats_cluster(nodes: int = 3, *, name: str = "mcastlab", extra_args: tuple[str, ...] = (),
                       timeout: float = 30.0) -> NatsClusterNodes:
    """Like :func:`nats_cluster` but returns the running cluster; the caller calls ``stop()``."""
    _check_count("nodes", nodes, 1)
    if not isinstance(name, str) or not name or any(ch.isspace() for ch in name):
        raise UsageError(f"name must be a non-empty str without whitespace, got {name!r}")
    cluster = NatsClusterNodes([], name=name, cluster_ports=[free_port() for _ in range(nodes)],
                               monitor_ports=[free_port() for _ in range(nodes)])
    try:
        for i in range(nodes):
            routes = ",".join(f"nats://{HOST}:{p}" for j, p in enumerate(cluster.cluster_ports) if j != i)
            args = ["-cluster", f"nats://{HOST}:{cluster.cluster_ports[i]}", "-cluster_name", name,
                    "-m", str(cluster.monitor_ports[i])]
            if routes:
                args += ["-routes", routes]
            cluster.nodes.append(start("nats", port=free_port(), extra_args=[*args, *extra_args]))
        cluster.wait_healthy(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


__all__ = ["NatsClusterNodes", "RedisClusterNodes", "nats_cluster", "redis_cluster", "start_nats_cluster",
           "start_redis_cluster"]
