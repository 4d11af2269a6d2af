"""Index-friendly pre-filters: conditions implied by a filter that an SQL index can answer.

The exact WHERE fragment from :func:`mcastlab.filters.to_sql` wraps comparisons (``COALESCE``, type
checks) so that SQL's three-valued logic matches the filter rules; that shape hides them from the
query planner. This module derives a *superset* condition from the same filter, written in exactly the
form an index serves, and the registries AND it with the exact fragment:

* PostgreSQL: every ``field == value`` (any depth, any scalar) and ``field in [...]`` in a positive
  position becomes ``metadata @> '{"field": value}'`` - exact for scalars, answered by the GIN
  ``jsonb_path_ops`` index on ``metadata``;
* SQLite: ``==``, ``in``, ``<``/``<=``/``>``/``>=`` and ``startswith`` on a field listed in
  ``SqliteRegistry(indexes=...)`` become comparisons of ``json_extract(metadata, '$.field')``, the
  expression of that field's index.

Only leaves under And/Or count (never under Not); an Or needs a pre-filter for every child. Each
returned condition is implied by the filter, so adding it never drops a match.
Fragments use ``?`` placeholders; PostgreSQL callers renumber them with :func:`number_params`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from typing import Any

from mcastlab.filters import And, Compare, Filter, In, Or, StartsWith, field_path

Fragment = tuple[str, list[Any]]
Leaf = Callable[[Filter], Fragment | None]

_SIMPLE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_FALSE: Fragment = ("0 = 1", [])


def prefilter(f: Filter, leaf: Leaf) -> Fragment | None:
    """A condition implied by ``f`` that ``leaf`` can index, or None."""
    if isinstance(f, And):
        parts = [p for p in (prefilter(c, leaf) for c in f.children) if p is not None]
        return _join(parts, " AND ") if parts else None
    if isinstance(f, Or):
        alts = [prefilter(c, leaf) for c in f.children]
        if any(a is None for a in alts):
            return None
        return _join(alts, " OR ")  # type: ignore[arg-type]
    return leaf(f)


def _join(parts: list[Fragment], sep: str) -> Fragment:
    if len(parts) == 1:
        return parts[0]
    return sep.join(f"({sql})" for sql, _ in parts), [p for _, params in parts for p in params]


def _scalar(v: Any) -> bool:
    return v is None or type(v) in (str, int, float, bool)


# --------------------------------------------------------------------------- PostgreSQL


def _containment(path: tuple[str, ...], value: Any) -> str:
    doc: Any = value
    for key in reversed(path):
        doc = {key: doc}
    return json.dumps(doc)


def pg_leaf(column: str) -> Leaf:
    """Pre-filter leaves for PostgreSQL: ``column @> '{...}'`` for equality and ``in``."""

    def leaf(f: Filter) -> Fragment | None:
        if isinstance(f, Compare) and f.op == "==" and _scalar(f.value):
            return f"{column} @> ?::jsonb", [_containment(field_path(f.field), f.value)]
        if isinstance(f, In) and not f.negated:
            if not f.values:
                return _FALSE
            path = field_path(f.field)
            docs = list(dict.fromkeys(_containment(path, v) for v in f.values))
            return " OR ".join(f"{column} @> ?::jsonb" for _ in docs), docs
        return None

    return leaf


def number_params(sql: str, start: int) -> str:
    """Replace each ``?`` in ``sql`` (written by this module: no ``?`` elsewhere) with ``$start``, ..."""
    parts = sql.split("?")
    out = [parts[0]]
    for i, part in enumerate(parts[1:]):
        out.append(f"${start + i}{part}")
    return "".join(out)


# --------------------------------------------------------------------------- SQLite


def sqlite_path(field: str) -> str:
    """The JSON path literal for a field name made of plain identifiers (checked by the caller)."""
    return "$." + field


def is_simple_field(field: str) -> bool:
    """True if ``field`` is dotted plain identifiers, safe inside a JSON path literal."""
    return bool(_SIMPLE_PATH.fullmatch(field))


def _upper_bound(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix`` (code point order)."""
    chars = list(prefix)
    while chars:
        c = ord(chars[-1]) + 1
        if c <= 0x10FFFF:
            chars[-1] = chr(0xE000 if 0xD800 <= c <= 0xDFFF else c)
            return "".join(chars)
        chars.pop()
    return None


def _sqlite_value(v: Any) -> Any:
    return int(v) if type(v) is bool else v  # json_extract gives 1/0 for true/false


def sqlite_leaf(column: str, indexed: Collection[str]) -> Leaf:
    """Pre-filter leaves for SQLite over the expression indexes of the ``indexed`` fields."""

    def expr(field: str) -> str | None:
        return f"json_extract({column}, '{sqlite_path(field)}')" if field in indexed else None

    def leaf(f: Filter) -> Fragment | None:
        if isinstance(f, Compare):
            e = expr(f.field)
            v = f.value
            if e is None or v is None or not _scalar(v) or f.op == "!=":
                return None
            if f.op == "==":
                return f"{e} = ?", [_sqlite_value(v)]
            if type(v) is bool:
                return None
            return f"{e} {f.op} ?", [v]
        if isinstance(f, In) and not f.negated:
            e = expr(f.field)
            if e is None or any(v is None for v in f.values):
                return None
            if not f.values:
                return _FALSE
            values = list(dict.fromkeys(_sqlite_value(v) for v in f.values))
            return f"{e} IN ({', '.join('?' for _ in values)})", values
        if isinstance(f, StartsWith) and f.prefix:
            e = expr(f.field)
            if e is None:
                return None
            upper = _upper_bound(f.prefix)
            if upper is None:
                return f"{e} >= ?", [f.prefix]
            return f"{e} >= ? AND {e} < ?", [f.prefix, upper]
        return None

    return leaf


__all__ = ["is_simple_field", "number_params", "pg_leaf", "prefilter", "sqlite_leaf", "sqlite_path"]
