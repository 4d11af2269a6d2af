"""Index planning: candidates(plan) is always a superset of the matches; and the complexity limits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcastlab.errors import ConfigError, FilterTooComplexError
from mcastlab.filters import (
    AllOf,
    AnyOf,
    F,
    IndexPlan,
    Term,
    compile_filter,
    index_token,
    parse,
    plan_filter,
)
from mcastlab.filters.strategies import filters_for, metadata_dicts


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("x", "s:x"), ("", "s:"), ("5", "s:5"), (5, "n:5"), (5.0, "n:5"), (-0.0, "n:0"), (0, "n:0"),
        (0.5, "n:0.5"), (1e16, "n:10000000000000000"), (1e300, "n:" + str(int(1e300))),
        (2**70, "n:" + str(2**70)),
        (True, "b:1"), (False, "b:0"), (None, "z:"),
        ([1], None), ({"a": 1}, None), (float("nan"), None), (float("inf"), None),
    ],
)
def test_index_token(value: Any, token: str | None) -> None:
    assert index_token(value) == token


def test_index_tokens_separate_types() -> None:
    assert len({index_token(v) for v in (1, True, "1", None, 0, False, "")}) == 7
    assert index_token(1) == index_token(1.0) and index_token(True) != index_token(1)


@pytest.mark.parametrize(
    ("text", "plan"),
    [
        ('a == "x"', Term("a", "s:x")),
        ("a == 1.0", Term("a", "n:1")),
        ("a == null", Term("a", "z:")),
        ("a in [1, 'x', true]", AnyOf((Term("a", "n:1"), Term("a", "s:x"), Term("a", "b:1")))),
        ("a in [1, 1.0]", Term("a", "n:1")),
        ("a in []", AnyOf(())),
        ("a == 1 and b == 2", AllOf((Term("a", "n:1"), Term("b", "n:2")))),
        ("a == 1 and b != 2", Term("a", "n:1")),
        ("a == 1 or b == 2", AnyOf((Term("a", "n:1"), Term("b", "n:2")))),
        ("a == 1 or (b in [2, 3])", AnyOf((Term("a", "n:1"), Term("b", "n:2"), Term("b", "n:3")))),
        ("a == 1 or b != 2", None),
        ("a == 1 and (b == 2 or c > 1)", Term("a", "n:1")),
        ("`a.b` == 1", Term("a.b", "n:1")),
        ("hw.model == 1", None),
        ("a != 1", None), ("a < 1", None), ("exists(a)", None), ("not a == 1", None),
        ("a not in [1]", None), ("a contains 1", None), ("a.startswith('x')", None), ('a == v"1.0"', None),
        ("true", None),
    ],
)
def test_plan_shapes(text: str, plan: IndexPlan | None) -> None:
    assert plan_filter(parse(text)) == plan
    assert compile_filter(text).plan == plan


def _candidates(plan: IndexPlan, index: dict[tuple[str, str], set[int]], everyone: set[int]) -> set[int]:
    if isinstance(plan, Term):
        return index.get((plan.field, plan.token), set())
    sets = [_candidates(p, index, everyone) for p in plan.parts]
    if isinstance(plan, AnyOf):
        return set().union(*sets)
    return set(everyone).intersection(*sets)


@settings(max_examples=200)
@given(st.data())
def test_plan_candidates_are_a_superset_of_matches(data: st.DataObject) -> None:
    registry = data.draw(st.lists(metadata_dicts(), max_size=8), label="registry")
    f = data.draw(filters_for(*registry), label="filter")
    index: dict[tuple[str, str], set[int]] = {}
    for i, meta in enumerate(registry):
        for key, value in meta.items():  # what backends index: top-level scalar fields
            token = index_token(value)
            if token is not None:
                index.setdefault((key, token), set()).add(i)
    pred = compile_filter(f, max_depth=None, max_clauses=None).predicate
    matches = {i for i, meta in enumerate(registry) if pred(meta)}
    plan = plan_filter(f)
    if plan is not None:
        assert matches <= _candidates(plan, index, set(range(len(registry))))


# --------------------------------------------------------------------------- limits


def test_depth_limit_message_names_config_key() -> None:
    text = "a == 1 and (b == 1 or (c == 1 and (d == 1 or (e == 1 and f == 1))))"
    assert compile_filter(text, max_depth=None).depth == 6
    with pytest.raises(FilterTooComplexError) as info:
        compile_filter(text)
    assert "6 levels deep" in str(info.value) and "limit is 5" in str(info.value)
    assert "max_filter_depth" in str(info.value)
    assert compile_filter(text, max_depth=6).depth == 6


def test_clause_limit_message_names_config_key() -> None:
    many = {f"k{i}": i for i in range(21)}
    with pytest.raises(FilterTooComplexError) as info:
        compile_filter(many)
    assert "21 clauses" in str(info.value) and "limit is 20" in str(info.value)
    assert "max_clauses" in str(info.value)
    assert compile_filter(many, max_clauses=21).clauses == 21
    assert compile_filter(many, max_clauses=None).clauses == 21
    assert compile_filter(F("x").isin(range(5000))).clauses == 1  # one in-list is one clause


def test_limits_zero_allow_only_match_all() -> None:
    assert compile_filter(None, max_depth=0, max_clauses=0).matches_all
    with pytest.raises(FilterTooComplexError):
        compile_filter("a == 1", max_depth=0)


@pytest.mark.parametrize("bad", [-1, 1.5, "5", True])
def test_bad_limits_are_config_errors(bad: Any) -> None:
    with pytest.raises(ConfigError) as info:
        compile_filter("a == 1", max_depth=bad)
    assert info.value.key == "max_filter_depth"
    with pytest.raises(ConfigError) as info:
        compile_filter("a == 1", max_clauses=bad)
    assert info.value.key == "max_clauses"
