"""``to_sql``: translate a filter into a SQL condition for PostgreSQL (JSONB) or SQLite (JSON text).

The condition returns exactly what the Python predicate returns (same type rules, same missing-field
rule) and is two-valued: every leaf is wrapped so that it is TRUE or FALSE, never NULL, so ``NOT``
behaves as in Python. Values **and field names** travel as parameters; the SQL text holds only fixed
keywords, the comparison operator (from a closed set) and the column name (checked to be a plain
identifier such as ``metadata`` or ``t.metadata``).

* PostgreSQL: ``$1, $2, ...`` placeholders (asyncpg style), starting after ``param_offset``. A field is
  ``metadata #> $n::text[]`` with the path as a list of str; every step before the last must be an
  object (so ``"tags.0"`` never indexes into an array). Strings order with ``COLLATE "C"`` (code
  points), numbers and equality use ``jsonb`` semantics (``5 = 5.0``; ``1 <> true``).
* SQLite: ``?`` placeholders; ``json_type``/``json_extract`` with a path parameter ``$."key"``. Keys made
  of ``[A-Za-z0-9_ .:@#$-]`` use that path; any other key (quotes, backslashes, non-ASCII, ...) is
  looked up with ``json_each`` on the key column instead, which is exact for any key.

Version comparisons (``v"1.2.3"``) have no exact SQL form: the condition is then a **superset** of the
matches (the backend re-checks rows with the predicate) and :attr:`SqlFilter.exact` is False. Inside a
``not`` the stand-in is a subset instead, so the whole condition stays a superset.

Limits of exactness: SQLite's JSON functions cut strings at U+0000, so metadata strings holding NUL
characters may match wrongly there; integers beyond the signed 64-bit range are outside the guarantee;
in PostgreSQL, comparisons between a float and an integer beyond 2**53 use the float's shortest decimal.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from mcastlab.errors import FilterError

from ._ast import All, And, Compare, Contains, Exists, Filter, In, Not, Or, StartsWith
from ._convert import to_filter
from ._lexical import field_path
from ._version import Version

_COLUMN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_SQLITE_SAFE_KEY = re.compile(r"[A-Za-z0-9_ .:@#$-]+")


@dataclass(frozen=True, slots=True)
class SqlFilter:
    """A SQL condition and its parameters; ``exact`` False means "re-check rows with the predicate"."""

    sql: str
    params: list[Any]
    exact: bool


class _Field(ABC):
    """SQL expressions for one field: ``t()`` its JSON type (NULL if missing), ``x()`` its value."""

    def __init__(self, b: _Builder, path: tuple[str, ...]) -> None:
        self.b = b
        self.path = path

    @abstractmethod
    def t(self) -> str: ...

    @abstractmethod
    def x(self) -> str: ...


class _SqliteField(_Field):
    def __init__(self, b: _Builder, path: tuple[str, ...]) -> None:
        super().__init__(b, path)
        self.simple = all(_SQLITE_SAFE_KEY.fullmatch(s) for s in path)

    def _json_path(self) -> str:
        return self.b.param("$" + "".join(f'."{s}"' for s in self.path))

    def _parent(self) -> str:
        doc = self.b.column
        for seg in self.path[:-1]:
            doc = (f"(SELECT _je.value FROM json_each({doc}) AS _je "
                   f"WHERE _je.key = {self.b.param(seg)} AND _je.type = 'object')")
        return doc

    def _member(self, column: str) -> str:
        parent = self._parent()
        key = self.b.param(self.path[-1])
        return f"(SELECT _je.{column} FROM json_each({parent}) AS _je WHERE _je.key = {key})"

    def t(self) -> str:
        return f"json_type({self.b.column}, {self._json_path()})" if self.simple else self._member("type")

    def x(self) -> str:
        return f"json_extract({self.b.column}, {self._json_path()})" if self.simple else self._member("value")

    def each(self) -> str:
        """A table source over the field's array elements (only used when t() is 'array')."""
        if self.simple:
            return f"json_each({self.b.column}, {self._json_path()}) AS _ja"
        return f"json_each({self.x()}) AS _ja"


class _PgField(_Field):
    _x: str | None = None

    def x(self) -> str:
        if self._x is None:  # parameters are allocated on first use, then the placeholders are reused
            b, col, path = self.b, self.b.column, self.path
            value = f"{col} #> {b.param(list(path))}::text[]"
            guards = [
                f"jsonb_typeof({col} #> {b.param(list(path[:i]))}::text[]) = 'object'"
                for i in range(1, len(path))
            ]
            self._x = f"(CASE WHEN {' AND '.join(guards)} THEN {value} END)" if guards else f"({value})"
        return self._x

    def t(self) -> str:
        return f"jsonb_typeof({self.x()})"


class _Builder(ABC):
    TEXT = "text"  # the dialect's name for the JSON string type

    def __init__(self, column: str, offset: int) -> None:
        self.column = column
        self.offset = offset
        self.params: list[Any] = []
        self.exact = True

    @abstractmethod
    def param(self, value: Any) -> str: ...

    @abstractmethod
    def field(self, name: str) -> _Field: ...

    def node(self, f: Filter, positive: bool) -> str:
        if isinstance(f, All):
            return "TRUE"
        if isinstance(f, And | Or):
            joiner = " AND " if isinstance(f, And) else " OR "
            return "(" + joiner.join(self.node(c, positive) for c in f.children) + ")"
        if isinstance(f, Not):
            return f"(NOT {self.node(f.child, not positive)})"
        if isinstance(f, Compare) and type(f.value) is Version:
            return self.version(f, positive)
        if isinstance(f, Compare):
            return self.compare(f)
        if isinstance(f, In):
            return self.isin(f)
        if isinstance(f, Exists):
            return f"({self.field(f.field).t()} IS NOT NULL)"
        if isinstance(f, StartsWith):
            return self.startswith(f)
        if isinstance(f, Contains):
            return self.contains(f)
        raise FilterError(f"not a filter node: {f!r}")  # pragma: no cover - AST is closed

    def version(self, f: Compare, positive: bool) -> str:
        """A superset of the version comparison (a subset when ``positive`` is False)."""
        self.exact = False
        fld = self.field(f.field)
        if f.op == "!=":
            if positive:
                return f"({fld.t()} IS NOT NULL)"
            return f"COALESCE({fld.t()} <> '{self.TEXT}', FALSE)"
        return f"COALESCE({fld.t()} = '{self.TEXT}', FALSE)" if positive else "FALSE"

    @abstractmethod
    def compare(self, f: Compare) -> str: ...

    @abstractmethod
    def isin(self, f: In) -> str: ...

    @abstractmethod
    def startswith(self, f: StartsWith) -> str: ...

    @abstractmethod
    def contains(self, f: Contains) -> str: ...


class _Sqlite(_Builder):
    NUMBER = "IN ('integer', 'real')"

    def param(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def field(self, name: str) -> _SqliteField:
        return _SqliteField(self, field_path(name))

    def _eq(self, fld: _Field, v: Any) -> str:
        if v is None or type(v) is bool:
            return f"({fld.t()} = '{json.dumps(v)}')"  # 'null', 'true' or 'false': chosen by type
        kind = "= 'text'" if type(v) is str else self.NUMBER
        return f"({fld.t()} {kind} AND {fld.x()} = {self.param(v)})"

    def compare(self, f: Compare) -> str:
        fld, v, op = self.field(f.field), f.value, f.op
        if op == "==":
            return f"COALESCE({self._eq(fld, v)}, FALSE)"
        if op == "!=":
            return f"({fld.t()} IS NOT NULL AND NOT COALESCE({self._eq(fld, v)}, FALSE))"
        if v is None or type(v) is bool:
            return "FALSE"
        kind = "= 'text'" if type(v) is str else self.NUMBER
        return f"COALESCE({fld.t()} {kind} AND {fld.x()} {op} {self.param(v)}, FALSE)"

    def isin(self, f: In) -> str:
        fld = self.field(f.field)
        prefix = f"{fld.t()} IS NOT NULL AND NOT " if f.negated else ""
        strs = [v for v in f.values if type(v) is str]
        nums = [v for v in f.values if type(v) in (int, float)]
        parts = []
        if strs:
            parts.append(f"({fld.t()} = 'text' AND {fld.x()} IN "
                         f"(SELECT value FROM json_each({self.param(json.dumps(strs))})))")
        if nums:
            parts.append(f"({fld.t()} {self.NUMBER} AND {fld.x()} IN "
                         f"(SELECT value FROM json_each({self.param(json.dumps(nums))})))")
        for literal in dict.fromkeys(json.dumps(v) for v in f.values if v is None or type(v) is bool):
            parts.append(f"({fld.t()} = '{literal}')")
        test = f"COALESCE({' OR '.join(parts) or 'FALSE'}, FALSE)"
        return f"({prefix}{test})" if f.negated else test

    def startswith(self, f: StartsWith) -> str:
        fld = self.field(f.field)
        return (f"COALESCE({fld.t()} = 'text' AND "
                f"substr({fld.x()}, 1, length({self.param(f.prefix)})) = {self.param(f.prefix)}, FALSE)")

    def contains(self, f: Contains) -> str:
        # Placeholders are positional: every piece is built in the order it appears in the text.
        fld, v = self.field(f.field), f.value
        if type(v) is str:
            head = f"CASE {fld.t()} WHEN 'text' THEN instr({fld.x()}, {self.param(v)}) > 0 WHEN 'array' THEN "
        else:
            head = f"CASE WHEN {fld.t()} = 'array' THEN "
        source = fld.each()
        if v is None or type(v) is bool:
            match = f"_ja.type = '{json.dumps(v)}'"
        else:
            kind = "= 'text'" if type(v) is str else self.NUMBER
            match = f"_ja.type {kind} AND _ja.value = {self.param(v)}"
        return f"COALESCE({head}EXISTS (SELECT 1 FROM {source} WHERE {match}) ELSE FALSE END, FALSE)"


class _Postgres(_Builder):
    TEXT = "string"

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${self.offset + len(self.params)}"

    def field(self, name: str) -> _PgField:
        return _PgField(self, field_path(name))

    def _json(self, value: Any) -> str:
        return f"{self.param(json.dumps(value))}::text::jsonb"

    def compare(self, f: Compare) -> str:
        fld, v, op = self.field(f.field), f.value, f.op
        if op in ("==", "!="):
            return f"COALESCE({fld.x()} {'=' if op == '==' else '<>'} {self._json(v)}, FALSE)"
        if v is None or type(v) is bool:
            return "FALSE"
        if type(v) is str:
            return (f"COALESCE({fld.t()} = 'string' AND ({fld.x()} #>> '{{}}') COLLATE \"C\" {op} "
                    f"{self.param(v)}::text COLLATE \"C\", FALSE)")
        return f"COALESCE({fld.t()} = 'number' AND {fld.x()} {op} {self._json(v)}, FALSE)"

    def isin(self, f: In) -> str:
        fld = self.field(f.field)
        test = f"{fld.x()} IN (SELECT jsonb_array_elements({self._json(list(f.values))}))"
        if f.negated:  # NULL IN (<empty>) is FALSE, not NULL: test presence explicitly
            return f"COALESCE({fld.x()} IS NOT NULL AND NOT ({test}), FALSE)"
        return f"COALESCE({test}, FALSE)"

    def startswith(self, f: StartsWith) -> str:
        fld = self.field(f.field)
        return (f"COALESCE({fld.t()} = 'string' AND starts_with({fld.x()} #>> '{{}}', "
                f"{self.param(f.prefix)}::text), FALSE)")

    def contains(self, f: Contains) -> str:
        fld, v = self.field(f.field), f.value
        has = (f"EXISTS (SELECT 1 FROM jsonb_array_elements({fld.x()}) AS _ja(v) "
               f"WHERE _ja.v = {self._json(v)})")
        if type(v) is str:
            return (f"COALESCE(CASE {fld.t()} WHEN 'array' THEN {has} WHEN 'string' THEN "
                    f"strpos({fld.x()} #>> '{{}}', {self.param(v)}::text) > 0 ELSE FALSE END, FALSE)")
        return f"COALESCE(CASE WHEN {fld.t()} = 'array' THEN {has} ELSE FALSE END, FALSE)"


_DIALECTS: dict[str, type[_Builder]] = {"postgres": _Postgres, "sqlite": _Sqlite}


def to_sql(f: object, *, dialect: str, column: str = "metadata", param_offset: int = 0) -> SqlFilter:
    """Translate a filter (any form :func:`to_filter` accepts) into a :class:`SqlFilter`.

    ``dialect`` is ``"postgres"`` (``$n`` placeholders numbered from ``param_offset + 1``, so the
    condition can follow other parameters) or ``"sqlite"`` (``?`` placeholders, in order). ``column``
    names the JSON column; it must be a plain identifier, optionally qualified (``t.metadata``).
    """
    builder_cls = _DIALECTS.get(dialect)
    if builder_cls is None:
        raise FilterError(f"unknown SQL dialect {dialect!r:.40}; use one of {', '.join(sorted(_DIALECTS))}")
    if type(column) is not str or not _COLUMN_RE.fullmatch(column):
        raise FilterError(
            f"column must be a plain SQL identifier such as 'metadata' or 't.metadata', got {column!r:.60}"
        )
    if type(param_offset) is not int or param_offset < 0 or (param_offset and dialect != "postgres"):
        raise FilterError(f"param_offset must be an int >= 0 (postgres only), got {param_offset!r:.20}")
    builder = builder_cls(column, param_offset)
    sql = builder.node(to_filter(f), True)
    return SqlFilter(sql=sql, params=builder.params, exact=builder.exact)


__all__ = ["SqlFilter", "to_sql"]
