"""Lexical pieces shared by the AST (rendering), the parser and the compilers.

Field names
-----------
A field name is a dotted path into nested dicts: ``"hw.model"`` reads ``metadata["hw"]["model"]``.
A path segment that itself contains a dot (or starts with a backquote) is written in backquotes, with
a backquote inside doubled: ``"`a.b`"`` is the top-level key ``a.b``; ``"`a.b`.c"`` is
``metadata["a.b"]["c"]``. :func:`field_path` splits a name into its segments and :func:`field_name`
joins segments back into the canonical name (backquotes only where needed).

In the string syntax, a segment that is not a plain identifier (letters, digits, ``_``; not starting
with a digit) or that is a reserved word is written in backquotes: :func:`render_field`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from mcastlab.errors import FilterError, preview

from ._version import Version

IDENT_RE = re.compile(r"[^\W\d]\w*")
RESERVED = frozenset(
    {"and", "or", "not", "in", "true", "false", "null", "none", "exists", "contains", "startswith"}
)
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

Scalar = str | int | float | bool | None
"""A JSON scalar usable as a filter value."""


# --------------------------------------------------------------------------- field names


def field_path(name: str) -> tuple[str, ...]:
    """Split a field name into path segments: ``"hw.model"`` -> ``("hw", "model")``.

    Raises :class:`FilterError` for a name that is not a ``str``, is empty or has an empty segment.
    """
    if type(name) is not str:
        raise FilterError(
            f"a field name must be a str such as 'status' or 'hw.model', got {type(name).__name__} "
            f"{preview(name)}"
        )
    if not name:
        raise FilterError("a field name must not be empty; name a metadata key such as 'status'")
    segments: list[str] = []
    i, n = 0, len(name)
    while True:
        if name[i] == "`":
            parts: list[str] = []
            j = i + 1
            while True:
                k = name.find("`", j)
                if k < 0:
                    raise FilterError(
                        f"field name {name!r:.80} has an unclosed backquote at position {i}; "
                        "write `a.b` for a key containing a dot"
                    )
                if k + 1 < n and name[k + 1] == "`":
                    parts.append(name[j : k + 1])
                    j = k + 2
                    continue
                parts.append(name[j:k])
                i = k + 1
                break
            segment = "".join(parts)
            if i < n and name[i] != ".":
                raise FilterError(
                    f"field name {name!r:.80}: expected '.' after the backquoted part ending at "
                    f"position {i - 1}"
                )
        else:
            k = name.find(".", i)
            k = n if k < 0 else k
            segment = name[i:k]
            i = k
        if not segment:
            raise FilterError(
                f"field name {name!r:.80} has an empty part; use 'a.b' for nested keys and "
                "backquotes (`a.b`) for a key that contains a dot"
            )
        segments.append(segment)
        if i >= n:
            return tuple(segments)
        i += 1  # skip the dot
        if i >= n:
            raise FilterError(f"field name {name!r:.80} ends with a dot; remove it or backquote the key")


def _quote_segment(segment: str) -> str:
    return "`" + segment.replace("`", "``") + "`"


def field_name(segments: Iterable[str]) -> str:
    """Join path segments into the canonical field name (inverse of :func:`field_path`)."""
    return ".".join(
        _quote_segment(s) if ("." in s or s.startswith("`")) else s for s in segments
    )


def canonical_field(name: str) -> str:
    """Validate a field name and return its canonical spelling."""
    return field_name(field_path(name))


def render_field(name: str) -> str:
    """Render a (canonical) field name in the string syntax."""
    return ".".join(
        s if IDENT_RE.fullmatch(s) and s.lower() not in RESERVED else _quote_segment(s)
        for s in field_path(name)
    )


# --------------------------------------------------------------------------- values

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote_string(text: str) -> str:
    """Render ``text`` as a double-quoted string literal that the parser reads back exactly."""
    out = ['"']
    for ch in text:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def render_value(value: Any) -> str:
    """Render a validated filter value (scalar or :class:`Version`) in the string syntax."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is str:
        return quote_string(value)
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return repr(value)
    if type(value) is Version:
        return "v" + quote_string(value.text)
    raise FilterError(f"cannot render filter value {value!r:.60}")  # pragma: no cover - validated


def check_scalar(value: Any, what: str, *, allow_version: bool = False) -> Any:
    """Return ``value`` if it is a valid filter value, else raise :class:`FilterError`.

    Valid: ``str``, ``bool``, ``None``, ``int`` within the signed 64-bit range, finite ``float``,
    and (where allowed) :class:`Version`.
    """
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise FilterError(
                f"{what}: integer {preview(value)} is outside the signed 64-bit range that backends support"
            )
        return value
    if t is float:
        if not math.isfinite(value):
            raise FilterError(f"{what}: {value!r} is not a finite number; metadata never holds NaN or inf")
        return value
    if t is Version and allow_version:
        return value
    if isinstance(value, list | tuple | set | frozenset):
        hint = "use 'in' for a list of values: F(name).isin([...]) or \"name in [...]\""
    elif isinstance(value, dict):
        hint = "compare nested keys with a dotted path instead: F('a.b') == 1 or {'a.b': 1}"
    elif t is Version:
        hint = "version literals work only with ==, !=, <, <=, >, >="
    else:
        hint = "use str, int, float, bool or None" + (" (or Version)" if allow_version else "")
    raise FilterError(f"{what}: {t.__name__} {preview(value)} is not a valid filter value; {hint}")


def value_tag(value: Any) -> tuple[str, Any]:
    """A type-strict identity for a filter value: ``1``, ``1.0`` and ``True`` all differ."""
    if type(value) is Version:
        return ("version", value.text)
    return (type(value).__name__, value)


__all__ = [
    "IDENT_RE",
    "RESERVED",
    "Scalar",
    "canonical_field",
    "check_scalar",
    "field_name",
    "field_path",
    "quote_string",
    "render_field",
    "render_value",
    "value_tag",
]
