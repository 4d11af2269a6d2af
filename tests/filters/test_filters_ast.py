"""AST nodes, the F() builder, to_filter and versions."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from mcastlab.errors import FilterError, FilterTooComplexError
from mcastlab.filters import (
    HARD_MAX_DEPTH,
    All,
    And,
    Compare,
    Contains,
    Exists,
    F,
    Field,
    Filter,
    In,
    Not,
    Or,
    StartsWith,
    Version,
    field,
    field_name,
    field_path,
    parse,
    to_filter,
    version_key,
)


def test_builder_operators() -> None:
    x = F("x")
    assert (x == 1) == Compare("x", "==", 1)
    assert (x != 1) == Compare("x", "!=", 1)
    assert (x < 1) == Compare("x", "<", 1)
    assert (x <= 1) == Compare("x", "<=", 1)
    assert (x > 1) == Compare("x", ">", 1)
    assert (x >= 1) == Compare("x", ">=", 1)
    assert (1 < x) == Compare("x", ">", 1)  # noqa: SIM300 - the reflected operator is the point
    assert ("online" == F("s")) == Compare("s", "==", "online")  # noqa: SIM300
    assert x.isin([1, 2]) == In("x", (1, 2))
    assert x.isin(v for v in (1, 2)) == In("x", (1, 2))
    assert x.notin([1]) == In("x", (1,), negated=True)
    assert x.exists() == Exists("x")
    assert x.missing() == Not(Exists("x"))
    assert x.startswith("p") == StartsWith("x", "p")
    assert x.contains("v") == Contains("x", "v")
    assert field is F
    assert isinstance(field("x"), Field)


def test_combinators_flatten() -> None:
    a, b, c = F("a") == 1, F("b") == 2, F("c") == 3
    assert (a & b & c) == And((a, b, c))
    assert (a | b | c) == Or((a, b, c))
    assert ((a & b) | c) == Or((And((a, b)), c))
    assert ~a == Not(a)
    assert (a & (b | c)) == And((a, Or((b, c))))


def test_equality_is_type_strict_and_hashable() -> None:
    assert Compare("x", "==", 1) != Compare("x", "==", True)
    assert Compare("x", "==", 1) != Compare("x", "==", 1.0)
    assert Compare("x", "==", 0) != Compare("x", "==", False)
    assert In("x", (1,)) != In("x", (True,))
    assert Compare("x", "==", "1.0") != Compare("x", "==", Version("1.0"))
    assert len({Compare("x", "==", 1), Compare("x", "==", True), Compare("x", "==", 1)}) == 2
    assert Compare("x", "==", 1) != "x == 1"
    assert And((F("a") == 1, F("b") == 2)) != Or((F("a") == 1, F("b") == 2))


def test_nodes_are_frozen_and_slotted() -> None:
    node = Compare("x", "==", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.value = 2  # type: ignore[misc]
    assert not hasattr(node, "__dict__")
    assert repr(node) == "Compare(field='x', op='==', value=1)"
    assert repr(And((node, node))).startswith("And(children=(Compare(")


@pytest.mark.parametrize(
    "misuse",
    [
        lambda: bool(F("a") == 1),
        lambda: (F("a") == 1) and (F("b") == 2),
        lambda: 1 < F("x") < 5,
        lambda: F("a") == 1 & F("b"),  # precedence trap: 1 & F("b")
        lambda: (F("a") == 1) & {"b": 2},
        lambda: (F("a") == 1) | "b == 2",
        lambda: "b == 2" | (F("a") == 1),
        lambda: F("a") & F("b"),
        lambda: ~F("a"),
    ],
)
def test_misuse_of_operators_explains_itself(misuse: Any) -> None:
    with pytest.raises(FilterError, match=r"F\('a'\) == 1|field|& \| ~"):
        misuse()


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: Compare("x", "=", 1), "use == for equality"),
        (lambda: Compare("x", "=~", "a"), "regular expressions"),
        (lambda: Compare("x", "in", [1]), "F(field).isin"),
        (lambda: Compare("x", "like", 1), "use one of"),
        (lambda: Compare("x", "==", [1, 2]), "use 'in'"),
        (lambda: Compare("x", "==", {"a": 1}), "dotted path"),
        (lambda: Compare("", "==", 1), "must not be empty"),
        (lambda: Compare("a..b", "==", 1), "empty part"),
        (lambda: Compare("a.", "==", 1), "ends with a dot"),
        (lambda: Compare("`a", "==", 1), "unclosed backquote"),
        (lambda: Compare("`a`b", "==", 1), "expected '.'"),
        (lambda: Compare(5, "==", 1), "must be a str"),  # type: ignore[arg-type]
        (lambda: In("x", "abc"), "must be a list"),  # type: ignore[arg-type]
        (lambda: In("x", 5), "must be a list"),  # type: ignore[arg-type]
        (lambda: In("x", ([1],)), "not a valid filter value"),
        (lambda: In("x", (1,), negated=1), "True or False"),  # type: ignore[arg-type]
        (lambda: StartsWith("x", 1), "needs a str prefix"),  # type: ignore[arg-type]
        (lambda: Contains("x", [1]), "use 'in'"),
        (lambda: And((F("a") == 1,)), "at least two children"),
        (lambda: Or(()), "at least two children"),
        (lambda: And((F("a") == 1, {"b": 2})), "must be filters"),  # type: ignore[arg-type]
        (lambda: And(F("a") == 1), "tuple of filters"),  # type: ignore[arg-type]
        (lambda: Not("a == 1"), "takes a filter"),  # type: ignore[arg-type]
        (lambda: Version("latest"), "not a version"),
        (lambda: Version(1.2), "takes the version as a str"),  # type: ignore[arg-type]
    ],
)
def test_bad_nodes_raise_filter_error(make: Any, fragment: str) -> None:
    with pytest.raises(FilterError, match=None) as info:
        make()
    assert fragment in str(info.value)


def test_in_list_limit() -> None:
    assert len(In("x", tuple(range(10_000))).values) == 10_000
    with pytest.raises(FilterTooComplexError, match="10000"):
        In("x", tuple(range(10_001)))


def test_hard_depth_limit_at_construction() -> None:
    f: Filter = F("a") == 1
    for i in range(HARD_MAX_DEPTH - 1):
        f = Not(f) if i % 2 else Or((f, F("b") == 2))
    assert f.depth == HARD_MAX_DEPTH
    with pytest.raises(FilterTooComplexError, match="no filter may nest deeper"):
        Not(f)


def test_depth_and_clauses() -> None:
    assert All().depth == 0 and All().clauses == 0
    assert (F("a") == 1).depth == 1
    f = parse("a == 1 and (b == 2 or not c in [1, 2, 3]) and exists(d)")
    assert (f.depth, f.clauses) == (4, 4)
    assert Not(All()).depth == 1


# --------------------------------------------------------------------------- field names


@pytest.mark.parametrize(
    ("name", "path", "canonical"),
    [
        ("status", ("status",), "status"),
        ("hw.model", ("hw", "model"), "hw.model"),
        ("`a.b`", ("a.b",), "`a.b`"),
        ("`a.b`.c", ("a.b", "c"), "`a.b`.c"),
        ("`x`.y", ("x", "y"), "x.y"),
        ("weird key", ("weird key",), "weird key"),
        ("a`b", ("a`b",), "a`b"),
        ("```x`", ("`x",), "```x`"),
        ("`a``.b`", ("a`.b",), "`a``.b`"),
    ],
)
def test_field_paths(name: str, path: tuple[str, ...], canonical: str) -> None:
    assert field_path(name) == path
    assert field_name(path) == canonical
    assert F(name).name == canonical
    assert field_path(str(parse(str(F(name).exists())).field)) == path  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- to_filter


def test_to_filter_forms() -> None:
    assert to_filter(None) == All()
    assert to_filter({}) == All()
    assert to_filter({"a": 1}) == Compare("a", "==", 1)
    assert to_filter({"a": 1, "b": "x"}) == And((Compare("a", "==", 1), Compare("b", "==", "x")))
    assert to_filter({"a": None, "v": Version("1.0")}).children[1].value == Version("1.0")  # type: ignore[attr-defined]
    f = F("a") == 1
    assert to_filter(f) is f
    assert to_filter("a == 1") == f


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        ({"a": [1, 2]}, "use In"),
        ({"a": (1,)}, "use In"),
        ({"a": {"b": 1}}, "dotted path"),
        ({1: "a"}, "non-empty field names"),
        ({"": "a"}, "non-empty field names"),
        ({"a": float("nan")}, "not a finite number"),
        ({"a": object()}, "not a valid filter value"),
        (42, "a filter must be None (match all), a dict"),
        (True, "got bool"),
        (["a == 1"], "got list"),
        (b"a == 1", "got bytes"),
        (F("a"), "is a field, not a filter"),
    ],
)
def test_to_filter_rejects(obj: object, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        to_filter(obj)
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    "ordered",
    [
        ["1.2.3-rc1", "1.2.3-rc2", "1.2.3-rc10", "1.2.3", "1.2.9", "1.2.10", "1.10.0", "2"],
        ["1.0-1", "1.0-alpha", "1.0-alpha.1", "1.0-beta", "1.0-RC2", "1.0"],
        ["0.9", "1", "1.0.1", "v1.1"],
    ],
)
def test_version_order(ordered: list[str]) -> None:
    keys = [version_key(v) for v in ordered]
    assert all(k is not None for k in keys)
    for lo, hi in itertools.pairwise(keys):
        assert lo < hi  # type: ignore[operator]


@pytest.mark.parametrize(
    ("a", "b"),
    [("1.2", "1.2.0"), ("1.2.0.0", "1.2"), ("v1.2", "1.2"), ("1.2.3-rc1", "1.2.3rc1"),
     ("1.2.3-rc.1", "1.2.3-rc1"), ("1.0+b1", "1.0+b2"), ("1.0-RC1", "1.0-rc1"), ("01.2", "1.2")],
)
def test_version_equal(a: str, b: str) -> None:
    assert version_key(a) == version_key(b)


@pytest.mark.parametrize("text", ["", "latest", " 1.2", "1.2 ", "1..2", ".1", "1.", "1.2-", "1.2+", "x1.2",
                                  "1.2.3.rc1", "1" * 300])
def test_not_versions(text: str) -> None:
    assert version_key(text) is None


def test_version_key_of_non_strings() -> None:
    for value in (1, 1.2, None, True, ["1.2"], {"v": "1"}):
        assert version_key(value) is None
    assert str(Version("1.2")) == "1.2"
    assert Version("1.2") == Version("1.2") and Version("1.2") != Version("1.2.0")
