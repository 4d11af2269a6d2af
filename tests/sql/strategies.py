"""Hypothesis strategies: metadata and filters over a small, hostile vocabulary (so filters match)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mcastlab.filters import (
    And,
    Compare,
    Contains,
    Exists,
    Filter,
    In,
    Not,
    Or,
    StartsWith,
    Version,
    field_name,
)

#: Top-level keys: plain, SQL-hostile, JSON-path-hostile, non-ASCII, and one with a dot in it.
KEYS = ["status", "n", "fw", "tags", "it's", 'we"ird', "x'); DROP TABLE identities; --", "$1", "?", "a.b",
        "back\\slash", "%_", "ключ", "🎉", "sp ace", "hw"]
NESTED = ["model", "rev", "`q`"]

STRINGS = ["", "a", "ab", "b", "online", "1.2.10", "1.2.9", "1.10.0", "1.2.3-rc1", "v2", "it's", '"q"',
           "%", "_x", "a%b", "$1", "?", "\\", "ключ", "🎉", "Ab", "a\nb", "\u00e9", "e\u0301", "\uffff"]
NUMBERS = [-1, 0, 1, 2, 5, -1.5, 0.0, 0.5, 1.0, 2.5, 1e20, 2**40, 3.0000000000000004]
SCALARS = st.one_of(st.sampled_from(STRINGS), st.sampled_from(NUMBERS), st.booleans(), st.none())
VERSIONS = st.sampled_from(["1.2.10", "1.2.9", "1.2", "1.10.0", "1.2.3-rc1", "v2"]).map(Version)
OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])


def _value(depth: int) -> st.SearchStrategy[Any]:
    if depth <= 0:
        return SCALARS
    return st.one_of(
        SCALARS, SCALARS,
        st.lists(SCALARS, max_size=3),
        st.dictionaries(st.sampled_from(NESTED), _value(depth - 1), max_size=2),
    )


METADATA = st.dictionaries(st.sampled_from(KEYS), _value(1), max_size=6)

FIELDS = st.one_of(
    st.sampled_from(KEYS).map(lambda k: field_name([k])),
    st.tuples(st.sampled_from(KEYS), st.sampled_from(NESTED)).map(field_name),
)


def _leaf() -> st.SearchStrategy[Filter]:
    return st.one_of(
        st.builds(Compare, FIELDS, OPS, st.one_of(SCALARS, SCALARS, VERSIONS)),
        st.builds(In, FIELDS, st.lists(SCALARS, max_size=3).map(tuple), st.booleans()),
        st.builds(Exists, FIELDS),
        st.builds(StartsWith, FIELDS, st.sampled_from(STRINGS)),
        st.builds(Contains, FIELDS, SCALARS),
    )


def _combine(children: st.SearchStrategy[Filter]) -> st.SearchStrategy[Filter]:
    pairs = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(st.builds(And, pairs), st.builds(Or, pairs), st.builds(Not, children))


FILTERS = st.recursive(_leaf(), _combine, max_leaves=6)

__all__ = ["FILTERS", "KEYS", "METADATA", "STRINGS"]
