"""Hand-written recursive-descent parser for the filter string syntax.

Nothing here evaluates user text: the tokenizer (``_tokens.py``) produces tokens, the parser builds
AST nodes.

Grammar (keywords are case-insensitive; ``&`` ``|`` ``~`` are accepted for and/or/not)::

    filter    := or_expr EOF
    or_expr   := and_expr ("or" and_expr)*
    and_expr  := not_expr ("and" not_expr)*
    not_expr  := "not" not_expr | primary
    primary   := "(" or_expr ")" | "true" | "false"
               | "exists" "(" field ")" | "startswith" "(" field "," STRING ")"
               | "contains" "(" field "," value ")"
               | field ( CMP value | ["not"] "in" list | "exists" | "contains" value | "startswith" STRING
                       | "." "startswith" "(" STRING ")" | "." "contains" "(" value ")" )
    field     := segment ("." segment)*          segment := IDENT | `any text`
    value     := STRING | NUMBER | v"1.2.3" | true | false | null      (also True/False/None)
    list      := "[" [value ("," value)* [","]] "]"   (parentheses work too)
"""

from __future__ import annotations

from functools import lru_cache

from mcastlab.errors import FilterError, FilterSyntaxError, FilterTooComplexError

from ._ast import All, And, Compare, Contains, Exists, Filter, In, Not, Or, StartsWith
from ._lexical import field_name
from ._tokens import Token, describe, tokenize

MAX_FILTER_TEXT = 1_000_000
"""The longest filter string accepted, in characters."""
MAX_NESTING = 100
"""Parentheses and ``not`` may nest at most this deep."""

_LITERALS = {"true": True, "false": False, "null": None, "none": None}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.nesting = 0

    # ------------------------------------------------------------------ helpers
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> FilterSyntaxError:
        tok = tok or self.peek()
        return FilterSyntaxError(message, text=self.text, position=tok.pos)

    def is_kw(self, tok: Token, word: str) -> bool:
        return (tok.kind == "ident" and str(tok.value).lower() == word) or tok.kind == word

    def expect(self, kind: str, message: str) -> Token:
        tok = self.peek()
        if tok.kind != kind:
            raise self.error(f"{message}, found {describe(tok)}")
        return self.advance()

    def enter(self) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            tok = self.peek()
            raise FilterTooComplexError(
                f"filter nests deeper than {MAX_NESTING} levels of parentheses or 'not' "
                f"(at position {tok.pos}); flatten it"
            )

    def build(self, tok: Token, make: type[Filter], *args: object) -> Filter:
        try:
            return make(*args)
        except FilterTooComplexError:
            raise
        except FilterError as exc:
            raise FilterSyntaxError(str(exc), text=self.text, position=tok.pos) from None

    # ------------------------------------------------------------------ grammar
    def parse(self) -> Filter:
        if self.peek().kind == "eof":
            raise self.error("empty filter: write a condition such as status == \"online\" (or 'true', "
                             "or pass None, to match everything)")
        result = self.or_expr()
        tok = self.peek()
        if tok.kind != "eof":
            if tok.kind == ")":
                raise self.error("unbalanced ')': there is no '(' to close")
            raise self.error(f"expected 'and', 'or' or the end of the filter, found {describe(tok)}")
        return result

    def or_expr(self) -> Filter:
        first = self.peek()
        parts = [self.and_expr()]
        while self.is_kw(self.peek(), "or"):
            self.advance()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else self.build(first, Or, tuple(parts))

    def and_expr(self) -> Filter:
        first = self.peek()
        parts = [self.not_expr()]
        while self.is_kw(self.peek(), "and"):
            self.advance()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else self.build(first, And, tuple(parts))

    def not_expr(self) -> Filter:
        tok = self.peek()
        if self.is_kw(tok, "not"):
            self.advance()
            self.enter()
            child = self.not_expr()
            self.nesting -= 1
            return self.build(tok, Not, child)
        return self.primary()

    def primary(self) -> Filter:
        tok = self.peek()
        if tok.kind == "(":
            self.advance()
            self.enter()
            inner = self.or_expr()
            self.expect(")", f"expected ')' to close the '(' at position {tok.pos}")
            self.nesting -= 1
            return inner
        if tok.kind == "ident":
            word = str(tok.value).lower()
            call = self.peek(1).kind == "("
            if word in ("true", "false"):
                self.advance()
                if self.peek().kind == "op":
                    raise self.error(
                        f"{tok.value!r} is a literal; write `{tok.value}` to use it as a field name"
                    )
                return All() if word == "true" else Not(All())
            if call and word in ("exists", "startswith", "contains"):
                return self.function(word)
            if word in ("and", "or", "in", "null", "none", "exists", "contains", "startswith"):
                raise self.error(
                    f"expected a condition, found keyword {tok.value!r}; write `{tok.value}` to use it "
                    "as a field name"
                )
        if tok.kind not in ("ident", "name"):
            hint = "; put the field name on the left: status == \"online\"" if tok.kind in (
                "str", "num", "version") else ""
            raise self.error(
                f"expected a condition (a field name, 'not' or '('), found {describe(tok)}{hint}"
            )
        name = self.field()
        return self.postfix(name, tok)

    def field(self) -> str:
        segments = [str(self.advance().value)]
        while self.peek().kind == "." and not (
            self.peek(1).kind == "ident"
            and str(self.peek(1).value).lower() in ("startswith", "contains")
            and self.peek(2).kind == "("
        ):
            self.advance()
            seg = self.peek()
            if seg.kind not in ("ident", "name"):
                raise self.error(f"expected a field name after '.', found {describe(seg)}")
            segments.append(str(self.advance().value))
        return field_name(segments)

    def function(self, word: str) -> Filter:
        start = self.advance()
        self.advance()  # (
        tok = self.peek()
        if tok.kind not in ("ident", "name"):
            raise self.error(
                f"expected a field name as the first argument of {word}(), found {describe(tok)}"
            )
        name = self.field()
        if word == "exists":
            self.expect(")", "expected ')' after the field name in exists(...)")
            return self.build(start, Exists, name)
        self.expect(",", f"expected ',' after the field name in {word}(...)")
        return self.method_argument(word, name, start)

    def method_argument(self, word: str, name: str, start: Token) -> Filter:
        tok = self.peek()
        if word == "startswith":
            if tok.kind != "str":
                raise self.error(f"expected a string prefix for startswith, found {describe(tok)}")
            self.advance()
            self.expect(")", "expected ')' after the prefix of startswith(...)")
            return self.build(start, StartsWith, name, tok.value)
        value = self.value("contains")
        self.expect(")", "expected ')' after the value of contains(...)")
        return self.build(tok, Contains, name, value)

    def postfix(self, name: str, start: Token) -> Filter:
        tok = self.peek()
        if tok.kind == "op":
            self.advance()
            value_tok = self.peek()
            value = self.value(str(tok.value))
            return self.build(value_tok, Compare, name, str(tok.value), value)
        if self.is_kw(tok, "in"):
            self.advance()
            return self.build(start, In, name, self.list_literal("in"), False)
        if self.is_kw(tok, "not"):
            self.advance()
            if not self.is_kw(self.peek(), "in"):
                raise self.error(f"expected 'in' after 'not' (as in {name} not in [1, 2]), found "
                                 f"{describe(self.peek())}")
            self.advance()
            return self.build(start, In, name, self.list_literal("not in"), True)
        if self.is_kw(tok, "exists"):
            self.advance()
            return self.build(start, Exists, name)
        if self.is_kw(tok, "contains"):
            self.advance()
            value_tok = self.peek()
            return self.build(value_tok, Contains, name, self.value("contains"))
        if self.is_kw(tok, "startswith"):
            self.advance()
            prefix = self.peek()
            if prefix.kind != "str":
                raise self.error(f"expected a string prefix after 'startswith', found {describe(prefix)}")
            self.advance()
            return self.build(start, StartsWith, name, prefix.value)
        if tok.kind == ".":  # .startswith( / .contains(
            self.advance()
            word = str(self.advance().value).lower()
            self.advance()  # (
            return self.method_argument(word, name, start)
        raise self.error(
            "expected an operator (==, !=, <, <=, >, >=, in, not in, contains, exists, .startswith(...)) "
            f"after the field {name!r}, found {describe(tok)}"
        )

    def value(self, after: str) -> object:
        tok = self.peek()
        if tok.kind in ("str", "num", "version"):
            self.advance()
            return tok.value
        if tok.kind == "ident" and str(tok.value).lower() in _LITERALS:
            self.advance()
            return _LITERALS[str(tok.value).lower()]
        if tok.kind == "eof":
            raise self.error(f"expected a value after '{after}'")
        if tok.kind == "[":
            raise self.error(f"a list is not a value for '{after}'; use in: x in [1, 2]")
        hint = f'; strings need quotes: "{tok.value}"' if tok.kind == "ident" else ""
        raise self.error(f"expected a value after '{after}', found {describe(tok)}{hint}")

    def list_literal(self, after: str) -> tuple[object, ...]:
        open_tok = self.peek()
        if open_tok.kind not in ("[", "("):
            raise self.error(f"expected a list such as [1, 2] after '{after}', found {describe(open_tok)}")
        close = "]" if open_tok.kind == "[" else ")"
        self.advance()
        items: list[object] = []
        while self.peek().kind != close:
            tok = self.peek()
            if tok.kind == "version":
                raise self.error("version literals cannot go in a list; use comparisons joined with 'or'")
            if tok.kind in ("[", "("):
                raise self.error("lists cannot be nested; list scalar values only")
            if tok.kind == "eof":
                raise self.error(f"expected '{close}' to close the list opened at position {open_tok.pos}")
            items.append(self.value("["))
            if self.peek().kind == ",":
                self.advance()
            elif self.peek().kind != close:
                raise self.error(f"expected ',' or '{close}' in the list, found {describe(self.peek())}")
        self.advance()
        return tuple(items)


_CACHED_TEXT_LENGTH = 4096  # longer texts are parsed every time, so the cache stays small


@lru_cache(maxsize=1024)
def _parse_cached(text: str) -> Filter:
    return _Parser(text).parse()


def parse(text: str) -> Filter:
    """Parse a filter string into a :class:`Filter`; raise :class:`FilterSyntaxError` if invalid."""
    if type(text) is not str:
        raise FilterError(f"parse() takes a str, got {type(text).__name__}")
    if len(text) > MAX_FILTER_TEXT:
        raise FilterError(f"filter text is {len(text)} characters; the limit is {MAX_FILTER_TEXT}")
    if len(text) > _CACHED_TEXT_LENGTH:
        return _Parser(text).parse()
    return _parse_cached(text)


__all__ = ["MAX_FILTER_TEXT", "MAX_NESTING", "parse"]
