"""Task verifiers and the registry."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from t1.errors import ConfigError, DataError
from t1.rewards import get_verifier, verifier_names
from t1.rewards.countdown import countdown_correct, parse_countdown_reference

REF_24 = json.dumps({"target": 24, "numbers": [3, 5, 7, 1], "use_all": True})


def test_registry_names_and_unknown_task() -> None:
    assert {"math", "gsm8k", "countdown", "linear", "gpqa"} <= set(verifier_names())
    with pytest.raises(
        ConfigError, match=r"did you mean 'countdown'.*valid: countdown, gpqa, gsm8k"
    ):
        get_verifier("contdown")
    with pytest.raises(ConfigError, match="cannot import"):
        get_verifier("no_such_module_xyz:factory")


@pytest.mark.parametrize(
    ("text", "correct"),
    [
        ("Answer: (7-3)*(5+1)", True),  # 4 * 6 = 24, uses 7, 3, 5, 1 once each
        ("\\boxed{(5+1)\\times(7-3)}", True),
        ("<answer>(1+5)*(7-3)</answer>", True),
        ("\\boxed{(7-3)*(5+1) = 24}", True),  # the '= target' side is skipped
        ("\\boxed{24 = (7-3)*(5+1)}", True),
        ("\\boxed{(7-1)*5-3*2}", False),  # 24, but 2 is not given
        ("\\boxed{(7-3)*(5+1)*1}", False),  # 1 used twice
        ("\\boxed{3*(7+1)}", False),  # 24 but 5 unused while use_all
        ("\\boxed{3+5+7+1}", False),  # uses all, equals 16
        ("\\boxed{24}", False),
        ("\\boxed{__import__('os').system('touch X')}", False),
        ("no answer", False),
    ],
)
def test_countdown(text: str, correct: bool) -> None:
    result = get_verifier("countdown")(text, REF_24)
    assert result.correct is correct
    assert result.score == (1.0 if correct else 0.0)


def test_countdown_fractions_and_subsets() -> None:
    # 8 / (3 - 8/3) = 8 / (1/3) = 24 uses 8, 3, 8, 3: fractions in intermediate steps are fine
    assert countdown_correct("8/(3-8/3)", Fraction(24), [Fraction(n) for n in (3, 3, 8, 8)])
    some = json.dumps({"target": 10, "numbers": [2, 5, 9], "use_all": False})
    assert get_verifier("countdown")("Answer: 2*5", some).correct
    assert not get_verifier("countdown")("Answer: 2*5*1", some).correct  # 1 not given


def test_countdown_bad_reference_is_a_data_error() -> None:
    with pytest.raises(DataError, match="countdown reference"):
        parse_countdown_reference("not json")
    assert parse_countdown_reference(REF_24) == (Fraction(24), (3, 5, 7, 1), True)


@pytest.mark.parametrize(
    ("text", "ref", "correct"),
    [
        ("so x = 5. Answer: 5", "5", True),
        ("\\boxed{x=-3}", "-3", True),
        ("the answer is 5.0.", "5", True),
        ("\\boxed{\\frac{10}{2}}", "5", True),
        ("\\boxed{6}", "5", False),
        ("x = 5", "5", False),  # no \boxed / Answer: anchor
        ("\\boxed{five}", "5", False),
    ],
)
def test_linear(text: str, ref: str, correct: bool) -> None:
    assert get_verifier("linear")(text, ref).correct is correct


@pytest.mark.parametrize(
    ("text", "ref", "correct"),
    [
        ("She makes 9 * 2 = $18 a day.", "#### 18", True),  # last number
        ("so 18 dollars.\n#### 18", "18", True),
        ("The answer is $1,000.", "1000", True),
        ("\\boxed{18.00}", "18", True),
        ("\\boxed{18 \\text{ dollars}}", "18", True),
        ("The answer is 17.", "18", False),
        ("I don't know", "18", False),
    ],
)
def test_gsm8k(text: str, ref: str, correct: bool) -> None:
    assert get_verifier("gsm8k")(text, ref).correct is correct


def test_math_verifier() -> None:
    verifier = get_verifier("math")
    solution = "Thus $r = 3$ and the point is $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$"
    result = verifier("so \\boxed{(3, \\dfrac{\\pi}{2})}", solution)
    assert result.correct and result.answer == "(3, \\dfrac{\\pi}{2})"
    assert result.metrics["timeout"] == 0.0
    assert not verifier("so \\boxed{(3, \\pi)}", solution).correct
    missing = verifier("no box here", "5")
    assert missing.answer is None and not missing.correct


def test_register_verifier(monkeypatch: pytest.MonkeyPatch) -> None:
    from t1.rewards import register_verifier, registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # undone after
    with pytest.raises(ConfigError, match="built in"):
        register_verifier("math", lambda: None)
    register_verifier("always_right_for_tests", lambda: lambda text, ref: None)
    assert "always_right_for_tests" in verifier_names()


def test_countdown_enforces_the_allowed_operators():
    # 3 8 1 5 -> 9 with "+" only: 8+1 is right; 5+8-3-1 = 9 reaches it with "-", not allowed
    ref = '{"target": 9, "numbers": [3, 8, 1, 5], "use_all": false, "ops": "+"}'
    verify = get_verifier("countdown")
    assert verify("Answer: \\boxed{8+1}", ref).correct
    assert not verify("Answer: \\boxed{5+8-3-1}", ref).correct
    assert not verify("Answer: \\boxed{3\\times 3}", ref).correct  # 3 used twice anyway
    assert not verify("Answer: \\boxed{\\frac{8}{1}+1}", ref).correct  # \frac is division
    # without "ops" every operator is allowed
    ref_all = '{"target": 9, "numbers": [3, 8, 1, 5], "use_all": false}'
    assert verify("Answer: \\boxed{5+8-3-1}", ref_all).correct
