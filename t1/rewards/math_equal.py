"""`math_equal(pred, ref)`: is a predicted math answer equal to the reference?

Two stages, cheapest first:

    1. fast path (`t1.rewards.fast_equal`): normalised strings, exact numbers, and numeric values
       of constant expressions and tuples; it answers only when it is sure, else defers;
    2. Math-Verify (`t1.rewards.math_verify_guard`: a killable worker, a hard time limit that
       holds in any thread) for the rest. A timeout counts as "not equal".
"""

from __future__ import annotations

from t1.rewards.fast_equal import fast_equal
from t1.rewards.math_verify_guard import How, verify

DEFAULT_TIMEOUT_S = 2.0
# answers longer than this are not compared (no real answer is; hostile ones would be slow)
MAX_ANSWER_CHARS = 2000


def math_equal(pred: str, ref: str, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> bool:
    """True when `pred` and `ref` denote the same mathematical answer; False on timeout.

    `timeout_s=None` runs Math-Verify in this process with no limit (for callers that enforce
    their own, e.g. a worker the parent can kill).

    >>> math_equal("\\\\dfrac{1}{2}", "0.5"), math_equal("(1, 2)", "(2, 1)")
    (True, False)
    """
    return math_verdict(pred, ref, timeout_s)[0]


def math_verdict(
    pred: str, ref: str, timeout_s: float | None = DEFAULT_TIMEOUT_S
) -> tuple[bool, How]:
    """`math_equal` and how the verdict was reached: "fast", "verify", "timeout" or "error"."""
    if not isinstance(pred, str) or not isinstance(ref, str):
        return False, "error"
    quick = fast_verdict(pred, ref)
    if quick is not None:
        return quick, "fast"
    return verify(pred, ref, timeout_s)


def fast_verdict(pred: str, ref: str) -> bool | None:
    """The fast path alone: True / False when it is sure, None when Math-Verify must decide."""
    if not pred.strip() or not ref.strip():
        return False
    if len(pred) > MAX_ANSWER_CHARS or len(ref) > MAX_ANSWER_CHARS:
        return pred.strip() == ref.strip()
    try:
        return fast_equal(pred, ref)
    except (ValueError, ArithmeticError, RecursionError, OverflowError):
        return None
