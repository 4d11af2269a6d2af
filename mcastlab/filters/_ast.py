"""Filter AST: frozen, slotted dataclasses that validate on construction.

Every node is immutable and hashable. Equality is structural and type-strict: ``F("x") == 1`` and
``F("x") == True`` are different filters (plain dataclass equality would call them equal, since
``1 == True`` in Python). ``str(node)`` is the canonical string form, which :func:`parse` reads back
to an equal node.

Each node knows its ``depth`` (a leaf is 1, ``All`` is 0, ``And``/``Or``/``Not`` are one more than their
deepest child) and its number of ``clauses`` (leaves). Trees deeper than :data:`HARD_MAX_DEPTH` or with
more than :data:`HARD_MAX_CLAUSES` leaves cannot be built at all, whatever the configured limits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, ClassVar, NoReturn

from mcastlab.errors import FilterError, FilterTooComplexError, preview

from ._lexical import canonical_field, check_scalar, quote_string, render_field, render_value, value_tag

HARD_MAX_DEPTH = 100
"""No filter may nest deeper than this, even with ``max_depth=None``."""
HARD_MAX_CLAUSES = 10_000
"""No filter may hold more leaves than this, even with ``max_clauses=None``."""
MAX_IN_VALUES = 10_000
"""The most values one ``in [...]`` list may hold."""

COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=")
_OP_HINTS = {
    "=": "use == for equality",
    "===": "use == for equality",
    "<>": "use != for inequality",
    "=<": "use <=",
    "=>": "use >=",
    "=~": "regular expressions are not supported; use startswith or contains",
    "~=": "regular expressions are not supported; use startswith or contains",
    "in": "use In(field, values) or F(field).isin(values)",
    "not in": "use In(field, values, negated=True) or F(field).notin(values)",
}

# Rendering precedence: a child binding looser than its parent needs parentheses.
_PREC_OR, _PREC_AND, _PREC_NOT, _PREC_LEAF = 1, 2, 3, 4


class Filter:
    """Base class of filter nodes. Combine filters with ``&`` (and), ``|`` (or) and ``~`` (not)."""

    __slots__ = ()
    _prec: ClassVar[int] = _PREC_LEAF

    @property
    def depth(self) -> int:
        """Nesting depth: 1 for a leaf, 0 for :class:`All`."""
        return 1

    @property
    def clauses(self) -> int:
        """Number of leaf conditions."""
        return 1

    def _ident(self) -> tuple[Any, ...]:
        raise FilterError(f"{type(self).__name__} is not a filter node mcastlab knows: build filters from "
                          "And, Or, Not, Compare, In, Exists, StartsWith, Contains and All")

    def _render(self) -> str:
        self._ident()  # the same refusal: an unknown node kind cannot be rendered either
        return ""

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not type(self):
            return False
        return self._ident() == other._ident()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._ident())

    def __str__(self) -> str:
        return self._render()

    def __and__(self, other: object) -> Filter:
        other = _operand(other, "&")
        return And((*_flat(And, self), *_flat(And, other)))

    def __or__(self, other: object) -> Filter:
        other = _operand(other, "|")
        return Or((*_flat(Or, self), *_flat(Or, other)))

    def __rand__(self, other: object) -> Filter:
        return _operand(other, "&") & self

    def __ror__(self, other: object) -> Filter:
        return _operand(other, "|") | self

    def __invert__(self) -> Filter:
        return Not(self)

    def __bool__(self) -> NoReturn:
        raise FilterError(
            "a filter has no truth value: combine filters with & | ~ instead of and/or/not, and put "
            "comparisons in parentheses: (F('a') == 1) & (F('b') == 2); chained comparisons such as "
            "1 < F('x') < 5 must be written (F('x') > 1) & (F('x') < 5)"
        )


def _operand(other: object, op: str) -> Filter:
    if isinstance(other, Filter):
        return other
    raise FilterError(
        f"cannot combine a filter with {type(other).__name__} {preview(other, 40)} using {op}; both sides "
        "must be filters. Remember that & and | bind tighter than ==: write (F('a') == 1) & (F('b') == 2), "
        "and convert dicts or strings with to_filter()"
    )


def _flat(cls: type, f: Filter) -> tuple[Filter, ...]:
    return f.children if type(f) is cls else (f,)  # type: ignore[attr-defined]


def _paren(child: Filter, min_prec: int) -> str:
    text = child._render()
    return f"({text})" if child._prec < min_prec else text


def _check_children(children: object, what: str) -> tuple[Filter, ...]:
    if isinstance(children, Filter | str | bytes | dict) or not isinstance(children, Iterable):
        raise FilterError(f"{what}() takes a tuple of filters, e.g. {what}((F('a') == 1, F('b') == 2))")
    result = tuple(children)
    for child in result:
        if not isinstance(child, Filter):
            raise FilterError(
                f"{what}() children must be filters, got {type(child).__name__} {preview(child, 40)}; "
                "convert dicts and strings with to_filter()"
            )
    if len(result) < 2:
        raise FilterError(
            f"{what}() needs at least two children, got {len(result)}; use the child itself "
            "(or All() for an empty And)"
        )
    return result


def _limit_size(depth: int, clauses: int) -> None:
    if depth > HARD_MAX_DEPTH:
        raise FilterTooComplexError(
            f"filter is {depth} levels deep; no filter may nest deeper than {HARD_MAX_DEPTH}. Flatten it"
        )
    if clauses > HARD_MAX_CLAUSES:
        raise FilterTooComplexError(
            f"filter has {clauses} clauses; no filter may have more than {HARD_MAX_CLAUSES}. "
            "Use 'in [...]' lists instead of long chains of =="
        )


@dataclass(frozen=True, slots=True, eq=False)
class All(Filter):
    """Matches every identity (the filter ``None``, ``{}`` or ``"true"``)."""

    _prec: ClassVar[int] = _PREC_LEAF

    @property
    def depth(self) -> int:
        return 0

    @property
    def clauses(self) -> int:
        return 0

    def _ident(self) -> tuple[Any, ...]:
        return ("all",)

    def _render(self) -> str:
        return "true"


@dataclass(frozen=True, slots=True, eq=False)
class _Group(Filter):
    children: tuple[Filter, ...]
    _depth: int = dc_field(init=False, repr=False)
    _clauses: int = dc_field(init=False, repr=False)

    def __post_init__(self) -> None:
        children = _check_children(self.children, type(self).__name__)
        depth = 1 + max(c.depth for c in children)
        clauses = sum(c.clauses for c in children)
        _limit_size(depth, clauses)
        object.__setattr__(self, "children", children)
        object.__setattr__(self, "_depth", depth)
        object.__setattr__(self, "_clauses", clauses)

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def clauses(self) -> int:
        return self._clauses

    def _ident(self) -> tuple[Any, ...]:
        return (type(self).__name__, self.children)


@dataclass(frozen=True, slots=True, eq=False)
class And(_Group):
    """True when every child is true (at least two children; ``a & b`` builds one)."""

    _prec: ClassVar[int] = _PREC_AND

    def _render(self) -> str:
        # Nested And/Or children keep their parentheses so that parse(str(f)) == f.
        return " and ".join(_paren(c, _PREC_NOT) for c in self.children)


@dataclass(frozen=True, slots=True, eq=False)
class Or(_Group):
    """True when at least one child is true (at least two children; ``a | b`` builds one)."""

    _prec: ClassVar[int] = _PREC_OR

    def _render(self) -> str:
        return " or ".join(_paren(c, _PREC_AND) for c in self.children)


@dataclass(frozen=True, slots=True, eq=False)
class Not(Filter):
    """True when the child is false (for identities that lack a field too)."""

    child: Filter
    _depth: int = dc_field(init=False, repr=False)
    _prec: ClassVar[int] = _PREC_NOT

    def __post_init__(self) -> None:
        if not isinstance(self.child, Filter):
            raise FilterError(
                f"Not() takes a filter, got {type(self.child).__name__} {preview(self.child, 40)}; "
                "convert dicts and strings with to_filter()"
            )
        depth = 1 + self.child.depth
        _limit_size(depth, self.child.clauses)
        object.__setattr__(self, "_depth", depth)

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def clauses(self) -> int:
        return self.child.clauses

    def _ident(self) -> tuple[Any, ...]:
        return ("not", self.child)

    def _render(self) -> str:
        return "not " + _paren(self.child, _PREC_NOT)


@dataclass(frozen=True, slots=True, eq=False)
class Compare(Filter):
    """``field op value`` with ``op`` one of ``== != < <= > >=``; ``value`` a scalar or Version."""

    field: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", canonical_field(self.field))
        if self.op not in COMPARE_OPS:
            hint = _OP_HINTS.get(self.op) if isinstance(self.op, str) else None
            raise FilterError(
                f"unknown comparison operator {preview(self.op, 20)}"
                + (f"; {hint}" if hint else f"; use one of {', '.join(COMPARE_OPS)}")
            )
        check_scalar(self.value, f"value compared with {self.field!r}", allow_version=True)

    def _ident(self) -> tuple[Any, ...]:
        return ("cmp", self.field, self.op, value_tag(self.value))

    def _render(self) -> str:
        return f"{render_field(self.field)} {self.op} {render_value(self.value)}"


@dataclass(frozen=True, slots=True, eq=False)
class In(Filter):
    """``field in [values]`` (or ``not in`` when ``negated``); values are scalars."""

    field: str
    values: tuple[Any, ...]
    negated: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", canonical_field(self.field))
        values = self.values
        if isinstance(values, str | bytes | dict) or not isinstance(values, Iterable):
            raise FilterError(
                f"the values for 'in' on {self.field!r} must be a list such as ['a', 'b'], got "
                f"{type(values).__name__} {preview(values, 40)}"
            )
        values = tuple(values)
        if len(values) > MAX_IN_VALUES:
            raise FilterTooComplexError(
                f"'in' on {self.field!r} lists {len(values)} values; the limit is {MAX_IN_VALUES}"
            )
        for v in values:
            check_scalar(v, f"value in the 'in' list for {self.field!r}")
        if type(self.negated) is not bool:
            raise FilterError(f"In(negated=...) must be True or False, got {preview(self.negated, 20)}")
        object.__setattr__(self, "values", values)

    def _ident(self) -> tuple[Any, ...]:
        return ("in", self.field, tuple(value_tag(v) for v in self.values), self.negated)

    def _render(self) -> str:
        items = ", ".join(render_value(v) for v in self.values)
        return f"{render_field(self.field)} {'not in' if self.negated else 'in'} [{items}]"


@dataclass(frozen=True, slots=True, eq=False)
class Exists(Filter):
    """True when the identity has the field (even if its value is null)."""

    field: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", canonical_field(self.field))

    def _ident(self) -> tuple[Any, ...]:
        return ("exists", self.field)

    def _render(self) -> str:
        return f"exists({render_field(self.field)})"


@dataclass(frozen=True, slots=True, eq=False)
class StartsWith(Filter):
    """True when the field is a str starting with ``prefix``."""

    field: str
    prefix: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", canonical_field(self.field))
        if type(self.prefix) is not str:
            raise FilterError(
                f"startswith on {self.field!r} needs a str prefix, got {type(self.prefix).__name__} "
                f"{preview(self.prefix, 40)}"
            )

    def _ident(self) -> tuple[Any, ...]:
        return ("startswith", self.field, self.prefix)

    def _render(self) -> str:
        return f"{render_field(self.field)}.startswith({quote_string(self.prefix)})"


@dataclass(frozen=True, slots=True, eq=False)
class Contains(Filter):
    """True when the field is a str containing the str ``value``, or a list holding ``value``."""

    field: str
    value: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", canonical_field(self.field))
        check_scalar(self.value, f"value for 'contains' on {self.field!r}")

    def _ident(self) -> tuple[Any, ...]:
        return ("contains", self.field, value_tag(self.value))

    def _render(self) -> str:
        return f"{render_field(self.field)} contains {render_value(self.value)}"


LEAVES = (Compare, In, Exists, StartsWith, Contains)

__all__ = [
    "COMPARE_OPS",
    "HARD_MAX_CLAUSES",
    "HARD_MAX_DEPTH",
    "LEAVES",
    "MAX_IN_VALUES",
    "All",
    "And",
    "Compare",
    "Contains",
    "Exists",
    "Filter",
    "In",
    "Not",
    "Or",
    "StartsWith",
]
