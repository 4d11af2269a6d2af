"""``F("status") == "online"``: build filters with Python operators."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

from mcastlab.errors import FilterError

from ._ast import Compare, Contains, Exists, In, Not, StartsWith
from ._lexical import canonical_field


@dataclass(frozen=True, slots=True, eq=False)
class Field:
    """A metadata field (a dotted path such as ``"hw.model"``); its operators return filters.

    ``F("x") == 1``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` build :class:`Compare`; ``.isin([...])``,
    ``.notin([...])``, ``.exists()``, ``.startswith(prefix)``, ``.contains(value)`` the other leaves.
    """

    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", canonical_field(self.name))

    def __eq__(self, value: Any) -> Compare:  # type: ignore[override]
        return Compare(self.name, "==", value)

    def __ne__(self, value: Any) -> Compare:  # type: ignore[override]
        return Compare(self.name, "!=", value)

    def __lt__(self, value: Any) -> Compare:
        return Compare(self.name, "<", value)

    def __le__(self, value: Any) -> Compare:
        return Compare(self.name, "<=", value)

    def __gt__(self, value: Any) -> Compare:
        return Compare(self.name, ">", value)

    def __ge__(self, value: Any) -> Compare:
        return Compare(self.name, ">=", value)

    __hash__ = None  # type: ignore[assignment]

    def isin(self, values: Iterable[Any]) -> In:
        """True when the field equals (strictly) one of ``values``."""
        return In(self.name, values)  # type: ignore[arg-type]

    def notin(self, values: Iterable[Any]) -> In:
        """True when the field is present and equals none of ``values``."""
        return In(self.name, values, negated=True)  # type: ignore[arg-type]

    def exists(self) -> Exists:
        """True when the identity has the field (even if null)."""
        return Exists(self.name)

    def missing(self) -> Not:
        """True when the identity lacks the field: ``~F(name).exists()``."""
        return Not(Exists(self.name))

    def startswith(self, prefix: str) -> StartsWith:
        """True when the field is a str starting with ``prefix``."""
        return StartsWith(self.name, prefix)

    def contains(self, value: Any) -> Contains:
        """True when the field is a str containing the str ``value`` or a list holding ``value``."""
        return Contains(self.name, value)

    def _misuse(self, *_: object) -> NoReturn:
        raise FilterError(
            f"F({self.name!r}) is a field, not a filter: compare it first, and put comparisons in "
            "parentheses because & | ~ bind tighter than ==: (F('a') == 1) & (F('b') == 2)"
        )

    __and__ = __rand__ = __or__ = __ror__ = __invert__ = __bool__ = _misuse


def field(name: str) -> Field:
    """Return the :class:`Field` ``name`` (also exported as ``F``)."""
    return Field(name)


F = field


__all__ = ["F", "Field", "field"]
