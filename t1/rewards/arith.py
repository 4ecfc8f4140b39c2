"""A safe arithmetic evaluator for model-written expressions (Countdown, numeric answers).

Grammar (recursive descent; exact `Fraction` arithmetic, so `(1/3)*3 == 1` holds exactly):

    expr   := term (("+" | "-") term)*
    term   := unary (("*" | "/") unary)*
    unary  := ("-" | "+") unary | atom
    atom   := NUMBER | "(" expr ")" | "[" expr "]" | "{" expr "}" | \\frac{expr}{expr}

Accepted spellings: `×`, `·`, `\\times`, `\\cdot` for `*`; `÷`, `\\div` for `/`; `−` for `-`;
`\\left`/`\\right` and `$` are ignored. There is no power, factorial or name lookup, and nothing is
ever executed: `__import__('os')` is a syntax error here, not a call.

Bounds keep every call fast on hostile input: at most `max_chars` characters, `max_digits` digits
per number, `max_depth` nested brackets, and `MAX_BITS` bits in any intermediate numerator or
denominator. Breaking one raises `ArithError`, like any syntax error or a division by zero.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

MAX_BITS = 2048

_SPELLINGS = (
    ("\\left", ""),
    ("\\right", ""),
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("\\div", "/"),
    ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"),
    ("×", "*"),
    ("·", "*"),
    ("÷", "/"),
    ("−", "-"),
    ("$", ""),
    ("\\,", ""),
    ("\\ ", ""),
)
_TOKEN_RE = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|(\\frac)|([-+*/()\[\]{}]))")
_CLOSE = {"(": ")", "[": "]", "{": "}"}


class ArithError(ValueError):
    """The text is not a bounded arithmetic expression over numbers."""


@dataclass(frozen=True)
class ArithResult:
    value: Fraction
    # the number literals in order of appearance, as written values (a "2.5" is Fraction(5, 2))
    numbers: tuple[Fraction, ...]


def evaluate(
    text: str, *, max_chars: int = 512, max_digits: int = 15, max_depth: int = 32
) -> ArithResult:
    """Value and number literals of an arithmetic expression; `ArithError` if it is not one.

    >>> evaluate("(7 - 1) * 5 - 3 * 2").value
    Fraction(24, 1)
    >>> evaluate("8 / (3 - 8/3)").value
    Fraction(24, 1)
    """
    if not isinstance(text, str):
        raise ArithError("not a string")
    if len(text) > max_chars * 4:
        raise ArithError(f"expression longer than {max_chars} characters")
    for old, new in _SPELLINGS:
        text = text.replace(old, new)
    text = text.strip()
    if len(text) > max_chars:
        raise ArithError(f"expression longer than {max_chars} characters")
    tokens = _tokenize(text, max_digits)
    parser = _Parser(tokens, max_depth)
    value = parser.expr()
    if parser.pos != len(tokens):
        raise ArithError(f"unexpected {tokens[parser.pos]!r}")
    return ArithResult(value=Fraction(value), numbers=tuple(Fraction(n) for n in parser.numbers))


def try_evaluate(text: str, **bounds: int) -> ArithResult | None:
    """`evaluate`, or None where the text is not a bounded arithmetic expression."""
    try:
        return evaluate(text, **bounds)
    except ArithError:
        return None


def _tokenize(text: str, max_digits: int) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ArithError(f"unexpected character {text[pos]!r} at {pos}")
        token = m.group(m.lastindex or 0)
        if m.group(1) is not None and sum(c.isdigit() for c in token) > max_digits:
            raise ArithError(f"number longer than {max_digits} digits")
        tokens.append(token)
        pos = m.end()
    if not tokens:
        raise ArithError("empty expression")
    return tokens


def _checked(value: Fraction) -> Fraction:
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise ArithError("intermediate value too large")
    return value


def _div(a: Fraction, b: Fraction) -> Fraction:
    if b == 0:
        raise ArithError("division by zero")
    return Fraction(a) / b  # values stay plain ints until a division needs a fraction


_BINARY: dict[str, Callable[[Fraction, Fraction], Fraction]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _div,
}


class _Parser:
    """Recursive descent over the token list; depth-limited so recursion never overflows."""

    def __init__(self, tokens: list[str], max_depth: int) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.max_depth = max_depth
        self.numbers: list[Fraction] = []

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ArithError(f"expected {expected or 'more input'}, got {token!r}")
        self.pos += 1
        return token

    def expr(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            value = _checked(_BINARY[op](value, self.term()))
        return value

    def term(self) -> Fraction:
        value = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            value = _checked(_BINARY[op](value, self.unary()))
        return value

    def unary(self) -> Fraction:
        signs = 1
        while self.peek() in ("-", "+"):
            if self.take() == "-":
                signs = -signs
            if self.pos > self.max_depth * 4:
                raise ArithError("too many signs")
        value = self.atom()
        return value if signs > 0 else -value

    def atom(self) -> Fraction:
        token = self.take()
        if token in _CLOSE or token == "\\frac":
            self.depth += 1
            if self.depth > self.max_depth:
                raise ArithError(f"brackets nested deeper than {self.max_depth}")
            if token == "\\frac":
                value = self._frac()
            else:
                value = self.expr()
                self.take(_CLOSE[token])
            self.depth -= 1
            return value
        if token[0].isdigit() or token[0] == ".":
            value = int(token) if token.isdigit() else Fraction(token)
            self.numbers.append(value)
            return value
        raise ArithError(f"unexpected {token!r}")

    def _frac(self) -> Fraction:
        self.take("{")
        num = self.expr()
        self.take("}")
        self.take("{")
        den = self.expr()
        self.take("}")
        return _checked(_div(num, den))
