"""``compile_filter``: any filter form -> limits checked -> :class:`CompiledFilter` (cached)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mcastlab.errors import ConfigError, FilterTooComplexError

from ._ast import All, And, Filter, Not, Or
from ._codegen import Predicate, build_predicate
from ._convert import to_filter
from ._parser import parse
from ._plan import IndexPlan, plan_filter, plan_is_exact

DEFAULT_MAX_DEPTH = 5
DEFAULT_MAX_CLAUSES = 20
_CACHED_TEXT_LENGTH = 4096  # longer filter strings are parsed and compiled every time (bounded memory)


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A filter ready to run: the AST, its predicate, its index plan and its measurements.

    Call ``predicate(metadata)`` (or the object itself) to test one identity's metadata; in hot loops
    bind ``predicate`` to a local first, which skips one call. ``plan`` (``None`` = full scan) yields a
    superset of the matches from equality indexes (``exact``: exactly the matches, so a backend need not
    run the predicate); ``matches_all`` says the predicate is always true.
    """

    filter: Filter
    predicate: Predicate
    plan: IndexPlan | None
    text: str
    depth: int
    clauses: int
    matches_all: bool
    exact: bool = False

    def __call__(self, metadata: Mapping[str, Any]) -> bool:
        return self.predicate(metadata)


def _constant(f: Filter) -> bool | None:
    """True/False if ``f`` is the same for every identity (built only from All), else None."""
    if isinstance(f, All):
        return True
    if isinstance(f, Not):
        inner = _constant(f.child)
        return None if inner is None else not inner
    if isinstance(f, And | Or):
        values = [_constant(c) for c in f.children]
        if isinstance(f, And):
            return False if False in values else (True if all(v is True for v in values) else None)
        return True if True in values else (False if all(v is False for v in values) else None)
    return None


def _always_true(_metadata: Mapping[str, Any]) -> bool:
    return True


@lru_cache(maxsize=512)
def _compile_tree(f: Filter) -> CompiledFilter:
    constant = _constant(f)
    predicate: Predicate = _always_true if constant is True else build_predicate(f)[0]
    return CompiledFilter(
        filter=f,
        predicate=predicate,
        plan=plan_filter(f),
        text=str(f),
        depth=f.depth,
        clauses=f.clauses,
        matches_all=constant is True,
        exact=plan_is_exact(f),
    )


def _check_limit(value: int | None, key: str) -> None:
    if value is not None and (type(value) is not int or value < 0):
        raise ConfigError(f"{key} must be a whole number >= 0 or None (no limit), got {value!r:.40}", key=key)


def check_limits(f: Filter, *, max_depth: int | None, max_clauses: int | None) -> None:
    """Raise :class:`FilterTooComplexError` if ``f`` is deeper or has more clauses than allowed."""
    _check_limits(f.depth, f.clauses, max_depth, max_clauses)


def _check_limits(depth: int, clauses: int, max_depth: int | None, max_clauses: int | None) -> None:
    _check_limit(max_depth, "max_filter_depth")
    _check_limit(max_clauses, "max_clauses")
    if max_depth is not None and depth > max_depth:
        raise FilterTooComplexError(
            f"filter nests {depth} levels deep; the limit is {max_depth}. Simplify the filter or raise "
            "Config.max_filter_depth"
        )
    if max_clauses is not None and clauses > max_clauses:
        raise FilterTooComplexError(
            f"filter has {clauses} clauses (conditions); the limit is {max_clauses}. Use 'x in [...]' "
            "instead of chains of ==, or raise Config.max_clauses"
        )


@lru_cache(maxsize=512)
def _compile_text(text: str) -> CompiledFilter:
    return _compile_tree(parse(text))


def compile_filter(
    obj: object,
    *,
    max_depth: int | None = DEFAULT_MAX_DEPTH,
    max_clauses: int | None = DEFAULT_MAX_CLAUSES,
) -> CompiledFilter:
    """Convert ``obj`` (None, dict, str, Filter) with :func:`to_filter`, check limits, and compile.

    A :class:`CompiledFilter` passed in is checked against the limits and returned as it is.

    Compiled results are cached (by text for strings, by value for dicts and filters), so calling this
    per request with the same filter is cheap. ``None`` for a limit means no configured limit; the
    hard limits (:data:`HARD_MAX_DEPTH`, :data:`HARD_MAX_CLAUSES`) always apply.
    """
    if type(obj) is str and len(obj) <= _CACHED_TEXT_LENGTH:
        compiled = _compile_text(obj)
        _check_limits(compiled.depth, compiled.clauses, max_depth, max_clauses)
        return compiled
    if isinstance(obj, CompiledFilter):
        _check_limits(obj.depth, obj.clauses, max_depth, max_clauses)
        return obj
    f = to_filter(obj)
    _check_limits(f.depth, f.clauses, max_depth, max_clauses)
    return _compile_tree(f)


__all__ = ["DEFAULT_MAX_CLAUSES", "DEFAULT_MAX_DEPTH", "CompiledFilter", "check_limits", "compile_filter"]
