"""The bounded LaTeX expression parser behind the fast path."""

from __future__ import annotations

import cmath
import math
from fractions import Fraction

import pytest

from t1.rewards.latex_eval import evaluate, evaluate_exact, parse_latex, variables


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2\\sqrt{2}", 2 * math.sqrt(2)),
        ("\\frac{3\\pi}{4}", 3 * math.pi / 4),
        ("\\sqrt[3]{8}", 2.0),
        ("2^-1", 0.5),
        ("-x^2", -4.0),  # x = 2: the sign applies after the power
        ("x^23", 2.0**23),  # Math-Verify reads x^{23} (TeX would read x^2 * 3)
        ("7\\frac{1}{2}", 7.5),  # a mixed number
        ("-7\\frac{1}{2}", -7.5),
        ("2\\frac{\\pi}{4}", math.pi / 2),  # not a mixed number: pi/4 is not rational
        ("1/2x", 0.25),  # side-by-side factors bind first: 1/(2x), as Math-Verify reads it
        ("3(x+1)", 9.0),
        ("5!", 120.0),
        ("e^{2}", math.e**2),
        ("\\sin(\\pi/2)+\\cos0", 2.0),
    ],
)
def test_values(text: str, value: float) -> None:
    tree = parse_latex(text)
    assert tree is not None
    # a handful of complex float64 operations (each within a few EPS64 = 2.2e-16, libm's sin,
    # cos and exp included): far inside 1e-12
    assert cmath.isclose(evaluate(tree, {"x": 2 + 0j}), value, rel_tol=1e-12)


def test_exact_rationals_and_variables() -> None:
    assert evaluate_exact(parse_latex("\\frac{1}{3}+\\frac{1}{6}")) == Fraction(1, 2)
    assert evaluate_exact(parse_latex("2^{10}")) == 1024
    assert evaluate_exact(parse_latex("\\sqrt{4}")) is None  # irrational operations: floats
    assert variables(parse_latex("ab+c")) == frozenset("abc")
    assert variables(parse_latex("e^2")) == frozenset()  # e is Euler's number


@pytest.mark.parametrize(
    "text",
    [
        "x<3",
        "\\infty",
        "1\\pm2",
        "\\log x",
        "(" * 50 + "1" + ")" * 50,
        "1+" * 300 + "1",
        "2(3)",  # Math-Verify: 2 + 3; a reader would say 6: left to Math-Verify
        "2\\frac{1}{2}\\frac{1}{2}",
    ],
)
def test_unsupported_or_over_bounds(text: str) -> None:
    assert parse_latex(text) is None


def test_huge_powers_raise_instead_of_hanging() -> None:
    with pytest.raises(OverflowError):
        evaluate(parse_latex("10^{10^{10}}"), {})
    with pytest.raises(ValueError):
        evaluate(parse_latex("9999999!"), {})
