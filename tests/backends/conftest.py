"""Fixtures for live backend tests: real redis-server / nats-server processes started by the tests
(``mcastlab.servers``), unique prefixes, and a Redis consistency checker."""

from __future__ import annotations

import itertools
import math
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator

import pytest

from mcastlab import servers
from mcastlab.errors import ServerError


def start_or_skip(kind: str, **kw: object) -> servers.Server:
    """Start a server, skipping the test if its binary is not installed here."""
    try:
        return servers.start(kind, **kw)
    except ServerError as exc:
        if "not found" in str(exc):
            pytest.skip(f"{kind} server not available: {exc}")
        raise


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.Server]:
    """A redis-server shared by the session (tests isolate by key prefix)."""
    srv = start_or_skip("redis")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[servers.Server]:
    """A nats-server shared by the session (tests isolate by subject prefix)."""
    srv = start_or_skip("nats")
    yield srv
    srv.stop()


@pytest.fixture
def own_redis() -> Iterator[servers.Server]:
    """A redis-server for this test alone (fault tests kill it), with every write fsynced to its AOF so
    that a restart shows exactly what Redis had acknowledged."""
    srv = start_or_skip("redis", extra_args=["--appendonly", "yes", "--appendfsync", "always"])
    yield srv
    srv.stop()


@pytest.fixture
def own_nats() -> Iterator[servers.Server]:
    """A nats-server for this test alone (fault tests kill it)."""
    srv = start_or_skip("nats")
    yield srv
    srv.stop()


@pytest.fixture
def start_server() -> Iterator[Callable[..., servers.Server]]:
    """``start_server(kind, **kw)``: a server for this test alone, stopped afterwards."""
    started: list[servers.Server] = []

    def start(kind: str, **kw: object) -> servers.Server:
        srv = start_or_skip(kind, **kw)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


_seq = itertools.count()


@pytest.fixture
def prefix() -> str:
    """A Redis key prefix no other test uses."""
    return f"t{next(_seq)}{secrets.token_hex(3)}:"


async def redis_problems(url: str, base: str) -> list[str]:
    """Every broken invariant of a RedisRegistry's keys under ``base`` (empty list: consistent).

    Each identity hash has its deadline entry (score = ``e``), its row (``member e r m``) in ``rows`` and
    in the row hash of each index set named in ``x`` (``xs`` holding ``x``), and is a member of exactly
    those index sets; every deadline entry, row and index member has a hash; no temporary key is left.
    """
    import redis.asyncio as aioredis

    r = aioredis.from_url(url, protocol=2)
    problems: list[str] = []
    try:
        b = base.encode()
        keys = [k async for k in r.scan_iter(match=re.sub(r"([*?\[\]\\])", r"\\\1", base) + "*", count=1000)]
        scores = dict(await r.zrange(b + b"z", 0, -1, withscores=True))
        hashes = {k[len(b) + 3:]: await r.hgetall(k) for k in keys if k.startswith(b + b"id:")}
        for member, h in hashes.items():
            want = math.inf if h[b"e"] == b"" else float(h[b"e"])
            if scores.get(member) != want:
                problems.append(f"{member!r}: deadline entry {scores.get(member)} != e {want}")
            row = b" ".join((member, h[b"e"], h[b"r"], h[b"m"]))
            if await r.hget(b + b"rows", member) != row:
                problems.append(f"{member!r}: its row in rows does not match its hash")
            if await r.hget(b + b"xs", member) != h[b"x"]:
                problems.append(f"{member!r}: xs does not hold its x")
            for suffix in filter(None, h[b"x"].split(b"\n")):
                if not await r.sismember(b + suffix, member):
                    problems.append(f"{member!r}: missing from index {suffix!r}")
                if await r.hget(b + b"r" + suffix, member) != row:
                    problems.append(f"{member!r}: its row in the row hash of {suffix!r} does not match")
        for member in scores:
            if member not in hashes:
                problems.append(f"deadline entry {member!r} has no hash")
        for key in (b + b"rows", b + b"xs"):
            for member in await r.hkeys(key):
                if member not in hashes:
                    problems.append(f"{key!r} holds {member!r}, which has no hash")
        for key in keys:
            index = key[:len(b)] + key[len(b) + 1:]  # a row hash (rix...) holds exactly its index set
            if key.startswith(b + b"rix") and set(await r.hkeys(key)) != set(await r.smembers(index)):
                problems.append(f"row hash {key!r} and its index set differ")
            if key.startswith(b + b"tmp:"):
                problems.append(f"temporary key left: {key!r}")
            if not key.startswith(b + b"ix"):
                continue
            suffix = key[len(b):]
            for member in await r.smembers(key):
                h = hashes.get(member)
                if h is None or suffix not in h[b"x"].split(b"\n"):
                    problems.append(f"index {suffix!r} holds {member!r} which is not indexed there")
    finally:
        await r.aclose()
    return problems


@pytest.fixture
def consistency() -> Callable[[str, str], Awaitable[list[str]]]:
    """``await consistency(url, registry.base)`` -> list of broken invariants."""
    return redis_problems


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``$KAFKA_BOOTSTRAP`` (an external cluster), else one local Tansu broker — a Kafka-protocol stand-in,
    not Apache Kafka — for the session; tests isolate themselves by topic prefix."""
    from mcastlab.servers._kafka import bootstrap_from_env

    external = bootstrap_from_env()
    if external:
        yield external
        return
    srv = start_or_skip("kafka")
    yield srv.url
    srv.stop()


@pytest.fixture
def own_kafka() -> Iterator[servers.Server]:
    """A Tansu broker for this test alone (fault and crash tests kill it); memory storage, so a restart
    starts with no topics."""
    srv = start_or_skip("kafka")
    yield srv
    srv.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A Kafka topic prefix no other test uses."""
    return f"t{next(_seq)}{secrets.token_hex(3)}"
