"""The safe arithmetic evaluator: exact values, the literals used, and refusals."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest

from t1.rewards.arith import ArithError, evaluate, try_evaluate


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("1+2*3", Fraction(7)),  # precedence: 1 + (2*3)
        ("(1+2)*3", Fraction(9)),
        ("8/(3-8/3)", Fraction(24)),  # 3 - 8/3 = 1/3; 8 / (1/3) = 24
        ("7-3-2", Fraction(2)),  # left associative: (7-3)-2
        ("12/4/3", Fraction(1)),  # (12/4)/3
        ("-3+5", Fraction(2)),
        ("--3", Fraction(3)),
        ("2.5*4", Fraction(10)),
        ("1/3", Fraction(1, 3)),
        ("6 \\times 4", Fraction(24)),
        ("6×4÷2", Fraction(12)),
        ("\\frac{6}{4}", Fraction(3, 2)),
        ("\\left(2+2\\right) \\cdot 6", Fraction(24)),
        ("[2+{3}]*2", Fraction(10)),
        ("$ 10 − 4 $", Fraction(6)),
    ],
)
def test_values(expr: str, value: Fraction) -> None:
    assert evaluate(expr).value == value


def test_literals_in_order() -> None:
    assert evaluate("(7-3)*(5+1)").numbers == (7, 3, 5, 1)
    assert evaluate("0.5*4").numbers == (Fraction(1, 2), 4)


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "1/0",
        "1/(2-2)",
        "2**10",  # no power operator
        "2^10",
        "3!",
        "__import__('os').system('touch X')",
        "x+1",
        "2(3)",  # no implicit multiplication
        "1+",
        "(1+2",
        "1+2)",
        "1" * 16,  # more than 15 digits
        "(" * 40 + "1" + ")" * 40,  # deeper than 32
        "1+" * 300 + "1",  # longer than 512 characters
    ],
)
def test_refusals(expr: str) -> None:
    with pytest.raises(ArithError):
        evaluate(expr)
    assert try_evaluate(expr) is None


def test_magnitude_bound() -> None:
    # 999999999999999 ** 150 needs ~7500 bits, over the 2048-bit cap, so it is refused early
    with pytest.raises(ArithError, match="too large"):
        evaluate("*".join(["999999999999999"] * 150), max_chars=4000)


def test_hostile_inputs_are_fast() -> None:
    start = time.monotonic()
    for expr in ["-" * 100_000 + "1", "(" * 100_000, "1" * 100_000, "\\frac{" * 10_000]:
        assert try_evaluate(expr) is None
    assert time.monotonic() - start < 1.0
