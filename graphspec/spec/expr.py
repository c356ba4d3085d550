"""The arithmetic of spec values: ``$width * 2``, ``($in_ch + $out_ch) // 4``, ``max($d, 8)``.

A tiny hand-written tokenizer and recursive-descent parser; user text is never given to
Python's ``eval``.  The grammar::

    expr  := term (('+' | '-') term)*
    term  := unary (('*' | '/' | '//' | '%') unary)*
    unary := '-' unary | atom
    atom  := NUMBER | '$' NAME | '(' expr ')' | ('min' | 'max') '(' expr (',' expr)* ')'

Integers stay integers: ``+ - * // %`` of integers give an integer, and ``/`` gives one
when the division is exact (``$width / 2`` can be a layer width), a float otherwise, so a
field that needs an integer refuses ``7 / 2`` where it is written.  Division by zero and
a non-finite result are errors.  Length and nesting are bounded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_CHARS = 200  # an expression longer than this is not a size computation
MAX_DEPTH = 32  # parentheses, unary minus and function calls nested
FUNCTIONS = ("min", "max")

Number = int | float


class ExprError(Exception):
    """A malformed or failing expression; the caller locates it."""


@dataclass(frozen=True)
class Token:
    kind: str  # 'num', 'var', 'fn', 'op'
    text: str
    value: Any = None


_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|\$(?P<var>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<fn>min|max)\b"
    r"|(?P<op>//|[-+*/%(),])"
    r")"
)
_NAME_USE = re.compile(r"\$[A-Za-z_]")


def tokenize(text: str) -> list[Token] | None:
    """The tokens of ``text``, or None when it is not an expression over ``$names`` (prose
    with a dollar sign, a file name): such a string is a plain string."""
    if not _NAME_USE.search(text):
        return None
    out: list[Token] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            return None
        kind = m.lastgroup
        assert kind is not None
        piece = m[kind]
        value: Any = None
        if kind == "num":
            value = float(piece) if any(c in piece for c in ".eE") else int(piece)
        elif kind == "var":
            value, piece = piece, "$" + piece
        out.append(Token(kind, piece, value))
        pos = m.end()
    return out


def names(tokens: list[Token]) -> list[str]:
    """The ``$names`` an expression uses, in order of first use."""
    return list(dict.fromkeys(t.value for t in tokens if t.kind == "var"))


def render(tokens: list[Token], values: dict[str, Any]) -> str:
    """The expression's text with the ``$names`` in ``values`` replaced by their numbers
    (so that what is left can be evaluated later with the other names)."""
    parts = []
    for t in tokens:
        if t.kind == "var" and t.value in values:
            v = values[t.value]
            parts.append(f"({v!r})" if v < 0 else repr(v))
        else:
            parts.append(t.text)
    return " ".join(parts)


def evaluate(text: str, tokens: list[Token], lookup: Callable[[str], Any]) -> Number:
    """The value of the expression; ``lookup`` gives a name's value (raising for an unknown
    one).  An :class:`ExprError` says what is wrong with it, quoting it."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    try:
        if len(text) > MAX_CHARS:
            raise ExprError(f"it is longer than {MAX_CHARS} characters (the limit)")
        parser = _Parser(tokens, lookup)
        value = parser.expr(0)
        if parser.pos < len(tokens):
            raise ExprError(f"unexpected '{tokens[parser.pos].text}'")
    except ExprError as e:
        raise ExprError(f"cannot compute '{shown}': {e}") from None
    return value


class _Parser:
    def __init__(self, tokens: list[Token], lookup: Callable[[str], Any]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.lookup = lookup

    def peek(self) -> str | None:
        return self.tokens[self.pos].text if self.pos < len(self.tokens) else None

    def take(self, text: str) -> None:
        if self.peek() != text:
            got = self.peek()
            raise ExprError(f"expected '{text}'" + (f", got '{got}'" if got else " at the end"))
        self.pos += 1

    def expr(self, depth: int) -> Number:
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            op = self.tokens[self.pos].text
            self.pos += 1
            value = _arith(op, value, self.term(depth))
        return value

    def term(self, depth: int) -> Number:
        value = self.unary(depth)
        while self.peek() in ("*", "/", "//", "%"):
            op = self.tokens[self.pos].text
            self.pos += 1
            value = _arith(op, value, self.unary(depth))
        return value

    def unary(self, depth: int) -> Number:
        if depth > MAX_DEPTH:
            raise ExprError(f"it nests more than {MAX_DEPTH} deep (the limit)")
        if self.peek() == "-":
            self.pos += 1
            return -self.unary(depth + 1)
        return self.atom(depth)

    def atom(self, depth: int) -> Number:
        if self.pos >= len(self.tokens):
            raise ExprError("it ends where a value should follow")
        tok = self.tokens[self.pos]
        self.pos += 1
        if tok.kind == "num":
            return _finite(tok.value)
        if tok.kind == "var":
            return _number(tok.value, self.lookup(tok.value))
        if tok.kind == "fn":
            self.take("(")
            args = [self.expr(depth + 1)]
            while self.peek() == ",":
                self.pos += 1
                args.append(self.expr(depth + 1))
            self.take(")")
            return min(args) if tok.text == "min" else max(args)
        if tok.text == "(":
            value = self.expr(depth + 1)
            self.take(")")
            return value
        raise ExprError(f"unexpected '{tok.text}' where a value should be")


def _number(name: str, value: Any) -> Number:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExprError(f"'${name}' is {value!r}, not a number")
    return value


def _arith(op: str, a: Number, b: Number) -> Number:
    if op in ("/", "//", "%") and b == 0:
        raise ExprError("division by zero")
    if op == "+":
        out: Number = a + b
    elif op == "-":
        out = a - b
    elif op == "*":
        out = a * b
    elif op == "//":
        out = a // b
    elif op == "%":
        out = a % b
    elif isinstance(a, int) and isinstance(b, int) and a % b == 0:
        out = a // b  # exact: an integer stays one
    else:
        out = a / b
    return _finite(out)


def _finite(x: Number) -> Number:
    if isinstance(x, float) and not math.isfinite(x):
        raise ExprError("the result is not a finite number")
    if isinstance(x, int) and abs(x) > 10**18:
        raise ExprError("the result is larger than 10**18")
    return x
