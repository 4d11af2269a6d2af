"""The project's shared registry contract (tests/contract/test_registry_contract.py) and its random
filter equivalence (tests/contract/test_filter_equivalence.py), run unchanged against SqliteRegistry
and PostgresRegistry.

The contract tests are loaded from that file and collected here with fixtures of the same names; the
equivalence check reuses its strategies and comparison. Once tests/contract/conftest.py lists "sqlite"
and "postgres" in REGISTRIES, this module can go.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcastlab import Config, Coordinator
from mcastlab.backends import MemoryMessaging, PostgresRegistry, SqliteRegistry
from mcastlab.runtime import AsyncioRuntime

from .conftest import unique

_CONTRACT = Path(__file__).resolve().parents[1] / "contract"


def _load(name: str) -> Any:
    path = _CONTRACT / f"{name}.py"
    if not path.is_file():  # pragma: no cover - the shared suite was moved
        pytest.skip(f"shared contract suite not found at {path}", allow_module_level=True)
    spec = importlib.util.spec_from_file_location(f"_shared_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


globals().update({k: v for k, v in vars(_load("test_registry_contract")).items() if k.startswith("test_")})
_equivalence = _load("test_filter_equivalence")

@pytest.fixture
def reg_coordinator(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Any]:
    """``async with reg_coordinator(ns="a", clock=None, **config) as c`` over this backend; same ``ns``
    = same stored state (one file or table), different ``ns`` = isolated."""
    base = unique("shared")
    url = request.getfixturevalue("pg_server").url if backend == "postgres" else ""
    inboxes: dict[str, MemoryMessaging] = {}

    def registry(ns: str) -> Any:
        if backend == "sqlite":
            return SqliteRegistry(str(tmp_path / f"{ns}.db"), indexes=("status", "group"))
        return PostgresRegistry(url, table=f"{base}_{ns}", pool_size=4)

    @asynccontextmanager
    async def open_one(ns: str = "a", *, clock: Any = None, registry_ns: str | None = None,
                       **config: Any) -> AsyncIterator[Coordinator]:
        runtime = AsyncioRuntime(clock) if clock is not None else AsyncioRuntime()
        c = Coordinator(Config(**config), registry=registry(registry_ns or ns),
                        messaging=inboxes.setdefault(ns, MemoryMessaging()), runtime=runtime)
        async with c:
            yield c

    return open_one


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(population=_equivalence.POPULATIONS, filters=st.lists(_equivalence.FILTERS, min_size=1, max_size=4))
def test_shared_random_filters_match_the_reference(backend: str, request: pytest.FixtureRequest,
                                                   population: dict[str, Any], filters: list[Any]) -> None:
    if backend == "sqlite":
        registry: Any = SqliteRegistry(indexes=("status", "g"))
    else:
        url = request.getfixturevalue("pg_server").url
        registry = PostgresRegistry(url, table=unique("hyp"), pool_size=2)
    asyncio.run(_equivalence._compare(registry, population, filters))
