"""Fuzzing: no exception escapes, every call returns within 2 s, and nothing is executed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from t1.rewards import extract_answer, get_verifier, math_equal
from t1.rewards.base import RewardResult
from t1.rewards.math_verify_guard import warm_up

LIMIT_S = 2.0
FRAGMENTS = [
    "\\boxed{", "\\fbox{", "}", "{", "\\frac{", "\\dfrac", "\\sqrt", "^", "!", "9999999", "10",
    "**", "(", ")", "[", "]", "__import__('os').system('touch X')", "answer is ", "Answer:",
    "#### ", "<answer>", "</answer>", "\\pi", "x", "=", ",", "\\left(", "\\right)", "\\infty",
    "\\pm", ".", "-", "+", "/", "*", "\\text{", "e", "i", " ", "\n", "$", "\\begin{pmatrix}",
    "\\\\", "&", "\\end{pmatrix}", "%", "^\\circ", "\\$", "0", "1e308", "\\{", "\\}", "_8",
]  # fmt: skip
HOSTILE = [
    "__import__('os').system('touch X')",
    "\\boxed{__import__('os').system('touch X')}",
    "10**10**10**10",
    "\\boxed{10^{10^{10^{10}}}}",
    "\\frac{" * 10_000,
    "\\boxed{" + "\\frac{" * 10_000 + "}",
    "9999999!",
    "\\boxed{9999999!}",
    "\\boxed{(" * 5_000 + "1" + ")}" * 5_000,
    "Answer: " + "1" * 100_000,
    "\\boxed{2^{2^{2^{2^{2^{2^{2}}}}}}}",
    "\\boxed{\\sqrt[9999999]{9999999!}}",
    "\\x00\\xff\ud800",
    "\\boxed{1}, " * 20_000,
    "The final answer is " * 20_000,
    "Answer: (" * 20_000,
    "$" * 100_000,
]
fuzz_text = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=25).map("".join)
fast_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
slow_settings = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
REFS = {
    "countdown": json.dumps({"target": 24, "numbers": [3, 5, 7, 1]}),
    "linear": "5",
    "gsm8k": "#### 18",
    "math": "\\frac{\\sqrt{3}}{2}",
    "gpqa": json.dumps({"answer": "B", "choices": ["Neon", "Argon", "Xenon", "Radon"]}),
}


def _timed(fn, *args):  # noqa: ANN001, ANN202
    start = time.monotonic()
    out = fn(*args)
    elapsed = time.monotonic() - start
    assert elapsed < LIMIT_S, f"{elapsed:.2f}s on {args!r:.120}"
    return out


@pytest.fixture(scope="module", autouse=True)
def _warm_worker() -> None:
    """Start the Math-Verify worker once: its import is not a grading call."""
    warm_up()


@fast_settings
@given(fuzz_text)
def test_extract_answer_fuzz(text: str) -> None:
    out = _timed(extract_answer, text)
    assert out is None or isinstance(out, str)


@slow_settings
@given(fuzz_text, st.sampled_from(["\\frac{1}{2}", "(1,2)", "x^2+1", "\\infty", "5"]))
def test_math_equal_fuzz(pred: str, ref: str) -> None:
    assert _timed(math_equal, pred, ref, 1.0) in (True, False)


@pytest.mark.parametrize("task", ["countdown", "linear", "gsm8k", "gpqa"])
@fast_settings
@given(text=fuzz_text)
def test_cheap_verifiers_fuzz(task: str, text: str) -> None:
    result = _timed(get_verifier(task), text, REFS[task])
    assert isinstance(result, RewardResult) and result.score in (0.0, 1.0)


@slow_settings
@given(text=fuzz_text)
def test_math_verifier_fuzz(text: str) -> None:
    result = _timed(get_verifier("math", timeout_s=1.0), text, REFS["math"])
    assert isinstance(result, RewardResult)


def test_hostile_inputs_execute_nothing_and_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path.cwd()
    monkeypatch.chdir(tmp_path)
    verifiers = {task: get_verifier(task, timeout_s=1.0) for task in REFS}
    for text in HOSTILE:
        _timed(extract_answer, text)
        assert _timed(math_equal, text, "1", 1.0) is False
        for task, verifier in verifiers.items():
            assert not _timed(verifier, text, REFS[task]).correct
    for where in (tmp_path, home):
        assert not (where / "X").exists()
    assert os.getcwd() == str(tmp_path)
