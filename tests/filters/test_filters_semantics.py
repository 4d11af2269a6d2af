"""The compiled predicate: every semantic rule, and agreement with a deliberately simple evaluator."""

from __future__ import annotations

import operator
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcastlab.errors import FilterError
from mcastlab.filters import (
    All,
    And,
    Compare,
    Contains,
    Exists,
    F,
    Filter,
    In,
    Not,
    Or,
    StartsWith,
    Version,
    compile_filter,
    field_name,
    field_path,
    parse,
    version_key,
)
from mcastlab.filters.strategies import filters, filters_for, metadata_dicts, scalars, values, versions

# --------------------------------------------------------------------------- reference evaluator
# Written for clarity, not speed: one rule per line, straight from the package docstring.

_ABSENT = object()
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _get(meta: Any, name: str) -> Any:
    cur = meta
    for key in field_path(name):
        if not isinstance(cur, dict) or key not in cur:
            return _ABSENT
        cur = cur[key]
    return cur


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "str"
    if v is None:
        return "null"
    return "other"


def _eq(a: Any, b: Any) -> bool:
    return _kind(a) == _kind(b) != "other" and a == b


def reference(f: Filter, meta: dict[str, Any]) -> bool:
    if isinstance(f, All):
        return True
    if isinstance(f, And):
        return all(reference(c, meta) for c in f.children)
    if isinstance(f, Or):
        return any(reference(c, meta) for c in f.children)
    if isinstance(f, Not):
        return not reference(f.child, meta)
    x = _get(meta, f.field)  # type: ignore[attr-defined]
    if x is _ABSENT:
        return False
    if isinstance(f, Exists):
        return True
    if isinstance(f, StartsWith):
        return isinstance(x, str) and x.startswith(f.prefix)
    if isinstance(f, Contains):
        if isinstance(x, str):
            return isinstance(f.value, str) and f.value in x
        return isinstance(x, list) and any(_eq(item, f.value) for item in x)
    if isinstance(f, In):
        found = any(_eq(x, v) for v in f.values)
        return not found if f.negated else found
    assert isinstance(f, Compare)
    if isinstance(f.value, Version):
        key = version_key(x)
        if f.op == "!=":
            return key != f.value.key
        if key is None:
            return False
        return {"==": operator.eq, **_ORDER}[f.op](key, f.value.key)
    if f.op == "==":
        return _eq(x, f.value)
    if f.op == "!=":
        return not _eq(x, f.value)
    if _kind(x) == _kind(f.value) and _kind(x) in ("number", "str"):
        return _ORDER[f.op](x, f.value)
    return False


def match(flt: object, meta: dict[str, Any]) -> bool:
    return compile_filter(flt, max_depth=None, max_clauses=None)(meta)


# --------------------------------------------------------------------------- the property


@settings(max_examples=400)
@given(data=st.data())
def test_predicate_agrees_with_reference(data: st.DataObject) -> None:
    meta = data.draw(metadata_dicts(), label="meta")
    f = data.draw(filters_for(meta), label="filter")
    pred = compile_filter(f, max_depth=None, max_clauses=None).predicate
    assert pred(meta) is reference(f, meta)


@settings(max_examples=300)
@given(x=values(), v=scalars() | versions(), op=st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
def test_every_comparison_of_every_type_pair(x: Any, v: Any, op: str) -> None:
    f = Compare("x", op, v)
    assert match(f, {"x": x}) is reference(f, {"x": x})
    for leaf in (In("x", (v,)) if not isinstance(v, Version) else All(), Contains("x", v)
                 if not isinstance(v, Version) else All()):
        assert match(leaf, {"x": x}) is reference(leaf, {"x": x})


@given(f=filters())
def test_predicate_accepts_read_only_mappings(f: Filter) -> None:
    meta = {"a": 1, "hw": {"x": "y"}, "status": "online"}
    pred = compile_filter(f, max_depth=None, max_clauses=None).predicate
    assert pred(MappingProxyType(meta)) is pred(meta)


# --------------------------------------------------------------------------- strict typing


@pytest.mark.parametrize(
    ("flt", "meta", "expected"),
    [
        ("x == 5", {"x": "5"}, False),
        ("x == \"5\"", {"x": 5}, False),
        ("x == 1", {"x": True}, False),
        ("x == 0", {"x": False}, False),
        ("x == 1.0", {"x": True}, False),
        ("x == true", {"x": 1}, False),
        ("x == false", {"x": 0}, False),
        ("x == 5", {"x": 5.0}, True),
        ("x == 5.0", {"x": 5}, True),
        ("x == 1", {"x": 1.0}, True),
        ("x != 1", {"x": True}, True),
        ("x != 0", {"x": False}, True),
        ("x != true", {"x": 1}, True),
        ("x != 5", {"x": "5"}, True),
        ("x != 5", {"x": 5.0}, False),
        ("x == null", {"x": None}, True),
        ("x == null", {"x": 0}, False),
        ("x != null", {"x": None}, False),
        ("x != null", {"x": 0}, True),
        ("x == \"a\"", {"x": ["a"]}, False),
        ("x != \"a\"", {"x": ["a"]}, True),
        ("x == 1", {"x": [1]}, False),
        ("x < 5", {"x": "4"}, False),
        ("x < \"5\"", {"x": 4}, False),
        ("x < 2", {"x": True}, False),
        ("x > 0", {"x": True}, False),
        ("x < true", {"x": False}, False),
        ("x >= null", {"x": None}, False),
        ("x < 5", {"x": None}, False),
        ("x < 5", {"x": [1]}, False),
        ("x < 5", {"x": {"a": 1}}, False),
        ("x < 5", {"x": 4.5}, True),
        ("x <= 5", {"x": 5.0}, True),
        ("x > 2.5", {"x": 3}, True),
        ("x < \"b\"", {"x": "a"}, True),
        ("x < \"B\"", {"x": "a"}, False),  # code point order
        ("x > \"a\"", {"x": "é"}, True),
        ("x >= \"\"", {"x": ""}, True),
        ("x in [1, \"a\"]", {"x": True}, False),
        ("x in [1, \"a\"]", {"x": 1.0}, True),
        ("x in [true]", {"x": 1}, False),
        ("x in [true]", {"x": True}, True),
        ("x in [null]", {"x": None}, True),
        ("x in [0]", {"x": False}, False),
        ("x in [\"1\"]", {"x": 1}, False),
        ("x in [1]", {"x": [1]}, False),
        ("x not in [1]", {"x": [1]}, True),
        ("x not in [1]", {"x": True}, True),
        ("x not in [1, 2]", {"x": 2.0}, False),
        ("x in []", {"x": 1}, False),
        ("x not in []", {"x": 1}, True),
    ],
)
def test_strict_typing(flt: str, meta: dict[str, Any], expected: bool) -> None:
    assert match(flt, meta) is expected


def test_large_int_and_float_compare_exactly() -> None:
    assert match(F("x") == 2**53 + 1, {"x": 2**53 + 1})
    assert not match(F("x") == float(2**53), {"x": 2**53 + 1})
    assert match(F("x") > float(2**53), {"x": 2**53 + 1})


# --------------------------------------------------------------------------- missing fields


@pytest.mark.parametrize(
    "flt",
    [
        "region == \"x\"", "region != \"x\"", "region != null", "region == null", "region < 5",
        "region >= \"a\"", "region in [1, null]", "region not in [1]", "region not in []",
        "region contains \"x\"", "region.startswith(\"\")", "exists(region)", "region == v\"1.0\"",
        "region != v\"1.0\"", "region < v\"1.0\"", "region.sub == 1", "region.sub != 1",
    ],
)
def test_any_condition_on_a_missing_field_is_false(flt: str) -> None:
    assert match(flt, {"other": 1}) is False
    assert match(f"not ({flt})", {"other": 1}) is True


def test_not_negates_the_whole_expression() -> None:
    assert match('not (region == "x")', {}) is True
    assert match('not (region == "x")', {"region": "x"}) is False
    assert match('not (region == "x")', {"region": "y"}) is True
    assert match('region != "x"', {}) is False


def test_exists_is_true_for_null_values() -> None:
    assert match("exists(x)", {"x": None})
    assert match("x exists", {"x": None})
    assert not match("exists(x)", {"y": None})
    assert match(F("x").missing(), {"y": 1})


# --------------------------------------------------------------------------- dotted paths


def test_dotted_paths_read_nested_dicts() -> None:
    meta = {"hw": {"model": "pi4", "rev": {"n": 2}}, "a.b": 7, "tags": ["x"]}
    assert match('hw.model == "pi4"', meta)
    assert match("hw.rev.n >= 2", meta)
    assert match("exists(hw.rev)", meta)
    assert match("`a.b` == 7", meta)
    assert match({"`a.b`": 7}, meta)
    assert match({"hw.model": "pi4"}, meta)
    assert not match("a.b == 7", meta)  # a path, and there is no key "a"
    assert not match("hw.model.x == 1", meta)  # a step into a str is a missing field
    assert not match("exists(hw.model.x)", meta)
    assert not match("tags.`0` == \"x\"", meta)  # lists are not indexed by paths
    assert match("not (hw.missing == 1)", meta)


def test_paths_through_mappings_other_than_dict() -> None:
    meta = MappingProxyType({"hw": MappingProxyType({"model": "pi4"})})
    assert match('hw.model == "pi4"', meta)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- in / contains / startswith


def test_contains() -> None:
    assert match('tags contains "x"', {"tags": ["a", "x"]})
    assert match('name contains "ev"', {"name": "dev-1"})
    assert match('name contains ""', {"name": "dev-1"})
    assert not match('name contains 1', {"name": "dev-1"})
    assert not match("tags contains 1", {"tags": [True, "1"]})
    assert match("tags contains 1", {"tags": [True, 1.0]})
    assert match("tags contains true", {"tags": [1, True]})
    assert not match("tags contains true", {"tags": [1]})
    assert not match("tags contains 0", {"tags": [False]})
    assert match("tags contains null", {"tags": [None]})
    assert match("tags contains 7", {"tags": [7.0]})
    assert not match('tags contains "a"', {"tags": [["a"]]})
    assert not match('tags contains "a"', {"tags": {"a": 1}})
    assert not match("x contains 1", {"x": 1})


def test_startswith() -> None:
    assert match('name.startswith("dev")', {"name": "dev-1"})
    assert match('startswith(name, "dev")', {"name": "dev-1"})
    assert not match('name.startswith("dev")', {"name": "Dev-1"})
    assert not match('name.startswith("1")', {"name": 12})
    assert not match('name.startswith("a")', {"name": ["a"]})
    assert match('name.startswith("")', {"name": ""})


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("value", "op", "literal", "expected"),
    [
        ("1.2.9", "<", "1.2.10", True),
        ("1.10.0", "<", "1.2.10", False),
        ("1.2.10", "==", "1.2.10", True),
        ("1.2", "==", "1.2.0", True),
        ("1.2.3-rc1", "<", "1.2.3", True),
        ("v1.2.3", ">=", "1.2.3", True),
        ("latest", "<", "1.2.3", False),
        ("latest", ">=", "1.2.3", False),
        ("latest", "==", "1.2.3", False),
        ("latest", "!=", "1.2.3", True),
        (123, "<", "1.2.3", False),
        (1, "!=", "1", True),
        (None, "<", "1", False),
        ("1.2.3", "!=", "1.2.3", False),
    ],
)
def test_version_comparisons(value: Any, op: str, literal: str, expected: bool) -> None:
    assert match(Compare("fw", op, Version(literal)), {"fw": value}) is expected
    assert match(f'fw {op} v"{literal}"', {"fw": value}) is expected


# --------------------------------------------------------------------------- accepted forms


def test_accepted_forms_agree() -> None:
    meta = {"status": "online", "tier": "premium"}
    forms: list[object] = [
        {"status": "online", "tier": "premium"},
        'status == "online" and tier == "premium"',
        (F("status") == "online") & (F("tier") == "premium"),
    ]
    for form in forms:
        assert match(form, meta)
        assert not match(form, {"status": "online"})
    assert match(None, {}) and match({}, {}) and match("true", {})
    assert not match("false", {"x": 1})


def test_compiled_filter_fields() -> None:
    cf = compile_filter('a == 1 or (b == 2 and not c == 3)')
    assert cf.text == "a == 1 or b == 2 and not c == 3"
    assert (cf.depth, cf.clauses, cf.matches_all) == (4, 3, False)
    assert cf.filter == parse(cf.text)
    assert cf({"a": 1}) is True
    assert compile_filter(None).matches_all
    assert compile_filter("true or x == 1").matches_all
    assert not compile_filter("false or x == 1").matches_all
    assert not compile_filter("not true").predicate({})


def test_compile_is_cached() -> None:
    assert compile_filter("a == 1") is compile_filter("a == 1")
    assert compile_filter({"a": 1}) is compile_filter(F("a") == 1)
    assert compile_filter({"a": 1}) is not compile_filter({"a": True})  # strict cache keys
    assert compile_filter({"a": 1.0}).text == "a == 1.0"


# --------------------------------------------------------------------------- no code injection

HOSTILE = [
    "x') or __import__('os').system('echo pwned') or ('",
    '"; import os; os.system("echo pwned"); "',
    "__class__.__bases__",
    "m\nimport os",
    "_c0",
    "_M",
    "{}",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_names_and_values_are_data(text: str) -> None:
    meta = {text: text, "n": {text: [text]}}
    name = field_name((text,))  # the literal key, even if it holds dots or backquotes
    assert match((F(name) == text) & F(field_name(("n", text))).contains(text), meta)
    assert match(Contains(name, text), {text: f"<{text}>"})
    assert match(StartsWith(name, text), {text: text + "!"})
    assert match(In(name, (text, 1)), meta)
    assert not match(F(name) == text, {text: text + " "})
    assert match(F(name).isin([text]) & ~(F(name) != text), meta)
    assert match(parse(str(F(name) == text)), meta)


def test_generated_source_never_contains_user_text() -> None:
    from mcastlab.filters._codegen import build_predicate

    secret = "zz_secret_marker"
    _, source = build_predicate(
        (F(secret) == secret) & F(f"{secret}.x").isin([secret]) & F(secret).startswith(secret)
        & F(secret).contains(secret) & (F(secret) < Version("1.0"))
    )
    assert secret not in source


def test_filter_values_must_be_scalars() -> None:
    for bad in ([1], {"a": 1}, float("nan"), float("inf"), object(), 2**64, b"x"):
        with pytest.raises(FilterError):
            Compare("x", "==", bad)
    with pytest.raises(FilterError):
        Contains("x", Version("1.0"))
    with pytest.raises(FilterError):
        In("x", (Version("1.0"),))


def test_compiled_filter_passes_through_with_limits() -> None:
    cf = compile_filter("a == 1 and b == 2", max_clauses=None)
    assert compile_filter(cf) is cf
    with pytest.raises(FilterError, match="max_clauses"):
        compile_filter(cf, max_clauses=1)


def test_long_texts_are_not_cached_but_work() -> None:
    text = " or ".join(f"k{i} == {i}" for i in range(400))
    assert len(text) > 4096
    cf = compile_filter(text, max_clauses=None, max_depth=None)
    assert cf({"k399": 399}) and not cf({"k399": 1})
    assert parse(text) == parse(text)
