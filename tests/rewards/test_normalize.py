"""normalize_answer / parse_number: spellings of one answer map to one form; exact numbers."""

from __future__ import annotations

from fractions import Fraction

import pytest

from t1.rewards.normalize import normalize_answer, parse_number


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("\\left( 3, \\dfrac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("\\frac12", "\\frac{1}{2}"),
        ("\\frac1{20}", "\\frac{1}{20}"),
        ("\\sqrt2", "\\sqrt{2}"),
        ("10,\\!080", "10080"),
        ("11,\\! 111,\\! 100", "11111100"),
        ("1{,}000", "1000"),
        ("1,000", "1000"),
        ("1, 000", "1, 000"),  # spaced: a list, not a thousands separator (and stays one)
        ("30^\\circ", "30"),
        ("30^{\\circ}", "30"),
        ("25\\%", "25"),
        ("5 \\text{ cm}", "5"),
        ("864 \\mbox{ inches}^2", "864"),
        ("\\text{(C)}", "(C)"),
        ("\\$18.90", "18.90"),
        ("x = 5", "5"),
        ("3.", "3"),
        (".5", "0.5"),
        ("-.5", "-0.5"),
        ("3\\pi r^2", "3\\pi r^2"),  # a command keeps its space before a letter
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
        ("1011_2", "1011"),
    ],
)
def test_normalize(raw: str, normal: str) -> None:
    assert normalize_answer(raw) == normal


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("-3", Fraction(-3)),
        ("0.75", Fraction(3, 4)),
        ("1/2", Fraction(1, 2)),
        ("\\frac{-3}{4}", Fraction(-3, 4)),
        ("-\\frac{3}{4}", Fraction(-3, 4)),
        ("2.5\\times10^{3}", Fraction(2500)),
        ("1,234.5", Fraction(2469, 2)),
        ("x", None),
        ("1e3", None),  # 1·e·3 in LaTeX, as Math-Verify reads it
        ("1/0", None),
        ("1" * 41, None),  # over MAX_DIGITS
        ("10^{100}", None),
    ],
)
def test_parse_number(raw: str, value: Fraction | None) -> None:
    assert parse_number(raw) == value
