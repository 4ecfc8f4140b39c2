"""The fast path of `math_equal`: decide the easy cases without sympy, defer the rest (None).

Decisions, each meant to agree with Math-Verify (the benchmark measures the agreement):

    equal      normalised strings match; or exact rational values match; or closed forms agree to
               1e-12 (relative) at every sample point with the same variables
    not equal  only when both answers are plain (`normalize.is_plain`: every part read as
               Math-Verify reads it, no words, units or text) and their values differ by more
               than 1e-6 (relative, scale at least 1) at some sample point, or exactly
    defer      anything else: relations, sets of different sizes, `\\pm`, `\\infty`, answers whose
               reading is less complete than Math-Verify's, values closer than its rounding

Tuples, intervals and bare lists are compared element-wise: all elements equal in order with the
same brackets -> equal; a bare list (several boxes) and `\\{...\\}` are both sets; an element with
no possible partner -> not equal (true whether the brackets mean a tuple or a set); else defer.
A set whose elements all equal one value is that value. A percent sign on one side makes
"50\\%" match 0.5, and 50 when both are whole numbers, as Math-Verify reads them; else defer.
"""

from __future__ import annotations

import cmath
import re
from collections.abc import Callable
from fractions import Fraction

from t1.rewards.latex_eval import Node, evaluate, evaluate_exact, parse_latex, variables
from t1.rewards.normalize import is_plain, normalize_answer, parse_number

# relative gap above which two values are different; below EQUAL_REL they are the same
DIFFERENT_REL = 1e-6
EQUAL_REL = 1e-12
# Math-Verify rounds decimals to 6 places: two numbers written with decimals differ beyond this
DECIMAL_GAP = 2e-6
# magnitude above which float closeness proves nothing
FLOAT_LIMIT = 1e9
# collections longer than this are left to Math-Verify (the pairwise table is quadratic)
MAX_ELEMENTS = 16
# fixed, irrational-looking sample points for the variables (deterministic verdicts)
SAMPLES = (0.7318, 1.4142 + 0.3719j, -2.2361)

_OPEN = {"(": ")", "[": "]", "\\{": "\\}"}
# a bare list "1, 2" (several boxes) and "\\{1, 2\\}" are both sets to Math-Verify
_SETS = ("", "\\{\\}")
_INFINITY = {"\\infty": 1, "+\\infty": 1, "-\\infty": -1, "\\infin": 1, "-\\infin": -1}
_BASE_RE = re.compile(r"^([0-9A-Za-z]+)_\{?(\d+)\}?$")
_ASSIGNED_RE = re.compile(r"^\s*([a-zA-Z])\s*=(?!=)")
_MATRIX_RE = re.compile(r"^\\begin\{([pbvB]?matrix)\}(.*?)(?:\\\\)?\\end\{\1\}$")


def fast_equal(pred: str, ref: str) -> bool | None:
    """True / False when sure, None when Math-Verify must decide.

    "Not equal" needs both answers plain (`is_plain`): where the fast path's reading of either
    is less complete than Math-Verify's (units, words, text, unusual spellings), a difference it
    sees may be its own misreading, so it steps aside.
    """
    verdict = _compare(pred, ref)
    if verdict is False and not (is_plain(pred) and is_plain(ref)):
        return None
    return verdict


def _compare(pred: str, ref: str) -> bool | None:
    """The fast path's verdict on its own reading of both answers."""
    names = _assigned(pred), _assigned(ref)
    if None not in names and names[0] != names[1]:
        return None  # "x = 5" vs "y = 5": Math-Verify compares the equations, names included
    a, b = normalize_answer(pred), normalize_answer(ref)
    if not a or not b:
        return None
    if ("%" in pred) != ("%" in ref):
        return _percent_equal(a, b) if "%" in pred else _percent_equal(b, a)
    if a == b:
        return True
    if "%" in pred:
        return None
    return compare_normalized(a, b)


def _assigned(answer: str) -> str | None:
    """The variable of an answer written `x = ...`, else None."""
    m = _ASSIGNED_RE.match(answer)
    return m.group(1) if m else None


def compare_normalized(a: str, b: str) -> bool | None:
    """`fast_equal` on normalised strings: unions, relations, `\\pm`, containers, scalars."""
    if a == b:
        return True
    for one, many in ((a, b), (b, a)):
        if _is_constant(one) and _is_collection(many):
            return _value_and_collection(one, many)
    unions = _top_level_split(a, "\\cup"), _top_level_split(b, "\\cup")
    if len(unions[0]) > 1 or len(unions[1]) > 1:
        return _unordered(unions[0], unions[1], compare_normalized)
    sides = _top_level_split(a, "="), _top_level_split(b, "=")
    if len(sides[0]) > 1 or len(sides[1]) > 1:
        return _relations_equal(sides[0], sides[1])
    a, b = _expand_pm(a), _expand_pm(b)
    if "\\begin{" in a[:8] or "\\begin{" in b[:8]:
        return _matrices_equal(a, b)
    left, right = split_elements(a), split_elements(b)
    if left[0] is None and right[0] is None:
        return scalar_equal(a, b)
    if left[0] is None or right[0] is None:  # "-(1,2)" vs "(1,2)" can still be told apart
        negated = _negated_container(a, right) or _negated_container(b, left)
        return False if negated else None
    is_set = left[0] in _SETS and right[0] in _SETS  # Math-Verify: order-free
    if left[0] == right[0] and len(left[1]) == len(right[1]):
        in_order = [_element_equal(x, y) for x, y in zip(left[1], right[1])]
        if all(v is True for v in in_order):
            return True
        if not is_set and False in in_order:  # tuples and intervals are ordered
            return False
    return _unordered(left[1], right[1], _element_equal, decide_true=False, as_set=is_set)


def _value_and_collection(value: str, many: str) -> bool | None:
    """One value against a tuple, interval, set, matrix or union: never equal, except a set
    whose elements all equal it (boxes "15\\frac{39}{40}" and "\\frac{639}{40}": one value)."""
    brackets, elements = split_elements(many)
    if brackets not in _SETS or len(elements) > MAX_ELEMENTS:
        return False
    verdicts = [_element_equal(x, value) for x in elements]
    if all(v is True for v in verdicts):
        return True
    return False if False in verdicts else None


def split_elements(s: str) -> tuple[str | None, list[str]]:
    """(brackets, elements): "(1,2]" -> ("(]", ["1", "2"]); "1,2" -> ("", [...]); scalars -> None."""
    brackets = ""
    inner = s
    for left, right in _OPEN.items():
        if s.startswith(left) and s[-1:] in ")]}" and _closes_at_end(s, len(left)):
            brackets = left + s[-(len(right) if s.endswith(right) else 1) :]
            inner = s[len(left) : len(s) - len(brackets) + len(left)]
            break
    parts = _top_level_split(inner)
    if len(parts) == 1 and not brackets.startswith("\\{"):
        return None, [s]
    return brackets, parts


def scalar_equal(a: str, b: str) -> bool | None:
    """Compare two normalised single answers by exact or sampled numeric value."""
    infinite = _INFINITY.get(a), _INFINITY.get(b)
    if infinite != (None, None):
        finite = _exact_value(b if infinite[0] else a) is not None
        return infinite[0] == infinite[1] if None not in infinite else (False if finite else None)
    decimal = "." in a or "." in b
    x, y = parse_number(a), parse_number(b)
    if x is not None and y is not None:
        return _close(x, y, decimal)
    based = _BASE_RE.match(a), _BASE_RE.match(b)
    if based[0] and based[1]:  # 52_8 vs 52_9: Math-Verify ignores the base, so only digits decide
        return None if based[0].group(1) == based[1].group(1) else False
    ta, tb = parse_latex(a), parse_latex(b)
    if ta is None or tb is None:
        return None
    exact_a, exact_b = evaluate_exact(ta), evaluate_exact(tb)
    if exact_a is not None and exact_b is not None:
        return _close(exact_a, exact_b, decimal)
    names = variables(ta) | variables(tb)
    if variables(ta) != variables(tb):
        return _differ_somewhere(ta, tb, sorted(names))
    verdicts = [_sampled(ta, tb, env) for env in _environments(sorted(names))]
    if False in verdicts:
        return False
    return True if all(v is True for v in verdicts) else None


def _unordered(
    xs: list[str],
    ys: list[str],
    same: Callable[[str, str], bool | None],
    decide_true: bool = True,
    as_set: bool = False,
) -> bool | None:
    """Collections: equal in order -> True (if `decide_true`); as sets, every element with an
    equal partner on the other side -> True; an element of either side with no possible partner
    -> False (whether order matters or not); else None."""
    if len(xs) != len(ys) or len(xs) > MAX_ELEMENTS:
        return None
    table = [[same(x, y) for y in ys] for x in xs]
    if decide_true and all(table[i][i] is True for i in range(len(xs))):
        return True
    columns = [[row[j] for row in table] for j in range(len(ys))]
    if any(all(v is False for v in line) for line in table + columns):
        return False
    if as_set and all(True in line for line in table + columns):
        return True
    return None


def _relations_equal(left: list[str], right: list[str]) -> bool | None:
    """`lhs = rhs` twice: different when lhs - rhs are not proportional (sampled); else defer.

    One-variable equations must also be linear: `x^2 = 0` and `x = 0` have the same root.
    """
    if len(left) != 2 or len(right) != 2:
        return None
    trees = [parse_latex(f"{s[0]}-({s[1]})") for s in (left, right)]
    if trees[0] is None or trees[1] is None:
        return None
    names = sorted(variables(trees[0]) | variables(trees[1]))
    if not names or variables(trees[0]) != variables(trees[1]):
        return None
    try:
        values = [
            (evaluate(trees[0], env), evaluate(trees[1], env)) for env in _environments(names)
        ]
    except (ArithmeticError, ValueError, OverflowError, KeyError):
        return None
    if len(names) == 1 and not all(_linear(trees[i], names[0]) for i in (0, 1)):
        return None
    (a0, b0), rest = values[0], values[1:]
    scale = max(1.0, *(abs(v) for pair in values for v in pair)) ** 2
    if any(abs(a0 * bk - ak * b0) > DIFFERENT_REL * scale for ak, bk in rest):
        return False
    return None


def _linear(tree: Node, name: str) -> bool:
    """f(t) sampled at three points lies on a line."""
    ts = [0.5, 1.7, -2.3]
    try:
        fs = [evaluate(tree, {name: complex(t)}) for t in ts]
    except (ArithmeticError, ValueError, OverflowError, KeyError):
        return False
    slope1 = (fs[1] - fs[0]) / (ts[1] - ts[0])
    slope2 = (fs[2] - fs[0]) / (ts[2] - ts[0])
    return abs(slope1 - slope2) <= 1e-9 * max(1.0, abs(slope1), abs(slope2))


def _expand_pm(s: str) -> str:
    """`a \\pm b` -> `a+(b),a-(b)`: Math-Verify reads it as the set of both values."""
    parts = _top_level_split(s, "\\pm")
    if len(parts) != 2 or "," in s:
        return s
    head, tail = parts
    return f"{head}+({tail}),{head}-({tail})"


def _negated_container(s: str, other: tuple[str | None, list[str]]) -> bool:
    """`-(1,2)` against a tuple: True when some negated element has no partner (different)."""
    if not s.startswith("-") or other[0] is None:
        return False
    inner = split_elements(s[1:])
    if inner[0] is None or len(inner[1]) != len(other[1]):
        return False
    negated = [f"-({x})" for x in inner[1]]
    return _unordered(negated, other[1], _element_equal, decide_true=False) is False


def _is_constant(s: str) -> bool:
    """A single number or closed form without variables (`3\\sqrt{13}`, `-\\frac{24}{25}`)."""
    if parse_number(s) is not None:
        return True
    tree = parse_latex(s)
    return tree is not None and not variables(tree)


def _is_collection(s: str) -> bool:
    """Two or more values: a tuple, interval, list or set, a matrix, a union, `a \\pm b`."""
    if s.lstrip("-").startswith("\\begin{") or len(_top_level_split(s, "\\pm")) == 2:
        return True
    if len(_top_level_split(s, "\\cup")) > 1:
        return True
    brackets, elements = split_elements(s)
    return brackets is not None and len(elements) >= 2


def _exact_value(s: str) -> Fraction | None:
    value = parse_number(s)
    if value is None:
        tree = parse_latex(s)
        value = evaluate_exact(tree) if tree is not None else None
    return value


def _matrices_equal(a: str, b: str) -> bool | None:
    """Same-shape matrices, entry by entry: any entry different -> not equal. A negated matrix
    (`-\\begin{pmatrix}...`) is compared entry by entry negated, and only ever found different."""
    negated = a.startswith("-\\begin{") or b.startswith("-\\begin{")
    ma, mb = parse_matrix(a.lstrip("-")), parse_matrix(b.lstrip("-"))
    if ma is None or mb is None or [len(r) for r in ma] != [len(r) for r in mb]:
        return None
    if negated:
        flip_a, flip_b = a.startswith("-"), b.startswith("-")
        ma = [[f"-({x})" if flip_a else x for x in row] for row in ma]
        mb = [[f"-({y})" if flip_b else y for y in row] for row in mb]
    verdicts = [_element_equal(x, y) for ra, rb in zip(ma, mb) for x, y in zip(ra, rb)]
    if False in verdicts:
        return False
    return True if all(v is True for v in verdicts) and not negated else None


def parse_matrix(s: str) -> list[list[str]] | None:
    """Rows of cells of a normalised `\\begin{pmatrix}a&b\\\\c&d\\end{pmatrix}`, else None."""
    m = _MATRIX_RE.match(s)
    if m is None:
        return None
    return [row.split("&") for row in m.group(2).split("\\\\")]


def _element_equal(x: str, y: str) -> bool | None:
    """Two elements of collections: values, or collections themselves ("(2,2),(6,2)")."""
    if x == y:
        return True
    if split_elements(x)[0] is not None or split_elements(y)[0] is not None:
        return compare_normalized(x, y)
    return scalar_equal(x, y)


def _percent_equal(percent: str, plain: str) -> bool | None:
    """ "p%" against a value, as Math-Verify reads them: equal to p/100, and to p itself when both
    are whole numbers written as such (50% = 50, but 1/3 % is not 1/3); else defer."""
    x, y = parse_number(percent), parse_number(plain)
    if x is None or y is None:
        return None
    if x / 100 == y:
        return True
    whole = x.denominator == 1 and x >= 0 and "." not in percent + plain
    return True if whole and x == y else None


def _close(x: Fraction, y: Fraction, decimal: bool) -> bool | None:
    """Exact values: equal, or different (exactly, or beyond Math-Verify's decimal rounding)."""
    if x == y:
        return True
    return False if not decimal or abs(x - y) > DECIMAL_GAP else None


def _sampled(ta: Node, tb: Node, env: dict[str, complex]) -> bool | None:
    try:
        va, vb = evaluate(ta, env), evaluate(tb, env)
    except (ArithmeticError, ValueError, OverflowError, KeyError):
        return None
    if not (cmath.isfinite(va) and cmath.isfinite(vb)):
        return None
    scale = max(abs(va), abs(vb), 1.0)
    if abs(va - vb) > DIFFERENT_REL * scale:
        return False
    if abs(va - vb) <= EQUAL_REL * scale and scale < FLOAT_LIMIT:
        return True
    return None


def _differ_somewhere(ta: Node, tb: Node, names: list[str]) -> bool | None:
    """Different variables: not equal if the values differ at some point, else defer."""
    for env in _environments(names):
        if _sampled(ta, tb, env) is False:
            return False
    return None


def _environments(names: list[str]) -> list[dict[str, complex]]:
    """One value per variable per sample point, distinct across variables (`x - y` is not 0)."""
    return [
        {name: complex(base) * (1 + 0.618 * j) + 0.1 * j for j, name in enumerate(names)}
        for base in SAMPLES
    ]


def _closes_at_end(s: str, start: int) -> bool:
    """True when the bracket opened at the start closes only at the very end."""
    depth = 1
    i = start
    while i < len(s):
        ch = s[i]
        if s.startswith("\\{", i) or ch in "([":
            depth += 1
            i += 2 if ch == "\\" else 1
            continue
        if s.startswith("\\}", i) or ch in ")]":
            depth -= 1
            if depth == 0:
                return i + (2 if ch == "\\" else 1) == len(s)
            i += 2 if ch == "\\" else 1
            continue
        i += 1
    return False


def _top_level_split(s: str, sep: str = ",") -> list[str]:
    """`s` split at `sep` outside any brackets."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        ch = s[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and s.startswith(sep, i) and not _continues_command(s, i, sep):
            parts.append(s[start:i])
            start = i + len(sep)
            i = start
            continue
        i += 1
    parts.append(s[start:])
    return parts


def _continues_command(s: str, i: int, sep: str) -> bool:
    """`\\cup` inside `\\cupcake`, `=` inside `\\leq=`: not a separator."""
    end = i + len(sep)
    return sep[-1].isalpha() and end < len(s) and s[end].isalpha()
