"""``to_filter``: accept every filter form (None, dict, str, Filter) and return a :class:`Filter`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcastlab.errors import FilterError, preview

from ._ast import All, And, Compare, Filter
from ._field import Field
from ._parser import parse

_FORMS = (
    "None (match all), a dict of equalities such as {'status': 'online'}, a string such as "
    "'status == \"online\"', or a Filter built with F()"
)


def to_filter(obj: object) -> Filter:
    """Return ``obj`` as a :class:`Filter`.

    * ``None`` -> :class:`All`;
    * a dict -> the AND of ``key == value`` (keys are field names, dotted paths allowed; values must be
      scalars: str, int, float, bool, None, or a Version; ``{}`` -> :class:`All`);
    * a str -> :func:`parse`;
    * a :class:`Filter` -> itself.

    Anything else raises :class:`~mcastlab.errors.FilterError` naming the accepted forms.
    """
    if obj is None:
        return All()
    if isinstance(obj, Filter):
        return obj
    if isinstance(obj, str):
        return parse(obj)
    if isinstance(obj, Mapping):
        return _from_dict(obj)
    if isinstance(obj, Field):
        raise FilterError(f"F({obj.name!r}) is a field, not a filter; compare it: F({obj.name!r}) == value")
    raise FilterError(f"a filter must be {_FORMS}; got {type(obj).__name__} {preview(obj)}")


def _from_dict(obj: Mapping[Any, Any]) -> Filter:
    parts: list[Filter] = []
    for key, value in obj.items():
        if type(key) is not str or not key:
            raise FilterError(
                f"filter dict keys must be non-empty field names (str), got {type(key).__name__} "
                f"{preview(key, 40)}"
            )
        if isinstance(value, list | tuple | set | frozenset):
            raise FilterError(
                f"filter dict value for {key!r} is a {type(value).__name__}; a dict filter tests equality "
                f"with scalars only. To match any of several values use In: F({key!r}).isin([...]) "
                f"or the string form '{key} in [...]'"
            )
        parts.append(Compare(key, "==", value))
    if not parts:
        return All()
    return parts[0] if len(parts) == 1 else And(tuple(parts))


__all__ = ["to_filter"]
