"""Maths verifiers behind one interface, `Verifier(text, reference) -> RewardResult`.

    math       the final answer (`t1.rewards.extraction`), `math_equal` to the reference (a bare
               answer or a MATH solution, reduced to its final answer)
    gsm8k      the same extraction falling back to the last number; exact numeric comparison
               with the reference (`#### N` tails are reduced to N)
    linear     the answer is a number (e.g. an integer solution x), compared exactly

A verifier returns score 1.0 / 0.0 with `correct`, and `answer=None` when it found no answer;
`t1.rewards.reward.score_rollout` maps these to the configured rewards and penalties. The names
are given to them by `t1.rewards.registry`.
"""

from __future__ import annotations

import re
from fractions import Fraction

from t1.rewards.base import RewardResult, verdict
from t1.rewards.extraction import extract_answer, last_number, reference_answer
from t1.rewards.math_equal import DEFAULT_TIMEOUT_S, fast_verdict, math_verdict
from t1.rewards.normalize import parse_number

_ASSIGN_RE = re.compile(r"^\s*[a-zA-Z]\w*\s*=\s*")


class MathVerifier:
    """Competition maths (MATH, AIME, AMC): symbolic equality through `math_equal`."""

    # the expensive path: batch scoring may send it to worker processes
    in_process = False

    def __init__(self, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def __call__(self, text: str, reference: str) -> RewardResult:
        answer = extract_answer(text)
        if answer is None:
            return verdict(False, None)
        equal, how = math_verdict(answer, reference_answer(reference), timeout_s=self.timeout_s)
        return verdict(
            equal, answer, timeout=float(how == "timeout"), slow_path=float(how != "fast")
        )

    def quick(self, text: str, reference: str) -> RewardResult | None:
        """The verdict when the fast path decides it, else None (batch scoring then sends the
        item to a worker process): most items never pay for inter-process traffic."""
        answer = extract_answer(text)
        if answer is None:
            return verdict(False, None)
        equal = fast_verdict(answer, reference_answer(reference))
        return None if equal is None else verdict(equal, answer, timeout=0.0, slow_path=0.0)


class GSM8KVerifier:
    """Grade-school maths: the final number, compared exactly (`1,000.00` equals `1000`)."""

    in_process = True

    def __init__(self, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def __call__(self, text: str, reference: str) -> RewardResult:
        answer = extract_answer(text)
        if answer is None:
            answer = last_number(text) if isinstance(text, str) else None
        if answer is None:
            return verdict(False, None)
        ref = parse_number(reference_answer(reference))
        pred = _read_number(answer)
        if pred is None and answer:
            found = last_number(answer)
            pred = parse_number(found) if found else None
        return verdict(pred is not None and ref is not None and pred == ref, answer)


class LinearVerifier:
    """A numeric answer (e.g. the integer solution of a linear equation), compared exactly."""

    in_process = True

    def __init__(self, timeout_s: float | None = None) -> None:
        del timeout_s  # bounded: regex number parsing only

    def __call__(self, text: str, reference: str) -> RewardResult:
        answer = extract_answer(text)
        if answer is None:
            return verdict(False, None)
        ref = _read_number(reference_answer(reference))
        pred = _read_number(answer)
        return verdict(pred is not None and ref is not None and pred == ref, answer)


def _read_number(answer: str) -> Fraction | None:
    """A number from an answer such as `x = -3`, `\\frac{7}{2}`, `1,000` or `12.0`."""
    if not isinstance(answer, str):
        return None
    return parse_number(_ASSIGN_RE.sub("", answer, count=1))
