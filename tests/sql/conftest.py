"""Fixtures for the SQL backend tests: one PostgreSQL per session, a fresh table (or file) per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mcastlab import servers as srv
from mcastlab.backends import PostgresDurability, PostgresRegistry, SqliteDurability, SqliteRegistry
from mcastlab.errors import ServerError

_names = itertools.count()


class Clock:
    """A manual clock for AsyncioRuntime(clock=...): deadlines become exact and repeatable."""

    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> float:
        self.t += dt
        return self.t


def unique(prefix: str) -> str:
    """A table name no other test in this session (or a concurrent session) uses."""
    return f"{prefix}_{os.getpid()}_{next(_names)}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[srv.Server]:
    """One PostgreSQL for the session, started by mcastlab.servers; skipped if not installed."""
    try:
        srv.find_binary("postgres")
    except ServerError as exc:
        pytest.skip(str(exc))
    server = srv.start_postgres()
    yield server
    server.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


Factory = Callable[..., Any]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.live)])
def backend(request: pytest.FixtureRequest) -> str:
    """Each SQL backend in turn."""
    return str(request.param)


@pytest.fixture
def make_registry(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """A factory of registries that all share one store (a file, or a table in the session server)."""
    if backend == "sqlite":
        path = str(tmp_path / "registry.db")
        return lambda **kw: SqliteRegistry(path, indexes=kw.pop("indexes", ("status", "region")), **kw)
    server = request.getfixturevalue("pg_server")
    table = unique("reg")
    return lambda **kw: PostgresRegistry(server.url, table=kw.pop("table", table), pool_size=2, **kw)


@pytest.fixture
def make_durability(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """A factory of durability backends that all share one store."""
    if backend == "sqlite":
        path = str(tmp_path / "durable.db")
        return lambda **kw: SqliteDurability(path, **kw)
    server = request.getfixturevalue("pg_server")
    prefix = unique("dur")
    return lambda **kw: PostgresDurability(server.url, prefix=prefix, pool_size=2, **kw)
