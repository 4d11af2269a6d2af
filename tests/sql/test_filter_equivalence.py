"""Random filters over random (hostile) metadata: the SQL registries return exactly what MemoryRegistry
returns, and ``to_sql`` alone agrees with the Python predicate (a superset when it says inexact)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcastlab import Config, Coordinator
from mcastlab.backends import MemoryRegistry, PostgresRegistry, SqliteRegistry
from mcastlab.filters import Filter, compile_filter, to_sql
from mcastlab.runtime import AsyncioRuntime

from .conftest import Clock, Factory
from .strategies import FILTERS, KEYS, METADATA

CONFIG = Config(max_filter_depth=50, max_clauses=500, default_ttl=None, max_identities=None)
N_IDENTITIES = 10


class Pair:
    """A SQL-backed and a memory-backed coordinator fed the same identities, on one event loop."""

    def __init__(self, registry: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.registry = registry
        clock = Clock()
        self.sql = Coordinator(CONFIG, registry=registry, runtime=AsyncioRuntime(clock=clock))
        self.mem = Coordinator(CONFIG, registry=MemoryRegistry(), runtime=AsyncioRuntime(clock=clock))
        self.run(self.sql.open())
        self.run(self.mem.open())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def load(self, dataset: list[dict[str, Any]]) -> None:
        async def go() -> None:
            for i in range(N_IDENTITIES):
                for c in (self.sql, self.mem):
                    if i < len(dataset):
                        await c.register(f"id-{i}", dataset[i])
                    else:
                        await c.unregister(f"id-{i}")
        self.run(go())

    def ids(self, c: Coordinator, flt: Filter) -> list[str]:
        return sorted(i.id for i in self.run(c.enumerate(flt)))

    def raw_to_sql(self, flt: Filter) -> tuple[list[str], bool]:
        """Ids selected by the bare ``to_sql`` fragment (no pre-filter, no re-check) and its exactness."""
        reg = self.registry
        if isinstance(reg, SqliteRegistry):
            frag = to_sql(flt, dialect="sqlite")
            rows = reg._db().execute(f"SELECT id FROM {reg._t} WHERE {frag.sql}", frag.params).fetchall()
        else:
            frag = to_sql(flt, dialect="postgres")

            async def fetch() -> list[Any]:
                async with reg._pool.conn() as conn:
                    sql = f"SELECT id FROM {reg._t} WHERE {frag.sql}"
                    return list(await conn.fetch(sql, *frag.params))
            rows = self.run(fetch())
        return sorted(r[0] for r in rows), frag.exact

    def close(self) -> None:
        self.run(self.sql.close())
        self.run(self.mem.close())
        tasks = asyncio.all_tasks(self.loop)  # the sweepers, cancelled by close(): let them finish
        self.run(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()


@pytest.fixture
def pair(make_registry: Factory, backend: str) -> Iterator[Pair]:
    p = Pair(make_registry(indexes=("status", "n", "fw")) if backend == "sqlite" else make_registry())
    yield p
    p.close()


def check(p: Pair, dataset: list[dict[str, Any]], filters: list[Filter]) -> None:
    p.load(dataset)
    for flt in filters:
        cf = compile_filter(flt, max_depth=None, max_clauses=None)
        want = p.ids(p.mem, flt)
        assert want == sorted(f"id-{i}" for i, md in enumerate(dataset) if cf.predicate(md))
        assert p.ids(p.sql, flt) == want, str(flt)
        assert p.run(p.sql.count(flt)) == len(want), str(flt)
        raw, exact = p.raw_to_sql(flt)
        if exact:
            assert raw == want, f"to_sql not exact for {flt}"
        else:
            assert set(want) <= set(raw), f"to_sql not a superset for {flt}"


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def _property(p: Pair, data: st.DataObject) -> None:
    dataset = data.draw(st.lists(METADATA, min_size=1, max_size=N_IDENTITIES), label="dataset")
    filters = data.draw(st.lists(FILTERS, min_size=1, max_size=3), label="filters")
    check(p, dataset, filters)


def test_random_filters_match_memory(pair: Pair) -> None:
    _property(pair)


def test_hostile_keys_and_values_stay_data(pair: Pair) -> None:
    evil = "x'); DROP TABLE identities; --"
    dataset = [{k: f"{k}-value" for k in KEYS}, {evil: evil, "status": "' OR 1=1 --"},
               {"status": "%", "n": "_"}, {"status": "a%b", "tags": ["%", "_", "?"]}, {"$1": "$2", "?": "?"}]
    filters: list[Any] = [
        {evil: evil}, {"status": "' OR 1=1 --"}, f'`{evil}`.startswith("x\')")', 'status.startswith("%")',
        'status contains "%"', 'tags contains "_"', '`$1` == "$2"', '`?` == "?"', '`?` != "$1"',
        'status in ["%", "\' OR 1=1 --"]', 'not (status == "%")', '`a.b` == "a.b-value"',
        '`we"ird` exists', '`back\\\\slash` == "back\\\\slash-value"', '`ключ` == "ключ-value"',
    ]
    check(pair, dataset, [compile_filter(f, max_depth=None, max_clauses=None).filter for f in filters])
    reg = pair.registry
    tables = (reg._db().execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
              if isinstance(reg, SqliteRegistry) else [(reg.table,)])
    assert (reg.table,) in tables
    if isinstance(reg, PostgresRegistry):
        assert pair.run(pair.sql.count()) == len(dataset)

