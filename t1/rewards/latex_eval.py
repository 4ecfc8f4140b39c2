"""A small, bounded parser of LaTeX math answers into a tree that can be evaluated numerically.

The fast path of `math_equal` uses it to compare closed forms (`2\\sqrt{2}` vs `\\sqrt8`,
`\\frac{3\\pi}{4}` vs `0.75\\pi`) and polynomials (at fixed sample points) without sympy.

    expr    := term (("+" | "-") term)*
    term    := chain (("*" | "/") chain)*
    chain   := unary power*                                    # "2\\pi r", "3(x+1)": side by side
    unary   := ("-" | "+") unary | power
    power   := postfix ("^" (unary | postfix))?                # x^23 is x^{23} (Math-Verify)
    postfix := atom "!"?                                       # n! for integers n <= 20
    atom    := NUMBER | LETTER | \\pi | "(" expr ")" | "{" expr "}" | \\frac{expr}{expr}
             | \\sqrt[n]{expr} | \\sqrt{expr} | \\sin power (also cos tan cot sec csc ln exp)

Side-by-side factors bind tighter than `*` and `/` ("2/3x" is 2/(3x)), and an integer followed
by `\\frac` of two positive integers is a mixed number (`7\\frac{1}{2}` = 7.5), both as Math-Verify
(latex2sympy2) reads them; an integer beside any other rational ("2(3)", which it reads as 5) is
left to it. Letters are variables, except `e` (Euler's number), as Math-Verify reads them.
Unknown commands, relations, `\\pm`, `\\infty` and anything else make `parse_latex` return None:
the caller then defers to Math-Verify. Bounds: `MAX_TOKENS` tokens, `MAX_DEPTH` nesting;
evaluation is in complex floats (overflow raises, and the caller defers) or exactly in
`Fraction`s when the tree is rational.
"""

from __future__ import annotations

import cmath
import functools
import math
import re
from fractions import Fraction

MAX_TOKENS = 400
MAX_DEPTH = 40
MAX_BITS = 512
# parsed answers remembered (trees are immutable tuples)
CACHE_SIZE = 8192

Node = tuple
_TOKEN_RE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)|(\\[a-zA-Z]+)|([a-zA-Z])|([-+*/^(){}\[\]!])")
_COMMANDS = {"\\cdot": "*", "\\times": "*", "\\div": "/", "\\pi": "pi", "\\frac": "frac"}
_COMMANDS["\\sqrt"] = "sqrt"
_FUNCTIONS = {
    "sin": cmath.sin,
    "cos": cmath.cos,
    "tan": cmath.tan,
    "cot": lambda z: 1 / cmath.tan(z),
    "sec": lambda z: 1 / cmath.cos(z),
    "csc": lambda z: 1 / cmath.sin(z),
    "ln": cmath.log,
    "exp": cmath.exp,
}
_COMMANDS.update({"\\" + name: name for name in _FUNCTIONS})
_CLOSE = {"(": ")", "{": "}", "[": "]"}
_ATOM_START = ("(", "{", "pi", "frac", "sqrt", *_FUNCTIONS)


class LatexError(ValueError):
    """Outside the supported subset, or over a bound."""


@functools.lru_cache(maxsize=CACHE_SIZE)
def parse_latex(text: str) -> Node | None:
    """The expression tree of a normalised answer (no spaces), or None when unsupported."""
    try:
        tokens = _tokenize(text)
        parser = _Parser(tokens)
        node = parser.expr()
        if parser.pos != len(tokens):
            return None
        return node
    except (LatexError, RecursionError):
        return None


def variables(node: Node) -> frozenset[str]:
    if node[0] == "var":
        return frozenset([node[1]])
    return frozenset().union(*(variables(c) for c in node[1:] if isinstance(c, tuple)))


def evaluate_exact(node: Node) -> Fraction | None:
    """The exact value of a rational tree (numbers, + - * /, integer powers), else None."""
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind in ("var", "pi", "e", "sqrt", "fact", "fn"):
        return None
    if kind == "neg":
        inner = evaluate_exact(node[1])
        return None if inner is None else -inner
    a, b = evaluate_exact(node[1]), evaluate_exact(node[2])
    if a is None or b is None:
        return None
    if kind == "pow":
        if b.denominator != 1 or abs(b) > 64 or (a == 0 and b < 0):
            return None
        value = a ** int(b)
    elif kind in ("div", "frac"):
        if b == 0:
            return None
        value = a / b
    else:
        value = a + b if kind == "add" else a - b if kind == "sub" else a * b
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        return None
    return value


def evaluate(node: Node, env: dict[str, complex]) -> complex:
    """The complex value at `env`; raises ArithmeticError/OverflowError/ValueError when undefined."""
    kind = node[0]
    if kind == "num":
        return complex(node[1])
    if kind == "var":
        return env[node[1]]
    if kind == "pi":
        return complex(math.pi)
    if kind == "e":
        return complex(math.e)
    if kind == "neg":
        return -evaluate(node[1], env)
    if kind == "fn":
        return _FUNCTIONS[node[1]](evaluate(node[2], env))
    if kind == "fact":
        n = evaluate(node[1], env)
        if n.imag or n.real != int(n.real) or not 0 <= n.real <= 20:
            raise ValueError("factorial outside 0..20")
        return complex(math.factorial(int(n.real)))
    if kind == "sqrt":
        base, root = evaluate(node[1], env), evaluate(node[2], env)
        return cmath.sqrt(base) if root == 2 else base ** (1 / root)
    a, b = evaluate(node[1], env), evaluate(node[2], env)
    if kind == "pow":
        if abs(b) > 1e3 or (abs(a) > 1 and abs(b) * math.log10(abs(a)) > 300):
            raise OverflowError("power too large")
        return a**b
    if kind == "add":
        return a + b
    if kind == "sub":
        return a - b
    return a * b if kind == "mul" else a / b


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos] == " ":  # the normaliser keeps one space after a command: "\\pi r"
            pos += 1
            continue
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise LatexError(f"unsupported {text[pos]!r}")
        token = m.group(0)
        if m.group(2):
            if token not in _COMMANDS:
                raise LatexError(f"unsupported command {token}")
            token = _COMMANDS[token]
        tokens.append(token)
        pos = m.end()
        if len(tokens) > MAX_TOKENS:
            raise LatexError("too long")
    return tokens


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise LatexError(f"expected {expected}, got {token}")
        self.pos += 1
        return token

    def expr(self) -> Node:
        node = self.term()
        while self.peek() in ("+", "-"):
            op = "add" if self.take() == "+" else "sub"
            node = (op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.chain()
        while self.peek() in ("*", "/"):
            op = self.take()
            node = ("mul" if op == "*" else "div", node, self.chain())
        return node

    def chain(self) -> Node:
        """Factors written side by side ("2\\pi r"): they bind tighter than * and /, so
        "2/3x" is 2/(3x), as Math-Verify reads it. "7\\frac{1}{2}" is the mixed number 15/2."""
        factors = [self.unary()]
        while (token := self.peek()) is not None and (token in _ATOM_START or _is_operand(token)):
            factors.append(self.power())
        return _fold(factors)

    def unary(self) -> Node:
        if self.peek() in ("-", "+"):
            sign = self.take()
            self._enter()
            inner = self.unary()
            self.depth -= 1
            return ("neg", inner) if sign == "-" else inner
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if self.peek() == "^":
            self.take()
            self._enter()
            exponent = self.unary() if self.peek() in ("-", "+") else self.postfix()
            self.depth -= 1
            return ("pow", base, exponent)
        return base

    def postfix(self) -> Node:
        node = self.atom()
        if self.peek() == "!":
            self.take()
            node = ("fact", node)
        return node

    def atom(self, single: bool = False) -> Node:
        """One operand; `single` where TeX takes one token (a bare \\frac or \\sqrt argument)."""
        token = self.take()
        if token in _CLOSE:
            self._enter()
            node = self.expr()
            self.take(_CLOSE[token])
            self.depth -= 1
            return node
        if token == "frac":
            return ("frac", self._group(), self._group())
        if token == "sqrt":
            root: Node = ("num", Fraction(2))
            if self.peek() == "[":
                self.take()
                root = self.expr()
                self.take("]")
            return ("sqrt", self._group() if self.peek() == "{" else self.atom(True), root)
        if token == "pi":
            return ("pi",)
        if token in _FUNCTIONS:  # \sin x, \cos(2x); \sin^2 x is left to Math-Verify
            if self.peek() == "^":
                raise LatexError("power of a function")
            self._enter()
            node = ("fn", token, self.power())
            self.depth -= 1
            return node
        if token[0].isdigit() or token[0] == ".":
            if single and len(token) > 1 and token.isdigit():  # \sqrt23 is \sqrt{2} * 3
                self.tokens[self.pos - 1 : self.pos] = [token[0], token[1:]]
                token = token[0]
            # a power's exponent is whole: x^23 is x^{23} to Math-Verify (TeX: x^2 * 3)
            return ("num", Fraction(token), token.isdigit())
        if token.isalpha() and len(token) == 1:
            return ("e",) if token == "e" else ("var", token)
        raise LatexError(f"unexpected {token}")

    def _group(self) -> Node:
        if self.peek() != "{":
            return self.atom(True)
        self.take("{")
        self._enter()
        node = self.expr()
        self.take("}")
        self.depth -= 1
        return node

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LatexError("nested too deeply")


def _fold(factors: list[Node]) -> Node:
    """The product of side-by-side factors, or the mixed number `7\\frac{1}{2}` = 7 + 1/2.

    Math-Verify (latex2sympy2) reads an integer followed by a positive rational as their sum,
    whatever the rational's spelling (`2(3)` is 5 to it): any such pair other than an integer
    and a \\frac of two integers is left to it (LatexError, the caller defers).
    """
    head = factors[0][1] if factors[0][0] == "neg" else factors[0]
    if len(factors) == 2 and _is_int(head) and _positive_frac(factors[1]):
        value = ("num", head[1] + evaluate_exact(factors[1]), False)
        return ("neg", value) if factors[0][0] == "neg" else value
    for k in range(1, len(factors)):
        left = head if k == 1 else factors[k - 1]
        exact_left, exact_right = evaluate_exact(left), evaluate_exact(factors[k])
        if exact_right is not None and exact_left is not None and exact_left.denominator == 1:
            raise LatexError("an integer beside a number: a sum or a product")
    node = factors[-1]
    for factor in reversed(factors[:-1]):
        node = ("mul", factor, node)
    return node


def _is_int(node: Node) -> bool:
    """A number written as digits alone (`7`, not `7.0`)."""
    return node[0] == "num" and len(node) > 2 and node[2]


def _positive_frac(node: Node) -> bool:
    return node[0] == "frac" and all(_is_int(a) and a[1] > 0 for a in node[1:])


def _is_operand(token: str) -> bool:
    return token[0].isdigit() or token[0] == "." or (len(token) == 1 and token.isalpha())
