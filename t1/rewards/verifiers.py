"""Task verifiers behind one interface, `Verifier(text, reference) -> RewardResult`, and a registry.

    math       the last \\boxed{} / "answer is" answer, `math_equal` to the reference (a bare answer
               or a MATH solution, reduced to its last box)
    gsm8k      the same extraction falling back to the last number; exact numeric comparison with the
               reference (`#### N` tails are reduced to N)
    countdown  reference JSON {"target": 24, "numbers": [3, 5, 7, 1], "use_all": true}; the answer is
               an arithmetic expression that uses each given number at most once (all of them when
               use_all) and equals the target exactly (`t1.rewards.arith`, never `eval`)
    linear     the answer is a number (e.g. an integer solution x), compared exactly

A task name of the form "package.module:attr" names a user factory, imported on first use (also in
worker processes), so a project can plug its own verifier into `reward.task`.

A verifier returns score 1.0 / 0.0 with `correct`, and `answer=None` when it found no answer;
`t1.rewards.reward.score_rollout` maps these to the configured rewards and penalties.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from t1.errors import ConfigError, DataError
from t1.rewards.arith import _SPELLINGS, ArithError, evaluate
from t1.rewards.base import RewardResult, Verifier
from t1.rewards.extraction import extract_answer, last_number, reference_answer
from t1.rewards.math_equal import DEFAULT_TIMEOUT_S, fast_verdict, math_verdict
from t1.rewards.normalize import parse_number

_ASSIGN_RE = re.compile(r"^\s*[a-zA-Z]\w*\s*=\s*")


def _verdict(correct: bool, answer: str | None, **metrics: float) -> RewardResult:
    return RewardResult(
        score=1.0 if correct else 0.0, correct=correct, answer=answer, metrics=dict(metrics)
    )


class MathVerifier:
    """Competition maths (MATH, AIME, AMC): symbolic equality through `math_equal`."""

    # the expensive path: batch scoring may send it to worker processes
    in_process = False

    def __init__(self, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def __call__(self, text: str, reference: str) -> RewardResult:
        answer = extract_answer(text)
        if answer is None:
            return _verdict(False, None)
        equal, how = math_verdict(answer, reference_answer(reference), timeout_s=self.timeout_s)
        return _verdict(
            equal, answer, timeout=float(how == "timeout"), slow_path=float(how != "fast")
        )

    def quick(self, text: str, reference: str) -> RewardResult | None:
        """The verdict when the fast path decides it, else None (batch scoring then sends the
        item to a worker process): most items never pay for inter-process traffic."""
        answer = extract_answer(text)
        if answer is None:
            return _verdict(False, None)
        equal = fast_verdict(answer, reference_answer(reference))
        return None if equal is None else _verdict(equal, answer, timeout=0.0, slow_path=0.0)


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
            return _verdict(False, None)
        ref = parse_number(reference_answer(reference))
        pred = _read_number(answer)
        if pred is None and answer:
            found = last_number(answer)
            pred = parse_number(found) if found else None
        return _verdict(pred is not None and ref is not None and pred == ref, answer)


class CountdownVerifier:
    """Countdown: reach the target with the given numbers and + - * / (exact fractions)."""

    in_process = True

    def __init__(self, timeout_s: float | None = None) -> None:
        del timeout_s  # bounded by construction: the parser caps length, depth and magnitude

    def __call__(self, text: str, reference: str) -> RewardResult:
        answer = extract_answer(text)
        if answer is None:
            return _verdict(False, None)
        target, numbers, use_all = parse_countdown_reference(reference)
        ops = countdown_ops(reference)
        return _verdict(countdown_correct(answer, target, numbers, use_all, ops), answer)


class LinearVerifier:
    """A numeric answer (e.g. the integer solution of a linear equation), compared exactly."""

    in_process = True

    def __init__(self, timeout_s: float | None = None) -> None:
        del timeout_s  # bounded: regex number parsing only

    def __call__(self, text: str, reference: str) -> RewardResult:
        answer = extract_answer(text)
        if answer is None:
            return _verdict(False, None)
        ref = _read_number(reference_answer(reference))
        pred = _read_number(answer)
        return _verdict(pred is not None and ref is not None and pred == ref, answer)


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
            f'countdown reference {str(reference)[:80]!r} is not JSON {{"target": N, "numbers": [...]}}'
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


def _read_number(answer: str) -> Fraction | None:
    """A number from an answer such as `x = -3`, `\\frac{7}{2}`, `1,000` or `12.0`."""
    if not isinstance(answer, str):
        return None
    return parse_number(_ASSIGN_RE.sub("", answer, count=1))


_REGISTRY: dict[str, Callable[..., Verifier]] = {
    "math": MathVerifier,
    "gsm8k": GSM8KVerifier,
    "countdown": CountdownVerifier,
    "linear": LinearVerifier,
}


BUILTIN_TASKS = frozenset(_REGISTRY)


def register_verifier(name: str, factory: Callable[..., Verifier]) -> None:
    """Make `get_verifier(name)` build verifiers with `factory` (in this process only: batch
    scoring then stays in-process; name a "package.module:factory" for worker processes)."""
    if name in BUILTIN_TASKS:
        raise ConfigError(f"verifier {name!r} is built in; register yours under another name")
    _REGISTRY[name] = factory


def verifier_names() -> list[str]:
    return sorted(_REGISTRY)


def get_verifier(task: str, **kwargs: Any) -> Verifier:
    """The verifier of `task` (a registered name or "package.module:attr"), built with kwargs."""
    factory = _REGISTRY.get(task)
    if factory is None and isinstance(task, str) and ":" in task:
        factory = _import_factory(task)
    if factory is None:
        near = difflib.get_close_matches(str(task), list(_REGISTRY), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(
            f"reward.task: unknown task {task!r}{hint}; valid: {', '.join(verifier_names())} "
            "or 'package.module:factory'"
        )
    return factory(**kwargs)


def _import_factory(spec: str) -> Callable[..., Verifier]:
    module_name, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"reward.task: cannot import verifier {spec!r}: {exc}") from exc
