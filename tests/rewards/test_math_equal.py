"""math_equal: a table of equal / not-equal pairs, the fast path's agreement, and the time limit."""

from __future__ import annotations

import threading
import time

import pytest

from t1.rewards.fast_equal import fast_equal
from t1.rewards.math_equal import math_equal, math_verdict
from t1.rewards.math_verify_guard import stop_worker, warm_up

# (pred, ref, expected): each line a case a grader must get right
TABLE = [
    # fractions
    ("\\frac{1}{2}", "0.5", True),
    ("\\dfrac{1}{2}", "\\frac12", True),
    ("1/2", "\\tfrac{1}{2}", True),
    ("\\frac{2}{4}", "\\frac{1}{2}", True),
    ("\\frac{1}{3}", "0.33", False),
    ("\\frac{3}{4}", "\\frac{4}{3}", False),
    ("-\\frac{3}{4}", "\\frac{-3}{4}", True),
    ("\\frac{-3}{4}", "\\frac{3}{4}", False),
    # decimals and integers
    ("0.333333", "\\frac{1}{3}", True),
    ("10", "10.0", True),
    ("10.00", "10", True),
    ("3.14", "\\pi", False),
    ("28799", "28800", False),
    ("12345678901234567", "12345678901234568", False),
    (".5", "0.5", True),
    ("5.", "5", True),
    # thousands separators
    ("1,000", "1000", True),
    ("10{,}080", "10080", True),
    ("10,\\!080", "10080", True),
    ("1,001", "1000", False),
    # signs
    ("-5", "- 5", True),
    ("-5", "5", False),
    ("2-3", "-1", True),
    ("+7", "7", True),
    # radicals and constants
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("\\sqrt{8}", "2\\sqrt{3}", False),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt3", True),
    ("\\frac{3\\pi}{4}", "0.75\\pi", True),
    ("\\frac{\\pi}{3}", "\\frac{\\pi}{4}", False),
    ("e^2", "e^{2}", True),
    # expressions with variables
    ("x^2+2x+1", "(x+1)^2", True),
    ("x^2+2x+1", "(x-1)^2", False),
    ("\\frac{x}{2}", "x/2", True),
    ("2a+b", "b+2a", True),
    ("ab", "ba", True),
    # tuples, points, intervals
    ("(1, 2)", "(1,2)", True),
    ("(1,2)", "(2,1)", False),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", True),
    ("(3, \\frac{\\pi}{2})", "(3, \\pi)", False),
    ("[1,2)", "[1,2]", False),
    ("(-\\infty, 3)", "(-\\infty,3)", True),
    ("(-\\infty, 3]", "(-\\infty, 4]", False),
    ("(0,8) \\cup (9,36)", "(0,9) \\cup (9,36)", False),
    # sets and lists
    ("\\{1,2\\}", "\\{2,1\\}", True),
    ("\\{1,2\\}", "\\{1,3\\}", False),
    ("1, 2", "2,1", True),
    ("1,2,3", "1,2,4", False),
    # matrices
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 3 \\end{pmatrix}", False),
    (
        "\\begin{pmatrix} 1/2 & 0 \\\\ 0 & 1 \\end{pmatrix}",
        "\\begin{pmatrix} 0.5 & 0 \\\\ 0 & 1 \\end{pmatrix}",
        True,
    ),
    # degrees
    ("30^\\circ", "30", True),
    ("30^{\\circ}", "30", True),
    ("45^\\circ", "30", False),
    # percent
    ("50\\%", "50", True),
    ("50\\%", "0.5", True),
    ("40\\%", "50", False),
    # scientific notation
    ("1.5\\times10^{3}", "1500", True),
    ("2.5 \\times 10^3", "250", False),
    # units in \text{}
    ("5\\text{ cm}", "5", True),
    ("18\\text{ dollars}", "18", True),
    ("\\$18", "18", True),
    ("19\\text{ dollars}", "18", False),
    ("864 \\mbox{ inches}^2", "864", True),
    # text answers
    ("\\text{(C)}", "(C)", True),
    ("\\text{Monday}", "\\text{Tuesday}", False),
    # infinity
    ("\\infty", "\\infty", True),
    ("\\infty", "-\\infty", False),
    # equations and assignments
    ("x = 5", "5", True),
    ("y = 2x + 3", "2x+3", True),
    ("x=5", "6", False),
    # base subscripts as Math-Verify reads them (digits decide)
    ("2516_8", "2515_8", False),
]


def test_table_has_enough_cases() -> None:
    assert len(TABLE) >= 60
    assert sum(expected for _, _, expected in TABLE) >= 25
    assert sum(not expected for _, _, expected in TABLE) >= 25


@pytest.mark.parametrize(("pred", "ref", "expected"), TABLE)
def test_math_equal_table(pred: str, ref: str, expected: bool) -> None:
    assert math_equal(pred, ref) is expected
    assert math_equal(ref, pred) is expected  # symmetric on every case above


def test_fast_path_never_contradicts_the_table() -> None:
    for pred, ref, expected in TABLE:
        quick = fast_equal(pred, ref)
        assert quick in (None, expected), (pred, ref)


def test_fast_path_decides_the_common_cases_without_math_verify() -> None:
    for pred, ref in [("\\dfrac{1}{2}", "0.5"), ("42", "41"), ("2\\sqrt2", "\\sqrt{8}")]:
        assert math_verdict(pred, ref)[1] == "fast"


def test_math_verify_decides_what_the_fast_path_defers() -> None:
    # powers of functions, relations and sets of different sizes are left to Math-Verify
    assert math_verdict("\\sin^2 x + \\cos^2 x", "1") == (True, "verify")
    assert math_verdict("x<3", "3>x") == (True, "verify")
    pm_set = "\\{1\\pm\\sqrt{5},-2\\}"
    assert math_verdict(pm_set, "\\{1+\\sqrt5, 1-\\sqrt5, -2\\}") == (True, "verify")


def test_plus_minus_is_the_pair_of_values() -> None:
    assert math_verdict("1+\\sqrt{19}, 1-\\sqrt{19}", "1 \\pm \\sqrt{19}") == (True, "fast")
    # sqrt(19) +- 1 is {sqrt(19)+1, sqrt(19)-1}, not {1+sqrt(19), 1-sqrt(19)}
    assert math_verdict("\\sqrt{19} \\pm 1", "1 \\pm \\sqrt{19}") == (False, "fast")


def test_empty_and_non_string_inputs_are_not_equal() -> None:
    assert math_equal("", "") is False
    assert math_equal(None, "1") is False  # type: ignore[arg-type]
    assert math_equal("1", " ") is False


def test_hard_time_limit_off_the_main_thread() -> None:
    # 9999999! is a C-level bignum computation no signal can interrupt: the worker is killed.
    # The same from a thread, where Math-Verify's signal.alarm would raise ValueError.
    results: list[tuple[bool, str, float]] = []
    warm_up()  # start the worker first: its imports are not part of the limit

    def grade() -> None:
        start = time.monotonic()
        equal, how = math_verdict("9999999!", "1", timeout_s=1.0)
        results.append((equal, how, time.monotonic() - start))

    thread = threading.Thread(target=grade)
    thread.start()
    thread.join(timeout=30)
    assert results and results[0][:2] == (False, "timeout")
    assert results[0][2] < 1.5
    # the worker comes back for the next call
    assert math_verdict("x<3", "3>x", timeout_s=10.0) == (True, "verify")


def test_base_subscripts_follow_math_verify() -> None:
    # Math-Verify drops a base subscript (1011_2 reads as 1011); the fast path agrees with it,
    # since a verdict that differs from the reference grader would be a silent reward change
    assert math_verdict("1011_2", "1011") == (True, "fast")
    assert math_verdict("11_2", "3") == (False, "fast")


def test_a_stopped_worker_is_replaced_on_the_next_call() -> None:
    warm_up()
    stop_worker()
    stop_worker()  # stopping twice is harmless
    assert math_verdict("x<3", "3>x", timeout_s=10.0) == (True, "verify")
