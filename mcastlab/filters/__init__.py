"""Filters: select identities by their metadata.

A filter is accepted in four forms everywhere (:func:`to_filter`): ``None`` (match all); a dict of
equalities joined by AND (``{"status": "online", "tier": "premium"}``); a string
(``'status == "online" and firmware_version < v"1.2.3"'``, see :func:`parse`); or a :class:`Filter`
built in Python (``(F("status") == "online") & F("region").isin(["us-west", "us-east"])``).

:func:`compile_filter` checks the limits (``max_filter_depth``, ``max_clauses``) and returns a
:class:`CompiledFilter`: a fast predicate over a metadata dict, an index plan (:func:`plan_filter`)
and the canonical text. :func:`to_sql` pushes a filter down to PostgreSQL or SQLite.

String syntax (pandas-``query``-like; keywords case-insensitive)
------------------------------------------------------------------
* comparisons ``== != < <= > >=``: ``count >= 3``, ``name != "x"``, ``fw < v"1.2.10"``;
* ``x in [1, 2]``, ``x not in ["a", "b"]``; ``tags contains "x"``; ``exists(x)`` or ``x exists``;
  ``name.startswith("dev")`` (canonical) or ``startswith(name, "dev")``;
* ``and``, ``or``, ``not`` (also ``&``, ``|``, ``~``), precedence not > and > or, parentheses;
  ``true`` matches everything, ``false`` nothing;
* literals: ``"..."`` or ``'...'`` strings with escapes (``\\n \\t \\" \\\\ \\uXXXX`` ...), ints, floats,
  ``true``/``false``/``null`` (also ``True``/``False``/``None``), versions ``v"1.2.3"``, lists ``[...]``;
* field names: identifiers joined by dots for nested dicts (``hw.model`` reads
  ``metadata["hw"]["model"]``); backquotes for anything else: ```weird key```, ```a.b``` (a top-level
  key containing a dot), ```a.b`.c``; a backquote inside backquotes is doubled.

Errors raise :class:`~mcastlab.errors.FilterSyntaxError` with the 0-based ``position``. User text is
never evaluated: a hand-written tokenizer and recursive-descent parser build the AST.

Semantics
---------
* **Strict types.** ``5`` does not equal ``"5"``; ``True`` is not ``1``; int and float compare
  numerically (``5 == 5.0``). ``==`` between different types is false and ``!=`` is true (``!=`` is
  always "present and not ``==``"). Ordering (``< <= > >=``) is defined for number vs number, str vs
  str (by code point) and version vs version; anything else (bool, null, lists, dicts, mixed types) is
  false, never an error.
* **Missing fields (two-valued).** Any comparison on a field the identity lacks is false, ``!=`` and
  ``not in`` included; ``not`` negates the whole sub-expression, so ``not (region == "x")`` is true for
  an identity without ``region``. ``exists(f)`` is true iff the key is present, even if its value is
  null. A dotted path with a missing step (or a step that is not a dict) is a missing field.
* ``x in [..]`` is true iff the value equals (strictly) some element; ``x not in [..]`` iff the field is
  present and equals none.
* ``x contains v``: ``x`` is a str and ``v`` a str occurring in it, or ``x`` is a list holding an element
  strictly equal to ``v``. ``x.startswith(p)``: ``x`` is a str beginning with ``p``. Otherwise false.
* **Versions.** ``Version("1.2.10")`` / ``v"1.2.10"`` compares against str field values parsed as
  versions (see :class:`Version`): numeric components compare numerically (``1.2.9 < 1.2.10 <
  1.10.0``), trailing zeros do not count (``1.2 == 1.2.0``), a pre-release sorts before its release
  (``1.2.3-rc1 < 1.2.3``), build metadata (``+...``) is ignored. A field value that is not a str
  holding a version makes ``== < <= > >=`` false (and ``!=`` true).

Values in filters are str, bool, None, ints within the signed 64-bit range, finite floats, and (for
comparisons) versions; ``in`` lists hold at most 10,000 of them. Whatever the configured limits, no
filter nests deeper than :data:`HARD_MAX_DEPTH` or has more than :data:`HARD_MAX_CLAUSES` clauses.

Backends
--------
* Index sets: :func:`plan_filter` / :func:`index_token` (top-level scalar fields only; see ``_plan``).
* SQL: :func:`to_sql` returns a :class:`SqlFilter`; ``exact`` is False only when the filter compares
  versions, and then the condition is a superset to re-check with the predicate.
* Property tests: ``mcastlab.filters.strategies`` (needs hypothesis) draws metadata and filters.
"""

from ._ast import (
    HARD_MAX_CLAUSES,
    HARD_MAX_DEPTH,
    MAX_IN_VALUES,
    All,
    And,
    Compare,
    Contains,
    Exists,
    Filter,
    In,
    Not,
    Or,
    StartsWith,
)
from ._codegen import MISSING, Predicate, lookup, strict_eq
from ._compile import DEFAULT_MAX_CLAUSES, DEFAULT_MAX_DEPTH, CompiledFilter, check_limits, compile_filter
from ._convert import to_filter
from ._field import F, Field, field
from ._lexical import field_name, field_path, render_field
from ._parser import parse
from ._plan import AllOf, AnyOf, IndexPlan, Term, index_token, plan_filter, plan_is_exact
from ._sql import SqlFilter, to_sql
from ._version import Version, version_key

__all__ = [
    "DEFAULT_MAX_CLAUSES",
    "DEFAULT_MAX_DEPTH",
    "HARD_MAX_CLAUSES",
    "HARD_MAX_DEPTH",
    "MAX_IN_VALUES",
    "MISSING",
    "All",
    "AllOf",
    "And",
    "AnyOf",
    "Compare",
    "CompiledFilter",
    "Contains",
    "Exists",
    "F",
    "Field",
    "Filter",
    "In",
    "IndexPlan",
    "Not",
    "Or",
    "Predicate",
    "SqlFilter",
    "StartsWith",
    "Term",
    "Version",
    "check_limits",
    "compile_filter",
    "field",
    "field_name",
    "field_path",
    "index_token",
    "lookup",
    "parse",
    "plan_filter",
    "plan_is_exact",
    "render_field",
    "strict_eq",
    "to_filter",
    "to_sql",
    "version_key",
]
