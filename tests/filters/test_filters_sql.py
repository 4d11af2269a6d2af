"""to_sql: SQLite conditions return exactly what the predicate returns; parameters carry all user text."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcastlab.errors import FilterError
from mcastlab.filters import (
    Compare,
    Contains,
    F,
    Filter,
    In,
    StartsWith,
    Version,
    compile_filter,
    field_name,
    parse,
    to_sql,
)
from mcastlab.filters.strategies import filters_for, metadata_dicts


def sqlite_ids(rows: list[dict[str, Any]], f: object, *, ascii_json: bool = True) -> tuple[set[int], bool]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE ids (id INTEGER PRIMARY KEY, metadata TEXT NOT NULL)")
    db.executemany(
        "INSERT INTO ids VALUES (?, ?)",
        [(i, json.dumps(m, ensure_ascii=ascii_json)) for i, m in enumerate(rows)],
    )
    sf = to_sql(f, dialect="sqlite")
    assert sf.sql.count("?") == len(sf.params)
    got = {r[0] for r in db.execute(f"SELECT id FROM ids WHERE {sf.sql}", sf.params)}
    # Two-valued: the negated condition selects exactly the other rows.
    if sf.exact:
        rest = {r[0] for r in db.execute(f"SELECT id FROM ids WHERE NOT {sf.sql}", sf.params)}
        assert got | rest == set(range(len(rows))) and not got & rest
    db.close()
    return got, sf.exact


def python_ids(rows: list[dict[str, Any]], f: object) -> set[int]:
    pred = compile_filter(f, max_depth=None, max_clauses=None).predicate
    return {i for i, m in enumerate(rows) if pred(m)}


@settings(max_examples=250)
@given(st.data())
def test_sqlite_agrees_with_predicate(data: st.DataObject) -> None:
    rows = data.draw(st.lists(metadata_dicts(), min_size=1, max_size=6), label="rows")
    f = data.draw(filters_for(*rows), label="filter")
    ascii_json = data.draw(st.booleans(), label="ascii_json")
    got, exact = sqlite_ids(rows, f, ascii_json=ascii_json)
    want = python_ids(rows, f)
    if exact:
        assert got == want
    else:
        assert got >= want


ROWS: list[dict[str, Any]] = [
    {"status": "online", "n": 5, "tags": ["a", 1, True, None], "hw": {"model": "pi4"}, "fw": "1.2.9"},
    {"status": "offline", "n": 5.0, "tags": "xay", "hw": {"model": 4}, "fw": "1.10.0"},
    {"status": None, "n": True, "tags": [1.0], "hw": "pi4", "fw": 1},
    {"n": "5", "hw": {"model": None}, "fw": "latest", "a.b": 1},
    {},
]


@pytest.mark.parametrize(
    "text",
    [
        'status == "online"', 'status != "online"', "status == null", "status != null", "n == 5", "n != 5",
        "n == true", "n == 1", "n >= 5", 'n < "6"', "n in [5, true]", "n not in [5]", "exists(status)",
        'tags contains "a"', "tags contains 1", "tags contains true", "tags contains null",
        'tags contains "y"',
        'hw.model == "pi4"', "exists(hw.model)", "hw.model != 4", 'hw.model.startswith("p")',
        'status.startswith("")', "`a.b` == 1", 'not (status == "online")', "not exists(hw.model)",
        'fw < v"1.2.10"', 'fw >= v"1.2.10"', 'fw != v"1.2.9"', 'not (fw < v"1.2.10")', 'not (fw != v"1.10")',
        "true", "false", 'n == 5 and not (status in ["offline", null] or tags contains 1)',
    ],
)
def test_sqlite_examples(text: str) -> None:
    got, exact = sqlite_ids(ROWS, text)
    want = python_ids(ROWS, text)
    assert got == want if exact else got >= want
    assert exact == ("v\"" not in text)


HOSTILE = [
    "'); DROP TABLE ids; --",
    '"; DROP TABLE ids; --',
    'a"b',
    "a'b",
    "$.x",
    "$1",
    "?",
    "a\\b",
    "é",
    "x y",
    "[0]",
    "*",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_sqlite_hostile_names_and_values(text: str) -> None:
    name = field_name((text,))
    nested = field_name(("n", text))
    rows: list[dict[str, Any]] = [{text: text, "n": {text: [text, 1]}}, {text: text + "!"}, {"other": text}]
    cases: list[tuple[Filter, set[int]]] = [
        (F(name) == text, {0}),
        (F(name) != text, {1}),
        (F(name).isin([text, 1]), {0}),
        (F(name).startswith(text), {0, 1}),
        (Contains(name, text), {0, 1}),
        (Contains(nested, text), {0}),
        (In(nested, (text,), negated=True), {0}),
        (F(nested).exists(), {0}),
        (Compare(name, ">=", text), {0, 1}),
    ]
    for flt, want in cases:
        for dialect in ("sqlite", "postgres"):
            sf = to_sql(flt, dialect=dialect)
            assert text not in sf.sql or text in {"?", "*", "$1"}  # user text is only in params
            assert re.fullmatch(r"[\w\s().,=<>'$?*\[\]:\"#{}-]*", sf.sql), sf.sql
        assert python_ids(rows, flt) == want
        assert sqlite_ids(rows, flt)[0] == want, str(flt)


def test_sql_text_holds_no_user_text() -> None:
    marker = "zz_marker"
    flt = (
        (F(marker) == marker) & F(f"{marker}.{marker}").isin([marker, 1]) & F(marker).startswith(marker)
        & F(marker).contains(marker) & (F(marker) < Version("1.0")) & ~(F(marker) > marker)
    )
    for dialect in ("sqlite", "postgres"):
        sf = to_sql(flt, dialect=dialect)
        assert marker not in sf.sql
        assert any(marker in str(p) for p in sf.params)


def test_postgres_placeholders_are_numbered_and_offset() -> None:
    flt = parse('a == 1 and hw.model in ["x", 2] and name.startswith("p") and tags contains "t"')
    sf = to_sql(flt, dialect="postgres")
    numbers = sorted({int(n) for n in re.findall(r"\$(\d+)", sf.sql)})
    assert numbers == list(range(1, len(sf.params) + 1))
    assert "?" not in sf.sql and "%s" not in sf.sql
    shifted = to_sql(flt, dialect="postgres", param_offset=3)
    assert sorted({int(n) for n in re.findall(r"\$(\d+)", shifted.sql)}) == [n + 3 for n in numbers]
    assert shifted.params == sf.params
    assert sf.params[0] == ["a"]  # paths are text[] parameters
    assert ["hw", "model"] in sf.params and ["hw"] in sf.params


def test_exact_flag() -> None:
    assert to_sql("a == 1", dialect="sqlite").exact
    assert not to_sql('a < v"1.0"', dialect="sqlite").exact
    assert not to_sql('not (a < v"1.0") or b == 1', dialect="postgres").exact
    assert to_sql(None, dialect="sqlite").sql == "TRUE"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"dialect": "mysql"}, "unknown SQL dialect"),
        ({"dialect": "sqlite", "column": "metadata; DROP TABLE x"}, "plain SQL identifier"),
        ({"dialect": "sqlite", "column": ""}, "plain SQL identifier"),
        ({"dialect": "sqlite", "param_offset": 2}, "postgres only"),
        ({"dialect": "postgres", "param_offset": -1}, "param_offset"),
    ],
)
def test_to_sql_rejects(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(FilterError, match=re.escape(fragment)):
        to_sql("a == 1", **kwargs)


def test_qualified_column() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (value TEXT, metadata TEXT)")
    db.execute("INSERT INTO t VALUES ('x', ?)", (json.dumps({"value": ["x"], "key": "k"}),))
    text = 'value contains "x" and key == "k" and `we"ird` not in [1]'
    sf = to_sql(text, dialect="sqlite", column="t.metadata")
    assert db.execute(f"SELECT count(*) FROM t WHERE {sf.sql}", sf.params).fetchone() == (0,)
    sf = to_sql('value contains "x" and key == "k"', dialect="sqlite", column="t.metadata")
    assert db.execute(f"SELECT count(*) FROM t WHERE {sf.sql}", sf.params).fetchone() == (1,)


def test_startswith_prefix_param() -> None:
    assert isinstance(StartsWith("a", "%_").prefix, str)
    got, _ = sqlite_ids([{"a": "%_x"}, {"a": "ab"}], StartsWith("a", "%_"))
    assert got == {0}
