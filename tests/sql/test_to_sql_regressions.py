"""Regressions for two ``to_sql`` (PostgreSQL) bugs found by the SQL registry tests, now fixed there.

The bare fragment is run, without the registry's pre-filter or predicate re-check.
"""

from __future__ import annotations

from typing import Any

import pytest

from mcastlab import Config, Coordinator
from mcastlab.backends import PostgresRegistry
from mcastlab.filters import compile_filter, to_sql

from .conftest import unique

pytestmark = pytest.mark.live


async def bare(registry: Any, flt: Any) -> tuple[list[str], bool]:
    frag = to_sql(flt, dialect="postgres")
    async with registry._pool.conn() as conn:
        rows = await conn.fetch(f"SELECT id FROM {registry._t} WHERE {frag.sql}", *frag.params)
    return sorted(r[0] for r in rows), frag.exact


@pytest.fixture
async def coord(pg_server: Any) -> Any:
    async with Coordinator(Config(), registry=PostgresRegistry(pg_server.url, table=unique("reg"))) as c:
        await c.register("has", {"status": "x", "fw": "1.2.3"})
        await c.register("lacks", {})
        yield c


async def test_not_in_empty_list_is_false_for_a_missing_field(coord: Coordinator) -> None:
    # was: NOT (NULL IN (<empty>)) is TRUE, so identities without the field matched
    assert await bare(coord.registry, "status not in []") == (["has"], True)
    assert [i.id for i in await coord.enumerate("status not in []")] == ["has"]


async def test_version_comparison_under_not_binds_no_unused_parameter(coord: Coordinator) -> None:
    # was: the path parameter stayed bound but unused, and PostgreSQL could not type it
    ids, exact = await bare(coord.registry, 'not (fw > v"1.0")')
    assert "lacks" in ids and not exact  # a superset, re-checked by the registry
    assert [i.id for i in await coord.enumerate('not (fw > v"1.0")')] == ["lacks"]
    assert compile_filter('not (fw > v"1.0")').predicate({}) is True
