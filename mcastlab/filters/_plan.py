"""Index planning: turn a filter into lookups in equality indexes (``field -> token -> ids``).

Backends index the **top-level scalar fields** of each identity's metadata: for every key whose value
is a str, number, bool or null they store ``(key, index_token(value))``. Nested values (dotted paths),
lists and dicts are not indexed, so filters on them are not planned.

:func:`plan_filter` returns a plan whose candidate set is a **superset** of the identities the filter
matches (the backend then runs the predicate on the candidates), or ``None`` when only a full scan can
answer. Candidates of a :class:`Term` are the ids indexed under ``(field, token)``; of :class:`AllOf`
the intersection of its parts (a backend may skip parts it cannot resolve, which only widens the set);
of :class:`AnyOf` the union (``AnyOf(())`` is empty: ``x in []`` matches nothing).

:func:`plan_is_exact` tells when the plan's candidates are *exactly* the matches (only ``==`` / ``in``
on indexable top-level values, combined with and/or): a backend may then answer from its indexes and
deadlines alone, without reading or testing any metadata (what a multicast needs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ._ast import And, Compare, Filter, In, Or
from ._lexical import field_path


def index_token(value: Any) -> str | None:
    """A canonical, type-tagged token for an indexable scalar, or ``None`` if it is not indexable.

    ``"s:<text>"`` for str, ``"n:<number>"`` for int and float (``5`` and ``5.0`` both give ``"n:5"``),
    ``"b:1"``/``"b:0"`` for True/False (never the same as the numbers 1/0), ``"z:"`` for None.
    Lists, dicts, versions, NaN and infinities give ``None``.
    """
    t = type(value)
    if t is str:
        return "s:" + value
    if t is bool:
        return "b:1" if value else "b:0"
    if t is int:
        return f"n:{value}"
    if t is float:
        if not math.isfinite(value):
            return None
        if value.is_integer():
            return f"n:{int(value)}"
        return f"n:{value!r}"
    if value is None:
        return "z:"
    return None


@dataclass(frozen=True, slots=True)
class Term:
    """Identities whose top-level metadata key ``field`` has a value with token ``token``."""

    field: str
    token: str


@dataclass(frozen=True, slots=True)
class AllOf:
    """Intersection of the parts' candidate sets."""

    parts: tuple[IndexPlan, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Union of the parts' candidate sets."""

    parts: tuple[IndexPlan, ...]


IndexPlan = Term | AllOf | AnyOf


def _top_level_key(name: str) -> str | None:
    path = field_path(name)
    return path[0] if len(path) == 1 else None


def plan_filter(f: Filter) -> IndexPlan | None:
    """An index plan whose candidates are a superset of ``f``'s matches, or ``None`` (full scan)."""
    if isinstance(f, Compare):
        key = _top_level_key(f.field)
        token = index_token(f.value) if f.op == "==" else None
        return None if key is None or token is None else Term(key, token)
    if isinstance(f, In):
        key = _top_level_key(f.field)
        if f.negated or key is None:
            return None
        terms = tuple(dict.fromkeys(Term(key, index_token(v)) for v in f.values))  # type: ignore[arg-type]
        return terms[0] if len(terms) == 1 else AnyOf(terms)
    if isinstance(f, And):
        parts = [p for p in map(plan_filter, f.children) if p is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))
    if isinstance(f, Or):
        alts: list[IndexPlan] = []
        for child in f.children:
            plan = plan_filter(child)
            if plan is None:
                return None
            alts.extend(plan.parts if isinstance(plan, AnyOf) else (plan,))
        return AnyOf(tuple(dict.fromkeys(alts)))
    return None  # Not, !=, <, exists, startswith, contains, All: full scan


def plan_is_exact(f: Filter) -> bool:
    """True when :func:`plan_filter`'s candidates are exactly ``f``'s matches (see the module docstring)."""
    if isinstance(f, Compare):
        return f.op == "==" and _top_level_key(f.field) is not None and index_token(f.value) is not None
    if isinstance(f, In):
        return (not f.negated and _top_level_key(f.field) is not None
                and all(index_token(v) is not None for v in f.values))
    if isinstance(f, And | Or):
        return bool(f.children) and all(plan_is_exact(c) for c in f.children)
    return False


__all__ = ["AllOf", "AnyOf", "IndexPlan", "Term", "index_token", "plan_filter", "plan_is_exact"]
