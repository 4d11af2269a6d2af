"""to_sql(dialect="postgres") against a real PostgreSQL (started by mcastlab.servers; skipped if absent).

Rows go in as parameters (``unnest`` of ids and JSON texts), so the filter's placeholders start at
``param_offset=2``, which tests that too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcastlab.errors import ServerError
from mcastlab.filters import F, Filter, compile_filter, field_name, to_sql
from mcastlab.filters.strategies import filters_for, metadata_dicts

pytestmark = pytest.mark.live

asyncpg = pytest.importorskip("asyncpg")


class Pg:
    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(asyncpg.connect(url))

    def ids(self, rows: list[dict[str, Any]], f: object) -> tuple[set[int], bool]:
        sf = to_sql(f, dialect="postgres", param_offset=2)
        sql = (
            "SELECT id FROM (SELECT id, doc::jsonb AS metadata "
            f"FROM unnest($1::int[], $2::text[]) AS r(id, doc)) AS t WHERE {sf.sql}"
        )
        args = [list(range(len(rows))), [json.dumps(m) for m in rows], *sf.params]
        found = self.loop.run_until_complete(self.conn.fetch(sql, *args))
        return {r[0] for r in found}, sf.exact

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


@pytest.fixture(scope="module")
def pg() -> Iterator[Pg]:
    from mcastlab import servers

    try:
        servers.find_binary("postgres")
    except ServerError as exc:
        pytest.skip(str(exc))
    with servers.start_postgres() as server:
        client = Pg(server.url)
        yield client
        client.close()


def python_ids(rows: list[dict[str, Any]], f: object) -> set[int]:
    pred = compile_filter(f, max_depth=None, max_clauses=None).predicate
    return {i for i, m in enumerate(rows) if pred(m)}


def check(pg: Pg, rows: list[dict[str, Any]], f: object) -> None:
    got, exact = pg.ids(rows, f)
    want = python_ids(rows, f)
    if exact:
        assert got == want, str(f)
    else:
        assert got >= want, str(f)


def test_postgres_agrees_with_predicate(pg: Pg) -> None:
    @settings(max_examples=80, deadline=None)
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        rows = data.draw(st.lists(metadata_dicts(), min_size=1, max_size=6), label="rows")
        check(pg, rows, data.draw(filters_for(*rows), label="filter"))

    prop()


ROWS: list[dict[str, Any]] = [
    {"status": "online", "n": 5, "tags": ["a", 1, True, None, ["x"]], "hw": {"model": "pi4"}, "fw": "1.2.9"},
    {"status": "offline", "n": 5.0, "tags": "xay", "hw": {"model": 4}, "fw": "1.10.0", "s": "B"},
    {"status": None, "n": True, "tags": [1.0], "hw": "pi4", "fw": 1, "s": "a"},
    {"n": "5", "hw": {"model": None}, "fw": "latest", "a.b": 1, "list": {"0": 1}, "s": "é"},
    {"list": [1], "n": 2**53 + 1},
    {},
]


@pytest.mark.parametrize(
    "text",
    [
        "status not in []", "status in []", 'not (fw > v"1.0")', 'not (fw != v"1.10")', 'fw < v"1.2.10"',
        "n == 5", "n == true", "n != 1", "n > 9007199254740992", 'n < "6"', 's < "b"', 's > "a"',
        'tags contains "x"', 'tags contains ""', "tags contains 1", "tags contains null", "list.`0` == 1",
        "exists(hw.model)", "not exists(hw.model)", 'hw.model.startswith("p")', "`a.b` == 1",
        'n == 5 and not (status in ["offline", null] or tags contains 1)',
    ],
)
def test_postgres_examples(pg: Pg, text: str) -> None:
    check(pg, ROWS, text)


@pytest.mark.parametrize("text", ["'); DROP TABLE x; --", 'a"b', "$1", "a\\b", "é", "{a,b}", '{"a"}'])
def test_postgres_hostile_names_and_values(pg: Pg, text: str) -> None:
    name = field_name((text,))
    rows: list[dict[str, Any]] = [{text: text, "n": {text: [text]}}, {text: text + "!"}, {"other": text}]
    flts: list[Filter] = [
        F(name) == text, F(name) != text, F(name).isin([text]), F(name).startswith(text),
        F(name).contains(text), F(field_name(("n", text))).contains(text), F(name) > text,
    ]
    for flt in flts:
        check(pg, rows, flt)
