"""Right answers the grader must never lose, by class: units after non-digits, mixed numbers,
answers over several boxes, answer phrases, and LaTeX spellings Math-Verify reads in its own way.

Each equal pair is checked three ways: `math_equal` says equal, the fast path never says "not
equal" (it may step aside), and the math verifier marks a response stating it correct.
"""

from __future__ import annotations

import pytest

from t1.rewards import extract_answer, get_verifier, math_equal
from t1.rewards.math_equal import fast_verdict
from t1.rewards.normalize import is_plain

UNITS = [
    ("\\frac{1}{3}\\text{ m}", "\\frac13"),
    ("\\sqrt{2}\\text{ cm}", "\\sqrt{2}"),
    ("2\\pi\\text{ cm}^2", "2\\pi"),
    ("\\frac{5}{2}\\mbox{ hours}", "2.5"),
    ("3\\sqrt{3}\\,\\text{inches}", "\\sqrt{27}"),
    ("x^2 + 1\\text{ square units}", "1 + x^2"),
    ("\\dfrac{7}{4}\\textrm{ km}", "1.75"),
    ("12 m", "12"),  # a bare unit letter: Math-Verify drops it
    ("45\\textbf{ degrees}", "45"),
]
MIXED = [
    ("7\\frac{1}{2}", "7.5"),
    ("7\\frac{1}{2}", "\\frac{15}{2}"),
    ("-3\\frac{1}{4}", "-3.25"),
    ("2\\frac{3}{8}", "\\frac{19}{8}"),
    ("1\\dfrac{2}{3}", "\\frac53"),
    ("10\\tfrac{1}{2}", "10.5"),
    ("4 \\frac{1}{2}\\text{ cups}", "\\frac{9}{2}"),
    ("(5\\frac{1}{3}, 2)", "(\\frac{16}{3}, 2)"),
]
SPELLINGS = [
    ("2^23", "2^{23}"),  # Math-Verify reads a whole exponent
    ("\\frac123", "\\frac{1}{23}"),
    ("\\sqrt23", "3\\sqrt{2}"),
    ("2/3x", "\\frac{2}{3x}"),
    ("90^\\circ", "90"),
    ("\\$1,\\!000", "1000"),
    ("10{,}455", "10455"),
    ("\\left[ 1, 2 \\right)", "[1,2)"),
    ("\\dfrac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}2"),
    ("15\\frac{39}{40}, \\frac{639}{40}", "\\frac{639}{40}"),  # one value, boxed twice
    ("x = \\frac{1}{2}", "0.5"),
    ("12.5\\%", "0.125"),
    ("x = 10,455", "10455"),  # Math-Verify reads x = {10, 455} here: t1 is right
    ("10, \\!080", "\\{80, 10\\}"),  # spaced: a list, for both readers
]
# (response, reference): answers split over boxes, and phrases
RESPONSES = [
    ("The solutions are $\\boxed{(2, 2)}$ and $\\boxed{(6, 2)}$.", "(2,2),(6,2)"),
    ("The solutions are $\\boxed{(2, 2)}$ and $\\boxed{(6, 2)}$.", "\\{(6,2),(2,2)\\}"),
    ("So the roots are $\\boxed{1}, \\boxed{2}, \\boxed{3}$.", "1,2,3"),
    ("So the roots are $\\boxed{1}, \\boxed{2}, \\boxed{3}$.", "\\{3, 2, 1\\}"),
    ("Hence $\\boxed{k = 45}$ and $\\boxed{n = 2}$.", "(45, 2)"),
    ("Width $\\boxed{4}$ and height $\\boxed{9}$.", "4, 9"),
    ("Final Answer: The largest $n$ is 34.", "34"),
    ("Answer $ 9 $", "9"),
    ("First guess $\\boxed{10000}$.\n\n" + "Checking each case again. " * 4
     + "So the final answer is $10,455$.", "10455"),
    ("**Final answer:** the smallest value is $\\frac{3}{4}$.", "0.75"),
    ("The answer to part (b) is $-2$.", "-2"),
    ("Therefore the final answer is 7\\frac{1}{2} cups.", "\\frac{15}{2}"),
    ("Answer: 12 apples", "12"),
    ("The final answer is $\\boxed{\\frac{1}{3}\\text{ m}}$. I hope it is correct.", "1/3"),
]  # fmt: skip
# wrong answers of the same kinds: still wrong
DIFFERENT = [
    ("7\\frac{1}{2}", "3.5"),
    ("\\frac{1}{3}\\text{ m}", "\\frac14"),
    ("1, 2", "1, 3"),
    ("(2,2),(6,2)", "(2,2),(2,6)"),
    ("2^23", "2^{22}"),
    ("-3\\frac{1}{4}", "-2.75"),
    ("\\frac{1}{3}\\%", "\\frac{1}{3}"),  # a third of a percent
]


@pytest.mark.parametrize(("pred", "ref"), UNITS + MIXED + SPELLINGS)
def test_equal_answers_are_never_lost(pred: str, ref: str) -> None:
    assert fast_verdict(pred, ref) in (True, None)
    assert fast_verdict(ref, pred) in (True, None)
    assert math_equal(pred, ref)
    assert get_verifier("math")(f"So the answer is $\\boxed{{{pred}}}$.", ref).correct


@pytest.mark.parametrize(("text", "ref"), RESPONSES)
def test_responses_split_over_boxes_or_phrases_are_right(text: str, ref: str) -> None:
    result = get_verifier("math")(text, ref)
    assert result.correct, result.answer


@pytest.mark.parametrize(("pred", "ref"), DIFFERENT)
def test_different_answers_stay_different(pred: str, ref: str) -> None:
    assert not math_equal(pred, ref)
    assert not math_equal(ref, pred)


def test_fast_path_decides_the_units_and_mixed_numbers_itself() -> None:
    # widened equal cases: no Math-Verify call needed
    for pred, ref in [("\\frac{1}{3}\\text{ m}", "\\frac13"), ("7\\frac{1}{2}", "7.5")]:
        assert fast_verdict(pred, ref) is True


def test_extraction_reads_phrases_and_joins_boxes() -> None:
    assert extract_answer("Final Answer: The largest $n$ is 34.") == "34"
    assert extract_answer("Answer $ 9 $") == "9"
    assert extract_answer("$\\boxed{(2, 2)}$ and $\\boxed{(6, 2)}$") == "(2, 2), (6, 2)"
    # a later stated final answer beats an earlier box; a later box beats an earlier phrase
    assert extract_answer("So $\\boxed{3}$.\n\nThe final answer is $10,455$.") == "10,455"
    assert extract_answer("The final answer is $4$. Check: $\\boxed{5}$") == "5"


@pytest.mark.parametrize(
    ("answer", "plain"),
    [
        ("\\frac{3}{4}", True),
        ("2x^2 - 3", True),
        ("(1, -2)", True),
        ("\\frac45", True),  # both readers brace a short \frac alike
        ("3h", False),  # Math-Verify drops "h" as a unit: 3
        ("2ab", False),  # and "ab": 2
        ("x + 1 m", False),
        ("\\text{Monday}", False),
        ("1,000, 2", False),  # thousands, or a list of three?
        ("(1,000, 2)", True),  # in brackets a comma separates, for both readers
        ("2 3", False),  # 2 + 3 to Math-Verify
        ("\\log 8", False),
        ("x \\in [1, 2]", False),
        ("5\\%", True),
    ],
)
def test_plain_answers(answer: str, plain: bool) -> None:
    assert is_plain(answer) is plain


def test_not_plain_answers_are_never_called_different() -> None:
    # the fast path reads "3h" as 3*h and "x + 1 m" as x + m; Math-Verify as 3 and x + 1
    assert fast_verdict("3h", "3") is None
    assert fast_verdict("x + 1 m", "x + 1") is None
    assert math_equal("3h", "3") and math_equal("x + 1 m", "x + 1")
