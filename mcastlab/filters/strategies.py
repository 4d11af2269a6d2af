"""Hypothesis strategies for property tests of filters and of backends that evaluate them.

Requires ``hypothesis`` (a dev dependency); import this module from tests only. A backend's contract
test can draw ``metadata_dicts()`` and ``filters()`` and check that the backend returns exactly the
identities for which ``compile_filter(f, max_depth=None, max_clauses=None).predicate`` is true.

Values are drawn from small pools on purpose, so that equal-looking values of different types
(``1``, ``1.0``, ``True``, ``"1"``) and versions (``"1.2.9"``, ``"1.2.10"``) meet often. Strings never
hold U+0000 or lone surrogates (SQLite's JSON functions and UTF-8 cannot carry them) and integers stay
within the signed 64-bit range.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ._ast import All, And, Compare, Contains, Exists, Filter, In, Not, Or, StartsWith
from ._lexical import field_name
from ._version import Version, version_key

TOP_KEYS = ("a", "b", "status", "hw", "weird key", "a.b", 'q"uote', "é", "and")
NESTED_KEYS = ("x", "model", "a.b")
VERSION_TEXTS = (
    "1.2.3", "1.2.9", "1.2.10", "1.10.0", "1.2", "1.2.0", "1.2.3-rc1", "1.2.3-rc10", "v2", "1.0+b1",
)
_ALPHABET = st.characters(codec="utf-8", exclude_characters="\x00")
_INTERESTING = (0, 1, -1, 2, True, False, None, 0.0, 1.0, -0.0, 0.5, 2.5, 1e16, 2**53 + 1, 2**63 - 1,
                -(2**63), "", "1", "a", "ab", "b", "é", 'q"', "\\", "A")


def texts() -> st.SearchStrategy[str]:
    """Short strings with quotes, backslashes and non-ASCII, plus version-like strings."""
    return st.one_of(
        st.text(_ALPHABET, max_size=5),
        st.text(st.sampled_from('ab"\\\'é .`'), max_size=4),
        st.sampled_from(VERSION_TEXTS),
    )


def scalars() -> st.SearchStrategy[Any]:
    """JSON scalars usable both in metadata and as filter values."""
    return st.one_of(
        st.sampled_from(_INTERESTING),
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.integers(min_value=-3, max_value=3),
        st.floats(allow_nan=False, allow_infinity=False),
        texts(),
    )


def values() -> st.SearchStrategy[Any]:
    """Metadata values: scalars, lists of scalars, small nested dicts."""
    return st.one_of(
        scalars(),
        st.lists(scalars(), max_size=4),
        st.dictionaries(st.sampled_from(NESTED_KEYS), st.one_of(scalars(), st.lists(scalars(), max_size=3)),
                        max_size=3),
    )


def metadata_dicts() -> st.SearchStrategy[dict[str, Any]]:
    """Metadata dicts over a small key pool (so that filters hit present and missing keys)."""
    return st.dictionaries(st.sampled_from(TOP_KEYS), values(), max_size=6)


def field_names() -> st.SearchStrategy[str]:
    """Canonical field names: top-level keys and two-step dotted paths."""
    return st.one_of(
        st.sampled_from(TOP_KEYS).map(lambda k: field_name((k,))),
        st.tuples(st.sampled_from(TOP_KEYS), st.sampled_from(NESTED_KEYS)).map(field_name),
    )


def versions() -> st.SearchStrategy[Version]:
    return st.sampled_from(VERSION_TEXTS).map(Version)


def leaves(
    names: st.SearchStrategy[str] | None = None,
    values: st.SearchStrategy[Any] | None = None,
    prefixes: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Filter]:
    """Leaf filters over the given field names, scalar values and startswith prefixes."""
    names = field_names() if names is None else names
    values = scalars() if values is None else values
    prefixes = texts() if prefixes is None else prefixes
    ops = st.sampled_from(("==", "!=", "<", "<=", ">", ">="))
    return st.one_of(
        st.builds(Compare, names, ops, values),
        st.builds(Compare, names, ops, versions()),
        st.builds(In, names, st.lists(values, max_size=4).map(tuple), st.booleans()),
        st.builds(Exists, names),
        st.builds(StartsWith, names, prefixes),
        st.builds(Contains, names, values),
    )


def _trees(leaf: st.SearchStrategy[Filter], max_leaves: int) -> st.SearchStrategy[Filter]:
    def extend(children: st.SearchStrategy[Filter]) -> st.SearchStrategy[Filter]:
        group = st.lists(children, min_size=2, max_size=3).map(tuple)
        return st.one_of(st.builds(And, group), st.builds(Or, group), st.builds(Not, children))

    return st.recursive(st.one_of(leaf, st.just(All())), extend, max_leaves=max_leaves)


def filters(max_leaves: int = 8) -> st.SearchStrategy[Filter]:
    """Random filter trees (And/Or with 2-3 children, Not, All, leaves)."""
    return _trees(leaves(), max_leaves)


@st.composite
def filters_for(
    draw: st.DrawFn, *metadata: dict[str, Any], max_leaves: int = 8
) -> Filter:
    """Random filters biased towards the given metadata: its paths, its values and their prefixes,
    so that conditions are often true (plain :func:`filters` mostly miss). Drawn imperatively, which
    is much cheaper than building strategies per example."""
    pairs: list[tuple[str, Any]] = []  # (field name, a scalar found there)

    def collect(name: str, value: Any) -> None:
        before = len(pairs)
        for v in value if isinstance(value, list) else [value]:
            if v is None or isinstance(v, str | int | float):
                pairs.append((name, v))
        if len(pairs) == before:
            pairs.append((name, None))

    for meta in metadata:
        for key, value in meta.items():
            if isinstance(value, dict):
                for sub, inner in value.items():
                    collect(field_name((key, sub)), inner)
            collect(field_name((key,)), value)

    def leaf() -> Filter:
        if pairs and draw(st.integers(0, 3)) < 3:
            name, seen = pairs[draw(st.integers(0, len(pairs) - 1))]
        else:
            name, seen = draw(field_names()), None

        def value() -> Any:
            return seen if draw(st.integers(0, 2)) < 2 else draw(scalars())

        ops = st.sampled_from(("==", "!=", "<", "<=", ">", ">="))
        kind = draw(st.integers(0, 6))
        if kind == 0:
            version = Version(seen) if version_key(seen) is not None else draw(versions())
            return Compare(name, draw(ops), version)
        if kind <= 2:
            return Compare(name, draw(ops), value())
        if kind == 3:
            return In(name, tuple(value() for _ in range(draw(st.integers(0, 3)))), draw(st.booleans()))
        if kind == 4:
            return Exists(name)
        if kind == 5:
            prefix = seen if isinstance(seen, str) else draw(texts())
            return StartsWith(name, prefix[: draw(st.integers(0, len(prefix)))])
        return Contains(name, value())

    def tree(budget: int) -> Filter:
        kind = draw(st.integers(0, 9)) if budget > 1 else 0
        if kind <= 4:
            return All() if draw(st.integers(0, 15)) == 15 else leaf()
        if kind == 5:
            return Not(tree(budget - 1))
        n = draw(st.integers(2, 3))
        children = tuple(tree(budget // n) for _ in range(n))
        return And(children) if kind <= 7 else Or(children)

    return tree(max_leaves)


__all__ = [
    "NESTED_KEYS",
    "TOP_KEYS",
    "VERSION_TEXTS",
    "field_names",
    "filters",
    "filters_for",
    "leaves",
    "metadata_dicts",
    "scalars",
    "texts",
    "values",
    "versions",
]
