"""Edge-biased hypothesis strategies for every public input: valid and invalid, never only one of them.

Each strategy mixes well-formed values (so that calls get past validation and reach the backends) with
the values validation exists for: empty, huge, control/format/surrogate characters, NaN and infinities,
integers beyond 64 bits (and beyond what ``int -> str`` converts), wrong types, subclasses of the right
types, deep nesting. Filters reuse :mod:`mcastlab.filters.strategies` for well-formed trees; scenario
dicts are in :mod:`.scenario_strategies`.
"""

from __future__ import annotations

import copy
import enum
import fractions
import math
import sys
from collections import OrderedDict
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from hypothesis import strategies as st

from mcastlab import Config
from mcastlab.filters import And, Compare, F, Filter, In, Not, Or, Version, compile_filter
from mcastlab.filters import strategies as fst

# ----------------------------------------------------------------------------- odd values


class StrSub(str):
    """A str subclass (the right type, not exactly)."""


class IntSub(int):
    """An int subclass."""


class DictSub(dict):  # type: ignore[type-arg]
    """A dict subclass."""


class Color(enum.IntEnum):
    RED = 1


class Opaque:
    """An object that is none of the JSON types, with a repr that says so."""

    def __repr__(self) -> str:
        return "<Opaque>"


HUGE_INT = 10 ** (sys.get_int_max_str_digits() + 10 if sys.get_int_max_str_digits() else 5000)
"""An int too long for ``str()``/``repr()``/``json.dumps`` under Python's digit limit."""


class Deferred:
    """A pool entry standing for a value without a repr (hypothesis reprs its strategies for its reports):
    an immutable value, or a ``make`` function building a fresh (mutable) one per draw - too deep to
    deep-copy, and code under test (or a mutation) may write into it."""

    def __init__(self, value: Any = None, *, make: Any = None) -> None:
        self._value, self._make = value, make

    @property
    def value(self) -> Any:
        return self._make() if self._make is not None else self._value

    def __repr__(self) -> str:
        if self._make is not None:
            return f"<fresh {getattr(self._make, '__name__', 'value')}>"
        bits = self._value.bit_length() if isinstance(self._value, int) else None
        return f"<{type(self._value).__name__}{f' of {bits} bits' if bits else ''}>"


HUGE = Deferred(HUGE_INT)


def pick(values: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """``sampled_from(values)`` where :class:`Deferred` entries become their values, and every value is a
    fresh copy (code under test may mutate what it is given; a shared pool entry must not change)."""
    return st.sampled_from(values).map(lambda v: v.value if isinstance(v, Deferred) else copy.deepcopy(v))


BIG_INTS = (2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, 2**1024, HUGE)
SPECIAL_FLOATS = (math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e-300, 1.7976931348623157e308)
WEIRD_OBJECTS: tuple[Any, ...] = (
    Deferred(IntSub(HUGE_INT)), b"bytes", bytearray(b"ba"), {1, 2}, frozenset({"a"}), Opaque(),
    Decimal("1.5"), fractions.Fraction(1, 3), 1j, Color.RED, IntSub(3), StrSub("sub"), object, len, range(3),
    Version("1.2.3"),
)
SPECIAL_CHARS = (
    "\x00", "\x01", "\x7f", "\t", "\n", "\r", " ", "\u00a0", "\u2028", "\u2029", "\u200b", "\u202e",
    "\ufeff", "\ud800", "\udfff", "\ue000", "\U000e0080", "\U0010ffff", "\u0301", "é", "日", "🙂", "²", ".",
    "*", ">",
    "{",
    "}",
    "%", "`", '"', "'", "\\", "$", "#", ":", "/",
)


def odd_text(max_size: int = 12) -> st.SearchStrategy[str]:
    """Short text over an alphabet that is mostly the characters validation and encoding care about."""
    alphabet = st.one_of(st.sampled_from(SPECIAL_CHARS), st.sampled_from("abz09-_"), st.characters())
    return st.text(alphabet, max_size=max_size)


# ----------------------------------------------------------------------------- identity names


def identity_names(pool: tuple[str, ...] = ()) -> st.SearchStrategy[Any]:
    """Identity names: valid ones (often from ``pool``), edge lengths, forbidden characters, wrong types."""
    valid = st.text(st.sampled_from("ab.*>{}%:-_ü日🙂`\"'\\/"), min_size=1, max_size=8)
    parts: list[st.SearchStrategy[Any]] = [
        valid,
        st.sampled_from(("", "a" * 256, "a" * 257, "日" * 256, "a" * 100_000, " ", "a b", "a\tb", "ok\x00")),
        st.text(st.sampled_from(SPECIAL_CHARS), min_size=1, max_size=4),
        st.tuples(valid, st.sampled_from(SPECIAL_CHARS)).map("".join),
        pick((None, 0, 1, 1.5, True, b"dev-1", bytearray(b"x"), ["a"], ("a",), {"a": 1}, HUGE)),
        pick(WEIRD_OBJECTS),
        valid.map(StrSub),
    ]
    if pool:
        parts = [st.sampled_from(pool)] * 3 + parts
    return st.one_of(*parts)


# ----------------------------------------------------------------------------- metadata


def _nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


def odd_values() -> st.SearchStrategy[Any]:
    """Metadata values validation must refuse (or must accept although they look odd)."""
    return st.one_of(
        st.sampled_from(SPECIAL_FLOATS),
        pick(BIG_INTS),
        pick((HUGE, HUGE, Deferred(-HUGE_INT))),
        pick(WEIRD_OBJECTS),
        st.sampled_from((True, False, 0, 1, None, "", "x" * 70_000)),
        odd_text(),
        st.integers(0, 12).map(_nested),
        st.lists(st.sampled_from((1, "a", math.nan, b"b", None)), max_size=3).map(tuple),
    )


def metadata() -> st.SearchStrategy[Any]:
    """Metadata: well-formed dicts (half the time), then every way a mapping can be wrong."""
    keys = st.one_of(st.sampled_from(fst.TOP_KEYS), odd_text(6))
    odd_keys = pick((1, 1.5, None, True, b"k", ("t",), "", StrSub("s"), Color.RED, HUGE))
    values = st.one_of(fst.values(), odd_values())
    return st.one_of(
        fst.metadata_dicts(),
        fst.metadata_dicts(),
        st.dictionaries(keys, values, max_size=4),
        st.dictionaries(st.one_of(keys, odd_keys), values, max_size=3),
        st.dictionaries(keys, fst.values(), max_size=3).map(DictSub),
        st.dictionaries(keys, fst.values(), max_size=3).map(OrderedDict),
        st.dictionaries(keys, fst.values(), max_size=3).map(MappingProxyType),
        st.integers(0, 12).map(lambda d: {"deep": _nested(d)}),
        st.integers(1, 2000).map(lambda n: {f"k{i}": i for i in range(n)}),
        st.sampled_from((None, [], "status=online", 5, {"a", "b"}, [("a", 1)], b"{}", Opaque())),
    )


# ----------------------------------------------------------------------------- ttls and payloads


def ttls() -> st.SearchStrategy[Any]:
    """TTLs: ordinary, boundary (MAX_TTL), degenerate, non-finite, huge, wrong types; None = default."""
    return st.one_of(
        st.none(),
        st.floats(0.001, 1e6),
        st.integers(1, 10**6),
        st.sampled_from((0, -1, -0.0, 0.0, 1e-300, 5e-324, 1e9, 1e9 + 1, 1e10, 1e308)),
        st.sampled_from(SPECIAL_FLOATS),
        pick(BIG_INTS),
        st.sampled_from(
            (
                True, False, "5", "", b"5", [5], Decimal("5"), fractions.Fraction(1, 2), 1j, IntSub(5),
                Color.RED,
            )
        ),
        st.floats(),
    )


_VIEWS = (  # memoryviews are built per example (a writable one is unhashable, and must not be shared)
    lambda: memoryview(bytes(range(16))).cast("B", (4, 4)),
    lambda: memoryview(bytes(range(16)))[::2],
    lambda: memoryview(bytearray(16)).cast("i"),
)


def payloads() -> st.SearchStrategy[Any]:
    """Payloads: str (surrogates too), bytes-likes (multi-dimensional and strided memoryviews), oversize."""
    raw = st.binary(max_size=40)
    return st.one_of(
        raw, odd_text(20), raw.map(bytearray), raw.map(memoryview),
        st.sampled_from(_VIEWS).map(lambda make: make()),
        st.integers(0, 3000).map(lambda n: b"x" * n),
        st.sampled_from(("\ud800", "é" * 600, "", StrSub("sub"), b"")),
        st.sampled_from((None, 5, 1.5, ["a"], {"k": "v"}, Opaque(), True)),
    )


# ----------------------------------------------------------------------------- filters

_TOKENS = (
    "a", "b", "status", "hw.model", "`a.b`", "`", "``", "==", "!=", "<", "<=", ">", ">=", "=", "===", "<>",
    "=~",
    "(",
    ")",
    "[",
    "]",
    ",", "and", "or", "not", "in", "not in", "&", "|", "~", "true", "false", "null", "None", "True",
    "exists",
    "exists(",
    "contains",
    ".startswith(",
    "startswith(",
    '"x"', "'y'", '"\\u00e9"', '"\\ud800"', '"\\x"', '"\\', 'v"1.2.10"', 'v""', 'v"abc"', 'v"1..2"', "v",
    "1", "-1", "1.5", "1e999", "-1e999", "9223372036854775808", "99999999999999999999999999", "0x10", "1_0",
    ".5", "5.", "1e", "NaN", "inf", "\x00", "\t", "\u00a0", "日", "🙂", "$", "@", "#", ";", "\\", " ", "  ",
)


def filter_texts() -> st.SearchStrategy[str]:
    """Filter strings: canonical texts of valid trees, token soup, mutated texts, deep and long ones."""
    canonical = fst.filters(max_leaves=6).map(str)
    soup = st.lists(st.sampled_from(_TOKENS), max_size=12).map(" ".join)
    dense = st.lists(st.sampled_from(_TOKENS), max_size=12).map("".join)

    @st.composite
    def mutated(draw: st.DrawFn) -> str:
        text = draw(canonical)
        if not text:
            return text
        i = draw(st.integers(0, len(text) - 1))
        j = draw(st.integers(i, min(len(text), i + 4)))
        return text[:i] + draw(st.sampled_from(("", *_TOKENS))) + text[j:]

    return st.one_of(
        canonical, canonical, soup, dense, mutated(), odd_text(30),
        st.integers(1, 200).map(lambda n: "(" * n + "a == 1" + ")" * n),
        st.integers(1, 200).map(lambda n: "not " * n + "a == 1"),
        st.integers(1, 12_000).map(lambda n: " or ".join(f"a == {i}" for i in range(n))),
        st.integers(1, 12_000).map(lambda n: "a in [" + ", ".join(map(str, range(n))) + "]"),
        st.integers(4000, 5000).map(lambda n: 'a == "' + "x" * n + '"'),
    )


def filter_dicts() -> st.SearchStrategy[Any]:
    keys = st.one_of(
        st.sampled_from(("a", "hw.model", "`a.b`", "a..b", "", "`", "and", " a")),
        odd_text(5),
        pick((1, None, b"k", HUGE)),
    )
    values = st.one_of(fst.scalars(), fst.versions(), odd_values(), st.lists(fst.scalars(), max_size=2))
    return st.dictionaries(keys, values, max_size=4)


def filter_nodes() -> st.SearchStrategy[Any]:
    """Filters built in Python from fuzzed pieces: ``(name, method, arg)`` for ``F(name).method(arg)``, or
    a node constructor / operator fed ``arg`` where it expects an operator, a list, a flag or a filter."""
    names = st.one_of(
        fst.field_names(),
        st.sampled_from(("", "`", "a..b", " ", "a.``")),
        odd_text(5),
        pick((1, None, b"a", HUGE)),
    )
    values = st.one_of(fst.scalars(), fst.versions(), odd_values())
    ops = st.sampled_from(
        (
            "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "isin", "notin", "startswith",
            "contains", "exists", "missing", "Compare.op", "In.values", "In.negated", "Not", "And", "Or",
            "&", "|",
        )
    )
    once = st.just(None).map(lambda _: iter([1, 2]))  # a one-shot iterable, fresh per example
    return st.tuples(names, ops, st.one_of(values, st.lists(values, max_size=3), once))


def build_node(spec: tuple[Any, str, Any]) -> Filter:
    """Build the filter ``filter_nodes`` describes (raises FilterError for a bad piece)."""
    name, op, arg = spec
    leaf = F("a") == 1
    raw: dict[str, Any] = {
        "Compare.op": lambda: Compare(name, arg, 1), "In.values": lambda: In(name, arg),
        "In.negated": lambda: In(name, (1,), arg), "Not": lambda: Not(arg), "And": lambda: And((leaf, arg)),
        "Or": lambda: Or((arg, leaf)), "&": lambda: leaf & arg, "|": lambda: arg | leaf,
    }
    if op in raw:
        return raw[op]()  # type: ignore[no-any-return]
    method = getattr(F(name), op)
    return method() if op in ("exists", "missing") else method(arg)  # type: ignore[no-any-return]


def filters() -> st.SearchStrategy[Any]:
    """Every filter form: None, dicts, strings, Filter trees (too deep or too wide too), wrong types,
    descriptions of F(...) filters to build (``("node", spec)``) and compiled filters."""
    deep = st.integers(1, 120).map(lambda n: _wrap_not(F("a") == 1, n))
    return st.one_of(
        st.none(), filter_dicts(), filter_texts(),
        fst.filters(max_leaves=10),
        deep,
        filter_nodes().map(lambda spec: ("node", spec)),
        fst.filters(max_leaves=4).map(lambda f: compile_filter(f, max_depth=None, max_clauses=None)),
        st.sampled_from(
            (
                12, 1.5, True, b"a == 1", ["a == 1"], ("a", 1), {"a", "b"}, Opaque(), F("a"),
                StrSub("a == 1"), Version("1.2"),
            )
        ),
    )


def _wrap_not(f: Filter, n: int) -> Filter:
    for _ in range(min(n, 99)):
        f = Not(f)
    return f


def resolve_filter(flt: Any) -> Any:
    """A drawn filter as the caller would pass it (builds ``("node", spec)``; may raise FilterError)."""
    if isinstance(flt, tuple) and len(flt) == 2 and flt[0] == "node":
        return build_node(flt[1])
    return flt


# ----------------------------------------------------------------------------- configs

_CONFIG_KEYS = tuple(Config.keys())
_CONFIG_VALUES: tuple[Any, ...] = (
    None, 0, 1, -1, 2, 16, 15, 256, 10_000, 2**31, 2**63 - 1, 2**63, 2**64, 10**30, HUGE, 0.0, 0.5, 1.0,
    -0.0, 1e-300, 1e9, 1e9 + 1, 1e308, math.nan, math.inf, -math.inf, True, False, "", "5", "publish", "ack",
    "shout", "auto", [1], {"a": 1}, b"x", IntSub(7), Color.RED, Decimal("2"), StrSub("publish"),
)


def config_kwargs(odd_keys: bool = False) -> st.SearchStrategy[dict[Any, Any]]:
    """Keyword sets for ``Config(**kw)`` / ``Config.from_dict``: known keys with edge values, unknown keys
    (with ``odd_keys``, keys that are not even str: a mapping can hold them, ``**kw`` cannot)."""
    known = st.dictionaries(st.sampled_from(_CONFIG_KEYS), pick(_CONFIG_VALUES), max_size=5)
    names = st.one_of(odd_text(8), st.sampled_from(("default_tll", "maxIdentities", "ttl")))
    if odd_keys:
        names = st.one_of(names, pick((1, None, b"k", ("t",), HUGE)))
    unknown = st.dictionaries(names, pick(_CONFIG_VALUES), max_size=2)
    return st.one_of(known, known, known, st.builds(lambda a, b: {**a, **b}, known, unknown))


def config_inputs() -> st.SearchStrategy[tuple[str, Any]]:
    """How a Config is made: ``("kwargs", kw)``, ``("dict", mapping-or-not)`` or ``("yaml", text)``."""
    odd_mapping = st.sampled_from((None, [], "default_ttl: 5", 5, [("default_ttl", 5)]))
    yaml_text = st.one_of(
        st.lists(
            st.tuples(
                st.sampled_from((*_CONFIG_KEYS, "config", "x")),
                st.sampled_from(
                    (
                        "5", "-1", ".nan", ".inf", "null", "yes", "'5'", "[1]", "{a: 1}", "1e400",
                        "99999999999999999999999", "9" * 5000, "publish", "!!binary aGk=", "&a 1", "*a",
                        "{",
                    )
                ),
            ),
            max_size=5,
        ).map(lambda kv: "\n".join(f"{k}: {v}" for k, v in kv)),
        odd_text(40),
        st.sampled_from(
            (
                "", "- 1\n- 2", "config: 5", "config:\n  default_ttl: 5", "\x00", "a: b: c",
                "%YAML 9.9\n---\na: 1", "default_ttl: " + "[" * 3000, "config: " + "{a: " * 3000,
            )
        ),
    )
    return st.one_of(
        st.tuples(st.just("kwargs"), config_kwargs()),
        st.tuples(st.just("dict"), st.one_of(config_kwargs(odd_keys=True), odd_mapping)),
        st.tuples(st.just("yaml"), yaml_text),
    )


__all__ = [
    "BIG_INTS", "HUGE_INT", "SPECIAL_FLOATS", "build_node", "config_inputs", "config_kwargs", "filter_texts",
    "filters", "identity_names", "metadata", "odd_text", "odd_values", "payloads", "resolve_filter", "ttls",
]
