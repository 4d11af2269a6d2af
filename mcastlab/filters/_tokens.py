"""Tokenizer of the filter string syntax: text -> :class:`Token` list (no evaluation of anything)."""

from __future__ import annotations

import re
from typing import NamedTuple

from mcastlab.errors import FilterError, FilterSyntaxError

from ._lexical import IDENT_RE
from ._version import Version

_NUMBER_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_DIGITS = frozenset("0123456789")
_WS_RE = re.compile(r"\s+")
_CMP_OPS = ("==", "!=", "<=", ">=", "<", ">")
_BAD_OPS = {
    "===": "use == for equality",
    "!==": "use != for inequality",
    "=~": "regular expressions are not supported; use startswith or contains",
    "~=": "regular expressions are not supported; use startswith or contains",
    "<>": "use != for inequality",
    "=>": "use >=",
    "=<": "use <=",
    "&&": "use 'and' (or &)",
    "||": "use 'or' (or |)",
    "=": "use == for equality",
    "!": "use 'not' (or ~)",
}
_ALL_OPS = sorted({*_CMP_OPS, *_BAD_OPS}, key=len, reverse=True)
_SIMPLE_ESCAPES = {
    "\\": "\\", '"': '"', "'": "'", "/": "/", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f",
    "0": "\0",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_PUNCT = {"(": "(", ")": ")", "[": "[", "]": "]", ",": ",", ".": ".", "&": "and", "|": "or", "~": "not"}


class Token(NamedTuple):
    kind: str  # ident, name (backquoted), str, version, num, op, ( ) [ ] , . and or not, eof
    value: object
    pos: int


def describe(tok: Token) -> str:
    if tok.kind == "eof":
        return "the end of the filter"
    if tok.kind == "ident":
        return f"name {tok.value!r}"
    if tok.kind == "name":
        return f"field `{tok.value}`"
    if tok.kind == "str":
        return f"string {tok.value!r:.40}"
    if tok.kind == "num":
        return f"number {tok.value!r}"
    if tok.kind == "version":
        return f"version v{tok.value!r}"
    if tok.kind == "op":
        return f"'{tok.value}'"
    return f"'{tok.value}'" if tok.kind in ("and", "or", "not") else f"'{tok.kind}'"


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; raise :class:`FilterSyntaxError` on a character that fits nowhere."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while True:
        m = _WS_RE.match(text, i)
        if m:
            i = m.end()
        if i >= n:
            tokens.append(Token("eof", None, n))
            return tokens
        ch = text[i]
        if ch in "\"'":
            value, end = _read_string(text, i)
            tokens.append(Token("str", value, i))
            i = end
        elif ch in "vV" and i + 1 < n and text[i + 1] in "\"'":
            value, end = _read_string(text, i + 1)
            try:
                version = Version(value)
            except FilterError as exc:
                raise FilterSyntaxError(str(exc), text=text, position=i) from None
            tokens.append(Token("version", version, i))
            i = end
        elif ch == "`":
            value, end = _read_backquoted(text, i)
            tokens.append(Token("name", value, i))
            i = end
        elif ch in _DIGITS or (ch == "-" and i + 1 < n and text[i + 1] in _DIGITS):  # not '²': not a number
            tokens.append(_read_number(text, i))
            i = _NUMBER_RE.match(text, i).end()  # type: ignore[union-attr]
        elif (m := IDENT_RE.match(text, i)) is not None:
            tokens.append(Token("ident", m.group(), i))
            i = m.end()
        else:
            op = next((op for op in _ALL_OPS if text.startswith(op, i)), "")
            if op in _BAD_OPS:
                raise FilterSyntaxError(f"unknown operator {op!r}: {_BAD_OPS[op]}", text=text, position=i)
            if op:
                tokens.append(Token("op", op, i))
                i += len(op)
            elif ch in _PUNCT:
                kind = _PUNCT[ch]
                tokens.append(Token(kind, ch, i))
                i += 1
            else:
                raise FilterSyntaxError(f"unexpected character {ch!r}", text=text, position=i)


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch != "\\":
            j = i + 1
            while j < n and text[j] != quote and text[j] != "\\":
                j += 1
            out.append(text[i:j])
            i = j
            continue
        if i + 1 >= n:
            break
        esc = text[i + 1]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
        elif esc in _HEX_ESCAPES:
            width = _HEX_ESCAPES[esc]
            digits = text[i + 2 : i + 2 + width]
            if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise FilterSyntaxError(
                    f"bad escape '\\{esc}': expected {width} hex digits", text=text, position=i
                )
            code = int(digits, 16)
            if code > 0x10FFFF:
                raise FilterSyntaxError(f"escape '\\{esc}{digits}' is beyond Unicode", text=text, position=i)
            out.append(chr(code))
            i += 2 + width
        else:
            raise FilterSyntaxError(
                f"unknown escape '\\{esc}' in a string; use \\\\ for a backslash", text=text, position=i
            )
    raise FilterSyntaxError(f"unterminated string: close it with {quote}", text=text, position=start)


def _read_backquoted(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while True:
        k = text.find("`", i)
        if k < 0:
            raise FilterSyntaxError("unterminated `field name`: close it with `", text=text, position=start)
        if text.startswith("``", k):
            out.append(text[i : k + 1])
            i = k + 2
            continue
        out.append(text[i:k])
        name = "".join(out)
        if not name:
            raise FilterSyntaxError("empty `` field name", text=text, position=start)
        return name, k + 1


def _read_number(text: str, start: int) -> Token:
    m = _NUMBER_RE.match(text, start)
    assert m is not None
    end = m.end()
    raw = m.group()
    if end < len(text) and text[end] == "." and end + 1 < len(text) and text[end + 1].isdigit():
        raise FilterSyntaxError(
            f"{raw}.{text[end + 1]}... looks like a version: write it as v\"...\", e.g. v\"1.2.3\"",
            text=text,
            position=start,
        )
    if end < len(text) and (text[end].isalnum() or text[end] == "_"):
        raise FilterSyntaxError(f"unexpected {text[end]!r} after the number {raw}", text=text, position=end)
    if m.group(1) or m.group(2):
        value: object = float(raw)
        if value in (float("inf"), float("-inf")):
            raise FilterSyntaxError(f"number {raw} is too large", text=text, position=start)
    else:
        try:
            value = int(raw)
        except ValueError:  # more digits than int() accepts
            raise FilterSyntaxError("integer literal is too long", text=text, position=start) from None
    return Token("num", value, start)


__all__ = ["Token", "describe", "tokenize"]
