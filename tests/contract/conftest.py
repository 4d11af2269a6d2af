"""Backend contract suite fixtures: every registry (memory, redis, sqlite, postgres) and every messaging
backend (memory, nats, redis pub/sub), driven through the Coordinator under AsyncioRuntime.

Live servers are real redis-server / nats-server processes started once per session with
``mcastlab.servers``; each test gets a fresh key prefix / subject prefix, so tests never see each other.
``make_registry(ns)`` / ``make_messaging(ns)`` return backends that *share state* for the same ``ns``
within one test (the same object for memory, a new client on the same prefix for live backends) and are
isolated across different ``ns``.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from mcastlab import Config, Coordinator, servers
from mcastlab.backends import MemoryMessaging, MemoryRegistry
from mcastlab.errors import ServerError
from mcastlab.runtime import AsyncioRuntime

LIVE = pytest.mark.live
REGISTRIES = ["memory", "sqlite", pytest.param("redis", marks=LIVE), pytest.param("postgres", marks=LIVE),
              pytest.param("redis-cluster", marks=LIVE)]
MESSAGINGS = ["memory", pytest.param("nats", marks=LIVE), pytest.param("redis-pubsub", marks=LIVE),
              pytest.param("kafka", marks=LIVE)]
# KafkaMessaging refuses ack mode (a Kafka producer cannot see listeners: docs/wire-protocol.md); these
# contract tests use ack mode, and tests/backends/test_kafka_messaging.py has their publish-mode twins.
PUBLISH_ONLY = {"kafka"}
ACK_TESTS = {"test_ack_counts_only_listening_identities", "test_no_name_reaches_another_inbox",
             "test_every_listener_of_an_identity_receives", "test_fan_out_to_many_with_a_few_listening",
             "test_two_coordinators_one_prefix_share_inboxes", "test_two_prefixes_are_isolated"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) the ack-mode tests of publish-only backends: they do not apply, and CI fails
    on skipped live tests."""
    keep, drop = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        kind = params.params.get("messaging_kind") if params is not None else None
        publish_only = kind in PUBLISH_ONLY and item.originalname in ACK_TESTS  # type: ignore[attr-defined]
        (drop if publish_only else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _server(kind: str) -> Iterator[servers.Server]:
    try:
        srv = servers.start(kind)
    except ServerError as exc:
        pytest.skip(f"{kind} server not available: {exc}")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.Server]:
    """One redis-server for the whole session (tests isolate themselves by key prefix)."""
    yield from _server("redis")


@pytest.fixture(scope="session")
def nats_server() -> Iterator[servers.Server]:
    """One nats-server for the whole session (tests isolate themselves by subject prefix)."""
    yield from _server("nats")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``$KAFKA_BOOTSTRAP`` (an external cluster), else one local Tansu broker (a Kafka-protocol stand-in,
    not Apache Kafka) for the session; tests isolate themselves by topic prefix."""
    from mcastlab.servers._kafka import bootstrap_from_env

    external = bootstrap_from_env()
    if external:
        yield external
        return
    for srv in _server("kafka"):
        yield srv.url


@pytest.fixture(scope="session")
def pg_server() -> Iterator[servers.Server]:
    """One PostgreSQL for the whole session (tests isolate themselves by table name)."""
    yield from _server("postgres")


_seq = itertools.count()


@pytest.fixture
def unique() -> str:
    """A prefix fragment no other test uses."""
    return f"t{next(_seq)}{secrets.token_hex(3)}"


def registry_for(kind: str, request: pytest.FixtureRequest, name: str,
                 shared: dict[str, Any] | None = None) -> Any:
    """A registry of ``kind`` whose stored state is named ``name`` (same name = same state)."""
    from mcastlab import backends as b

    if kind == "memory":
        return MemoryRegistry() if shared is None else shared.setdefault(name, MemoryRegistry())
    if kind == "sqlite":
        return b.SqliteRegistry(str(request.getfixturevalue("tmp_path") / f"{name}.db"))
    if kind == "postgres":
        return b.PostgresRegistry(request.getfixturevalue("pg_server").url, table=name, pool_size=2)
    if kind == "redis-cluster":  # the session's shared cluster (tests/conftest.py)
        return b.RedisClusterRegistry(request.getfixturevalue("redis_cluster_nodes").urls, prefix=f"{name}:")
    return b.RedisRegistry(request.getfixturevalue("redis_server").url, prefix=f"{name}:")


def _live(request: pytest.FixtureRequest, kind: str) -> None:
    """Start (once per session) the server that ``kind`` needs."""
    if kind == "redis":
        request.getfixturevalue("redis_server")
    elif kind == "nats":
        request.getfixturevalue("nats_server")
    elif kind == "postgres":
        request.getfixturevalue("pg_server")
    elif kind == "kafka":
        request.getfixturevalue("kafka_bootstrap")
    elif kind == "redis-cluster":
        request.getfixturevalue("redis_cluster_nodes")


@pytest.fixture(params=REGISTRIES)
def registry_kind(request: pytest.FixtureRequest) -> str:
    if request.param != "memory":
        _live(request, request.param)
    return str(request.param)


@pytest.fixture(params=MESSAGINGS)
def messaging_kind(request: pytest.FixtureRequest) -> str:
    if request.param != "memory":
        _live(request, {"nats": "nats", "kafka": "kafka"}.get(request.param, "redis"))
    return str(request.param)


@pytest.fixture
def make_registry(request: pytest.FixtureRequest, registry_kind: str, unique: str) -> Callable[..., Any]:
    """``make_registry(ns="a")``: a registry of this test's kind; same ``ns`` = same stored state."""
    shared: dict[str, MemoryRegistry] = {}

    def make(ns: str = "a") -> Any:
        return registry_for(registry_kind, request, f"{unique}_{ns}", shared)

    return make


@pytest.fixture
def make_messaging(request: pytest.FixtureRequest, messaging_kind: str, unique: str) -> Callable[..., Any]:
    """``make_messaging(ns="a")``: a messaging backend of this test's kind; same ``ns`` = same inboxes."""
    shared: dict[str, MemoryMessaging] = {}

    def make(ns: str = "a") -> Any:
        if messaging_kind == "memory":
            return shared.setdefault(ns, MemoryMessaging())
        if messaging_kind == "kafka":
            from mcastlab.backends import KafkaMessaging

            return KafkaMessaging(request.getfixturevalue("kafka_bootstrap"), prefix=f"{unique}.{ns}",
                                  partitions=4)
        if messaging_kind == "nats":
            from mcastlab.backends import NatsMessaging

            return NatsMessaging(request.getfixturevalue("nats_server").url, prefix=f"{unique}.{ns}")
        from mcastlab.backends import RedisPubSubMessaging

        return RedisPubSubMessaging(request.getfixturevalue("redis_server").url, prefix=f"{unique}:{ns}:")

    return make


class Clock:
    """A hand-moved wall clock for AsyncioRuntime, so expiry tests need no sleeping."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


@pytest.fixture
def clock() -> Clock:
    """A hand-moved clock: ``reg_coordinator(clock=clock)``, then ``clock.advance(seconds)``."""
    return Clock()


def _opener(make_registry: Callable[..., Any], make_messaging: Callable[..., Any]) -> Callable[..., Any]:
    @asynccontextmanager
    async def open_one(ns: str = "a", *, clock: Clock | None = None, registry_ns: str | None = None,
                       **config: Any) -> AsyncIterator[Coordinator]:
        config.setdefault("send_timeout", 2.0)
        runtime = AsyncioRuntime(clock) if clock is not None else AsyncioRuntime()
        c = Coordinator(Config(**config), registry=make_registry(registry_ns or ns),
                        messaging=make_messaging(ns), runtime=runtime)
        async with c:
            yield c

    return open_one


@pytest.fixture
def reg_coordinator(make_registry: Callable[..., Any]) -> Callable[..., Any]:
    """``async with reg_coordinator(ns="a", clock=None, **config) as c``: each registry, memory messaging."""
    shared: dict[str, MemoryMessaging] = {}
    return _opener(make_registry, lambda ns="a": shared.setdefault(ns, MemoryMessaging()))


@pytest.fixture
def msg_coordinator(make_messaging: Callable[..., Any]) -> Callable[..., Any]:
    """``async with msg_coordinator(ns="a", **config) as c``: each messaging backend, memory registry."""
    shared: dict[str, MemoryRegistry] = {}
    return _opener(lambda ns="a": shared.setdefault(ns, MemoryRegistry()), make_messaging)
