"""The countdown verifier: reach the target with the given numbers and + - * / (exact fractions).

Reference: JSON {"target": 24, "numbers": [3, 5, 7, 1], "use_all": true, "ops": "+-*/"}. The
answer is an arithmetic expression that uses each given number at most once (all of them when
use_all) and only the allowed operators, and equals the target exactly. It is read by the safe
parser of `t1.rewards.arith`, never `eval`.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

from t1.errors import DataError
from t1.rewards.arith import _SPELLINGS, ArithError, evaluate
from t1.rewards.base import RewardResult, verdict
from t1.rewards.extraction import extract_answer


class CountdownVerifier:
    """Countdown: reach the target with the given numbers and + - * / (exact fractions)."""

    in_process = True

    def __init__(self, timeout_s: float | None = None) -> None:
        del timeout_s  # bounded by construction: the parser caps length, depth and magnitude

    def __call__(self, text: str, reference: str) -> RewardResult:
        answer = extract_answer(text)
        if answer is None:
            return verdict(False, None)
        target, numbers, use_all = parse_countdown_reference(reference)
        ops = countdown_ops(reference)
        return verdict(countdown_correct(answer, target, numbers, use_all, ops), answer)


@functools.lru_cache(maxsize=4096)
def parse_countdown_reference(reference: str) -> tuple[Fraction, tuple[Fraction, ...], bool]:
    """(target, numbers, use_all) from the JSON reference.

    A malformed reference is the dataset's fault, not the model's: it raises `DataError` (and
    batch scoring counts it as a failure) rather than silently grading every answer wrong.
    """
    try:
        data = json.loads(reference) if isinstance(reference, str) else reference
        numbers = tuple(Fraction(str(n)) for n in data["numbers"])
        return Fraction(str(data["target"])), numbers, bool(data.get("use_all", True))
    except (ValueError, TypeError, KeyError, ZeroDivisionError) as exc:
        raise DataError(
            f"countdown reference {str(reference)[:80]!r} is not JSON "
            '{"target": N, "numbers": [...]}'
        ) from exc


@functools.lru_cache(maxsize=4096)
def countdown_ops(reference: str) -> str:
    """The operators a countdown problem allows (its reference's "ops"; all four when absent)."""
    try:
        data = json.loads(reference) if isinstance(reference, str) else reference
        ops = data.get("ops", "+-*/") if isinstance(data, dict) else "+-*/"
    except (ValueError, TypeError):
        return "+-*/"
    return ops if isinstance(ops, str) and ops else "+-*/"


def operators_used(expr: str) -> set[str]:
    """The arithmetic operators an expression writes, whatever its spelling (×, \\div, \\frac)."""
    text = expr
    for spelled, plain in _SPELLINGS:
        text = text.replace(spelled, plain)
    text = text.replace("\\frac", "/")
    return {c for c in text if c in "+-*/"}


def countdown_correct(
    answer: str,
    target: Fraction,
    numbers: Sequence[Fraction],
    use_all: bool = True,
    ops: str = "+-*/",
) -> bool:
    """True when some `=`-separated side of `answer` uses the numbers and only the allowed
    operators legally and equals target.

    "(7-1)*5-3*2 = 24" is read as its left side; a side that is just the target is skipped.
    """
    allowed = Counter(numbers)
    for side in sorted(answer.split("=")[:8], key=len, reverse=True):
        try:
            result = evaluate(side)
        except ArithError:
            continue
        if not operators_used(side) <= set(ops):
            return False
        used = Counter(result.numbers)
        if used == Counter([target]) and target not in allowed:
            continue
        legal = used == allowed if use_all else not (used - allowed)
        return legal and result.value == target
    return False
