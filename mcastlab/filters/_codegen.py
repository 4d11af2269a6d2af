"""Compile a :class:`Filter` to a fast predicate ``metadata -> bool``.

The filter is turned into the source of one Python expression and compiled with :func:`compile`, so a
3-equality filter costs about as much as a hand-unrolled closure. **No user text ever enters the
source**: field names, values, prefixes and lists become free variables ``_c0``, ``_c1``, ... bound
from a list of constants; the source holds only generated names, operators and the keywords
``True``/``False``/``None`` chosen by value type. The code runs with empty ``__builtins__``.

Strict typing in the fast path: ``m.get(k) == 5`` would accept ``True`` for ``1`` and ``False`` for
``0``, so equality with a number equal to 0 or 1 adds a bool guard; ordering checks the field's type
first; ``in`` lists and list membership dispatch on type (see :func:`_member`, :func:`_has`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mcastlab.errors import FilterError

from ._ast import All, And, Compare, Contains, Exists, Filter, In, Not, Or, StartsWith
from ._lexical import field_path
from ._version import Version, version_key

Predicate = Callable[[Mapping[str, Any]], bool]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()
_TRUE_TOKEN = object()  # stands for True inside an ``in`` table, so that True is not 1
_FALSE_TOKEN = object()
_NUM = frozenset({int, float})
_STR_OR_LIST = frozenset({str, list})


def lookup(m: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` in nested mappings, or :data:`MISSING`."""
    cur: Any = m
    for key in path:
        if type(cur) is not dict and not isinstance(cur, Mapping):
            return MISSING
        cur = cur.get(key, MISSING)
        if cur is MISSING:
            return MISSING
    return cur


def strict_eq(a: Any, b: Any) -> bool:
    """Equality by the filter rules: same JSON type (int and float are one type, bool is not)."""
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return a is b
    if ta in _NUM:
        return tb in _NUM and a == b
    if ta is str:
        return tb is str and a == b
    return a is None and b is None


def _member(x: Any, table: frozenset[Any]) -> bool:
    t = type(x)
    if t is bool:
        return (_TRUE_TOKEN if x else _FALSE_TOKEN) in table
    if t is str or t is int or t is float or x is None:
        return x in table
    return False


def _has(seq: Any, value: Any) -> bool:
    return type(seq) is list and any(strict_eq(item, value) for item in seq)


def _table(values: tuple[Any, ...]) -> frozenset[Any]:
    return frozenset(
        (_TRUE_TOKEN if v else _FALSE_TOKEN) if type(v) is bool else v for v in values
    )


def _bool_twin(v: Any) -> str | None:
    """The bool literal that Python's == confuses with the number ``v`` (1 -> True, 0 -> False)."""
    if type(v) in _NUM:
        return "True" if v == 1 else "False" if v == 0 else None
    return None


class _Gen:
    def __init__(self) -> None:
        self.consts: list[Any] = []
        self.temps = 0

    def const(self, value: Any) -> str:
        self.consts.append(value)
        return f"_c{len(self.consts) - 1}"

    def temp(self) -> str:
        self.temps += 1
        return f"_t{self.temps}"

    def access(self, name: str, *, plain: bool = False) -> str:
        """Expression for the field's value, or _M if missing (or None if ``plain``: a bit faster,
        for tests that are false for None anyway)."""
        path = field_path(name)
        if len(path) == 1:
            return f"m.get({self.const(path[0])})" if plain else f"m.get({self.const(path[0])}, _M)"
        # Fast path through plain dicts; anything else (a missing step, another Mapping) goes to lookup().
        inner = f"m.get({self.const(path[0])})"
        for key in path[1:-1]:
            t = self.temp()
            inner = f"({t}.get({self.const(key)}) if type({t} := {inner}) is dict else None)"
        t = self.temp()
        return (f"({t}.get({self.const(path[-1])}, _M) if type({t} := {inner}) is dict "
                f"else _lk(m, {self.const(path)}))")

    def expr(self, f: Filter) -> str:
        if isinstance(f, All):
            return "True"
        if isinstance(f, And):
            return "(" + " and ".join(self.expr(c) for c in f.children) + ")"
        if isinstance(f, Or):
            return "(" + " or ".join(self.expr(c) for c in f.children) + ")"
        if isinstance(f, Not):
            return f"(not {self.expr(f.child)})"
        if isinstance(f, Compare):
            return self.compare(f)
        if isinstance(f, In):
            return self.isin(f)
        if isinstance(f, Exists):
            path = field_path(f.field)
            if len(path) == 1:
                return f"({self.const(path[0])} in m)"
            return f"({self.access(f.field)} is not _M)"
        if isinstance(f, StartsWith):
            t = self.temp()
            return f"(type({t} := {self.access(f.field)}) is str and {t}.startswith({self.const(f.prefix)}))"
        if isinstance(f, Contains):
            return self.contains(f)
        raise FilterError(f"not a filter node: {f!r}")  # pragma: no cover - AST is closed

    def compare(self, f: Compare) -> str:
        op, v, t = f.op, f.value, self.temp()
        twin = _bool_twin(v)
        if op == "==" and twin is None and type(v) in (str, int, float):
            # None, the missing field and every other type are != v: no type test needed.
            return f"({self.access(f.field, plain=True)} == {self.const(v)})"
        if v is None or type(v) is bool:
            literal = repr(v)  # 'None', 'True' or 'False': chosen by type, never user text
            if op == "==":
                return f"({self.access(f.field, plain=v is not None)} is {literal})"
            if op == "!=":
                return f"(({t} := {self.access(f.field)}) is not _M and {t} is not {literal})"
            return "False"  # no order between booleans or nulls
        a = self.access(f.field)
        if type(v) is Version:
            key = self.const(v.key)
            if op == "==":
                return f"(_vk({a}) == {key})"
            if op == "!=":
                return f"(({t} := {a}) is not _M and _vk({t}) != {key})"
            return f"(({t} := _vk({a})) is not None and {t} {op} {key})"
        c = self.const(v)
        if op == "==":  # a number equal to 0 or 1: exclude its bool twin
            return f"(({t} := {a}) == {c} and {t} is not {twin})"
        if op == "!=":
            if twin is None:
                return f"(({t} := {a}) is not _M and {t} != {c})"
            return f"(({t} := {a}) is not _M and ({t} != {c} or {t} is {twin}))"
        kind = "is str" if type(v) is str else "in _NUM"
        return f"(type({t} := {a}) {kind} and {t} {op} {c})"

    def isin(self, f: In) -> str:
        a, t = self.access(f.field), self.temp()
        if all(type(v) is str for v in f.values):
            test = f"(type({t}) is str and {t} in {self.const(frozenset(f.values))})"
        else:
            test = f"_member({t}, {self.const(_table(f.values))})"
        if f.negated:
            return f"(({t} := {a}) is not _M and not {test})"
        return f"(({t} := {a}) is not _M and {test})"

    def contains(self, f: Contains) -> str:
        a, v, t = self.access(f.field), f.value, self.temp()
        c = self.const(v)
        if type(v) is str:
            return f"(type({t} := {a}) in _SL and {c} in {t})"
        if v is None or (type(v) in _NUM and _bool_twin(v) is None):
            return f"(type({t} := {a}) is list and {c} in {t})"
        return f"_has({a}, {c})"


_BUILTINS: dict[str, Any] = {
    "type": type,
    "str": str,
    "list": list,
    "dict": dict,
    "_M": MISSING,
    "_lk": lookup,
    "_vk": version_key,
    "_member": _member,
    "_has": _has,
    "_NUM": _NUM,
    "_SL": _STR_OR_LIST,
}


def build_predicate(f: Filter) -> tuple[Predicate, str]:
    """Return ``(predicate, generated source)`` for ``f``."""
    gen = _Gen()
    body = gen.expr(f)
    free = [*_BUILTINS, *(f"_c{i}" for i in range(len(gen.consts)))]
    source = (
        f"def _make({', '.join(free)}):\n"
        f"    def _predicate(m):\n"
        f"        return {body}\n"
        f"    return _predicate\n"
    )
    namespace: dict[str, Any] = {"__builtins__": {}}
    exec(compile(source, "<mcastlab filter>", "exec"), namespace)
    predicate = namespace["_make"](*_BUILTINS.values(), *gen.consts)
    return predicate, source


__all__ = ["MISSING", "Predicate", "build_predicate", "lookup", "strict_eq"]
