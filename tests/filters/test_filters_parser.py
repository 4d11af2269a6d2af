"""The string syntax: operators, precedence, literals, escapes, errors with positions, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given

from mcastlab.errors import FilterError, FilterSyntaxError, FilterTooComplexError, UsageError
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
    parse,
    to_filter,
)
from mcastlab.filters.strategies import filters

a1, b2, c3 = Compare("a", "==", 1), Compare("b", "==", 2), Compare("c", "==", 3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('status == "online"', Compare("status", "==", "online")),
        ("x != 1", Compare("x", "!=", 1)),
        ("x < 1.5", Compare("x", "<", 1.5)),
        ("x <= -2", Compare("x", "<=", -2)),
        ("x > 1e3", Compare("x", ">", 1000.0)),
        ("x >= 2.5E-1", Compare("x", ">=", 0.25)),
        ('fw < v"1.2.3"', Compare("fw", "<", Version("1.2.3"))),
        ("fw >= V'2.0'", Compare("fw", ">=", Version("2.0"))),
        ("x in [1, 'a', true, null, 2.5]", In("x", (1, "a", True, None, 2.5))),
        ("x in [1, 2,]", In("x", (1, 2))),
        ("x in []", In("x", ())),
        ("x in (1, 2)", In("x", (1, 2))),
        ("x not in [1, 2]", In("x", (1, 2), negated=True)),
        ("x NOT IN [1]", In("x", (1,), negated=True)),
        ("exists(x)", Exists("x")),
        ("x exists", Exists("x")),
        ('name.startswith("dev")', StartsWith("name", "dev")),
        ('startswith(name, "dev")', StartsWith("name", "dev")),
        ('name startswith "dev"', StartsWith("name", "dev")),
        ('tags contains "x"', Contains("tags", "x")),
        ("tags contains 3", Contains("tags", 3)),
        ("tags.contains(null)", Contains("tags", None)),
        ("contains(tags, false)", Contains("tags", False)),
        ("hw.model == 'pi'", Compare("hw.model", "==", "pi")),
        ("hw.model.startswith('p')", StartsWith("hw.model", "p")),
        ("`weird key` == 1", Compare("weird key", "==", 1)),
        ("`a.b` == 1", Compare("`a.b`", "==", 1)),
        ("`a.b`.c == 1", Compare("`a.b`.c", "==", 1)),
        ("`a``b` == 1", Compare("a`b", "==", 1)),
        ("`and` == 1", Compare("and", "==", 1)),
        ("x.`in` == 1", Compare("x.in", "==", 1)),
        ("é == 1", Compare("é", "==", 1)),
        ("_x1 == 1", Compare("_x1", "==", 1)),
        ("x == True", Compare("x", "==", True)),
        ("x == FALSE", Compare("x", "==", False)),
        ("x == None", Compare("x", "==", None)),
        ("x == NULL", Compare("x", "==", None)),
        ("true", All()),
        ("false", Not(All())),
        ("  a == 1  ", a1),
        ("a == 1 and b == 2 and c == 3", And((a1, b2, c3))),
        ("a == 1 AND b == 2", And((a1, b2))),
        ("a == 1 & b == 2", And((a1, b2))),
        ("a == 1 or b == 2", Or((a1, b2))),
        ("a == 1 | b == 2", Or((a1, b2))),
        ("not a == 1", Not(a1)),
        ("~a == 1", Not(a1)),
        ("Not a == 1", Not(a1)),
        ("not not a == 1", Not(Not(a1))),
    ],
)
def test_parses(text: str, expected: Filter) -> None:
    assert parse(text) == expected


def test_precedence_not_and_or() -> None:
    assert parse("a == 1 or b == 2 and c == 3") == Or((a1, And((b2, c3))))
    assert parse("a == 1 and b == 2 or c == 3") == Or((And((a1, b2)), c3))
    assert parse("not a == 1 and b == 2") == And((Not(a1), b2))
    assert parse("not (a == 1 or b == 2)") == Not(Or((a1, b2)))
    assert parse("(a == 1 or b == 2) and c == 3") == And((Or((a1, b2)), c3))
    assert parse("a == 1 and (b == 2 and c == 3)") == And((a1, And((b2, c3))))
    assert parse("((a == 1))") == a1


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r'"a\"b"', 'a"b'),
        (r"'a\'b'", "a'b"),
        (r'"it\'s"', "it's"),
        ("'say \"hi\"'", 'say "hi"'),
        (r'"\\"', "\\"),
        (r'"\n\t\r\b\f\0\/"', "\n\t\r\b\f\0/"),
        (r'"\u00e9\x41\U0001F600"', "éA😀"),
        ('"é 😀"', "é 😀"),
        ('""', ""),
        ("'line\nbreak'", "line\nbreak"),
    ],
)
def test_string_escapes(text: str, value: str) -> None:
    assert parse(f"x == {text}") == Compare("x", "==", value)


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("status ==", 9, "expected a value after '=='"),
        ("status == ", 10, "expected a value after '=='"),
        ("status = 'x'", 7, "use == for equality"),
        ("name =~ 'x'", 5, "regular expressions are not supported"),
        ("a <> 1", 2, "use !="),
        ("a === 1", 2, "use =="),
        ("a == 1 && b == 2", 7, "use 'and'"),
        ("a == 1 || b == 2", 7, "use 'or'"),
        ("!a", 0, "use 'not'"),
        ("a == 1 b == 2", 7, "expected 'and', 'or' or the end"),
        ("a == 1)", 6, "unbalanced ')'"),
        ("(a == 1", 7, "expected ')' to close the '(' at position 0"),
        ("a == 'abc", 5, "unterminated string"),
        (r"a == 'a\q'", 7, "unknown escape"),
        (r"a == '\u12'", 6, "expected 4 hex digits"),
        ("a == online", 5, 'strings need quotes: "online"'),
        ("a == 1.2.3", 5, 'v"1.2.3"'),
        ('a < v"latest"', 4, "not a version"),
        ("a in 1", 5, "expected a list"),
        ("a in [1, [2]]", 9, "cannot be nested"),
        ('a in [v"1.0"]', 6, "version literals cannot go in a list"),
        ("a in [1 2]", 8, "expected ',' or ']'"),
        ("a in [1,", 8, "expected ']' to close the list opened at position 5"),
        ("a == [1]", 5, "a list is not a value"),
        ("a not 1", 6, "expected 'in' after 'not'"),
        ("a", 1, "expected an operator"),
        ("a b", 2, "expected an operator"),
        ("1 == a", 0, "put the field name on the left"),
        ('"online" == status', 0, "put the field name on the left"),
        ("", 0, "empty filter"),
        ("   ", 3, "empty filter"),
        ("and == 1", 0, "write `and` to use it as a field name"),
        ("true == 1", 5, "write `true` to use it as a field name"),
        ("a. == 1", 3, "expected a field name after '.'"),
        ("a == 1 and", 10, "expected a condition"),
        ("exists()", 7, "expected a field name as the first argument"),
        ("exists(a", 8, "expected ')'"),
        ("startswith(a, 1)", 14, "expected a string prefix"),
        ("a.startswith(1)", 13, "expected a string prefix"),
        ("a == #", 5, "unexpected character '#'"),
        ("`` == 1", 0, "empty `` field name"),
        ("`abc == 1", 0, "unterminated `field name`"),
        ("a == 1x", 6, "unexpected 'x' after the number 1"),
        ("a == 1e999", 5, "too large"),
        ("a < 99999999999999999999", 4, "outside the signed 64-bit range"),
        ("tags contains v'1.0'", 14, "not a valid filter value"),
        ("__import__('os')", 10, "expected an operator"),
        ("__import__('os').system('ls')", 10, "expected an operator"),
        ("eval(\"1\")", 4, "expected an operator"),
        ("a == 1; b == 2", 6, "unexpected character ';'"),
    ],
)
def test_syntax_errors_say_what_and_where(text: str, position: int, fragment: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse(text)
    err = info.value
    assert err.position == position, str(err)
    assert fragment in str(err), str(err)
    assert f"(at position {position})" in str(err)
    assert err.text == text
    assert isinstance(err, FilterError) and isinstance(err, UsageError)


def test_error_message_example_from_the_spec() -> None:
    with pytest.raises(FilterSyntaxError, match=r"expected a value after '==' \(at position 9\)"):
        parse("status ==")


def test_parse_rejects_non_text_and_huge_text() -> None:
    with pytest.raises(FilterError):
        parse(b"a == 1")  # type: ignore[arg-type]
    with pytest.raises(FilterError, match="limit"):
        parse("a == 1 or " * 200_000 + "a == 1")


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(FilterTooComplexError):
        parse("(" * 5000 + "a == 1" + ")" * 5000)
    with pytest.raises(FilterTooComplexError):
        parse("not " * 5000 + "a == 1")
    assert parse("(" * 50 + "a == 1" + ")" * 50) == a1


def test_never_evaluates(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("user text reached eval/exec")

    monkeypatch.setattr(builtins, "eval", boom)
    assert parse('x == "__import__(\'os\')"') == Compare("x", "==", "__import__('os')")
    for text in ["__import__('os')", "os.system('x')", "x == open('f')", "lambda: 1"]:
        with pytest.raises(FilterSyntaxError):
            parse(text)


# --------------------------------------------------------------------------- rendering / round trip


@given(filters())
def test_round_trip(f: Filter) -> None:
    text = str(f)
    assert parse(text) == f
    assert str(parse(text)) == text


def test_rendering_examples() -> None:
    f = (F("status") == "online") & F("region").isin(["us-west", "us-east"]) & (F("fw") < Version("1.2.3"))
    assert str(f) == 'status == "online" and region in ["us-west", "us-east"] and fw < v"1.2.3"'
    assert str(~((F("a") == 1) | (F("b") != 2))) == "not (a == 1 or b != 2)"
    assert str(F("weird key") == 'q"\n') == '`weird key` == "q\\"\\n"'
    assert str(F("`a.b`.c").exists()) == "exists(`a.b`.c)"
    assert str(F("and") == 1.0) == "`and` == 1.0"
    assert str(F("x") == 1e16) == "x == 1e+16"
    assert str(F("x").notin([True, None])) == "x not in [true, null]"
    assert str(F("x").startswith("\x00")) == 'x.startswith("\\u0000")'
    assert str(All()) == "true" and str(Not(All())) == "not true"


def test_to_filter_string_form_is_parse() -> None:
    assert to_filter("a == 1") == a1
