"""The fast path of `math_equal`: decide the easy cases without sympy, defer the rest (None)."""

from __future__ import annotations

from fractions import Fraction

from t1.rewards.normalize import normalize_answer, parse_number

# numbers closer than this (relative) are left to Math-Verify, which rounds before comparing
CLOSE_REL = 1e-4


def fast_equal(pred: str, ref: str) -> bool | None:
    """True / False when sure, None when Math-Verify must decide."""
    a, b = normalize_answer(pred), normalize_answer(ref)
    if a and a == b:
        return True
    x, y = parse_number(a), parse_number(b)
    if x is not None and y is not None:
        return _numbers_equal(x, y)
    return None


def _numbers_equal(x: Fraction, y: Fraction) -> bool | None:
    if x == y:
        return True
    scale = max(abs(x), abs(y), Fraction(1))
    return False if abs(x - y) > CLOSE_REL * scale else None
