"""Synthetic tasks: seeded generators and their knobs, solvers, mistakes and rule-based checks."""

from __future__ import annotations

import json
import random
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t1.data import Problem
from t1.data.tasks import get_task
from t1.data.tasks.countdown import Countdown, Spec, random_item, solve_numbers
from t1.errors import ConfigError, DataError
from t1.rewards import get_verifier
from t1.rewards.arith import evaluate


def test_registry() -> None:
    assert get_task("linear").name == "linear"
    with pytest.raises(
        ConfigError,
        match=r"unknown synthetic task 'count' \(valid: arithmetic, countdown, linear\)",
    ):
        get_task("count")


@pytest.mark.parametrize(
    ("task", "knobs"), [("countdown", {"ops": "+-", "count": 3}), ("linear", {})]
)
def test_generation_is_seeded_and_unique(task: str, knobs: dict) -> None:
    t = get_task(task)
    a, b, c = (t.generate(300, seed, **knobs) for seed in (1, 1, 2))
    assert a == b and a != c
    assert len({t.canonical(p) for p in a}) == 300
    assert len({p.id for p in a}) == 300 and all(p.task == task for p in a)


def test_countdown_problem_format_and_knobs() -> None:
    ps = get_task("countdown").generate(200, 0, count=3, low=2, high=6, ops="+*", max_target=30)
    for p in ps:
        ref = json.loads(p.answer)
        assert len(ref["numbers"]) == 3 and all(2 <= n <= 6 for n in ref["numbers"])
        assert 1 <= ref["target"] <= 30 and ref["target"] not in ref["numbers"]
        assert ref["use_all"] is False and ref["ops"] == "+*"
        assert (
            p.prompt == f"Make {ref['target']} from {' '.join(map(str, ref['numbers']))} using + *."
        )
    p = get_task("countdown").generate(1, 0, use_all=True)[0]
    assert p.prompt.endswith(" Use every number once.") and json.loads(p.answer)["use_all"]


@pytest.mark.parametrize(
    ("task", "knobs", "message"),
    [
        (
            "countdown",
            {"opps": "+"},
            "unknown knob 'synth.task_args.opps' for task 'countdown' (did you mean 'ops'?)",
        ),
        ("countdown", {"ops": "+^"}, "synth.task_args.ops must be made of '+-*/'"),
        ("countdown", {"pick": 5}, "synth.task_args.pick=5 must be <= count=4"),
        ("countdown", {"count": 1}, "synth.task_args.count must be >= 2"),
        ("countdown", {"high": 2.5}, "synth.task_args.high must be an integer"),
        ("linear", {"a_min": 0}, "synth.task_args.a_min must be >= 1"),
        ("linear", {"b_min": 0, "b_max": 0}, "must contain a non-zero b"),
        # 1..2 with + and 2 numbers: targets 2 (no: it is a given number), 3, 4 -> too few problems
        ("countdown", {"count": 2, "low": 1, "high": 2, "ops": "+"}, "found only"),
    ],
)
def test_bad_knobs(task: str, knobs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        get_task(task).generate(50, 0, **knobs)
    assert message in str(err.value)


def test_countdown_hand_example() -> None:
    t = Countdown()
    # pair sums of 3 8 1 5: 11, 4, 8, 9, 13, 6 -> only 8+1 makes 9
    p = t.make_problem("x", Spec(9, [3, 8, 1, 5], False, "+", 2))
    right = t.solve(p, random.Random(0))
    assert (right.text, right.answer) == ("Try 8+1=9.", "8+1")
    assert t.verification(p, right) == "8+1=9. Correct."
    assert t.clean_solution(p, right) == "8+1=9."
    assert (
        t.answer_line("8+1") == "Answer: \\boxed{8+1}"
        and "\n" + t.answer_line("8+1") == t.suffix + "8+1}"
    )
    # 9 is odd: no number doubled makes it, so there is no "reuse" mistake here
    assert t.wrong_attempt(p, random.Random(0), "reuse") is None
    slip = t.wrong_attempt(p, random.Random(0), "slip")
    ((a, op, b, r),) = slip.data["steps"]
    # a slip claims the target for a pair that really sums to something else, within 2 of 9
    assert slip.text == f"Try {a}+{b}=9." and r == a + b != 9 and abs(r - 9) <= 2
    assert t.critique(p, slip) == f"{a}+{b}={a + b}, not 9. Wrong."


def test_countdown_solver() -> None:
    # 3*(7-1)+6 = 24 uses all; nothing over [2, 3] with + makes 7
    item = solve_numbers([3, 7, 1, 6], 24, "+-*/", use_all=True)
    assert evaluate(item.expr).value == 24 and sorted(item.leaves) == [1, 3, 6, 7]
    assert solve_numbers([2, 3], 7, "+", use_all=False) is None
    assert solve_numbers([2, 3], 6, "+", use_all=True) is None and solve_numbers(
        [2, 3], 6, "*", True
    )
    # without use_all the shortest solution wins: 10 = 4+6 rather than 1+3+6 or 4*1+6
    assert sorted(
        solve_numbers([1, 3, 4, 6], 10, "+*", use_all=False, rng=random.Random(5)).leaves
    ) == [4, 6]
    for p in get_task("countdown").generate(300, 4):
        ref = json.loads(p.answer)
        right = get_task("countdown").solve(p, random.Random(0))
        assert get_verifier("countdown")(f"\\boxed{{{right.answer}}}", p.answer).correct, (
            p.prompt,
            right,
        )
        assert right.data["value"] == ref["target"]


@settings(max_examples=300, deadline=None)
@given(
    numbers=st.lists(st.integers(1, 30), min_size=2, max_size=5),
    ops=st.sets(st.sampled_from("+-*/"), min_size=1).map("".join),
    seed=st.integers(0, 10**6),
)
def test_random_expressions_render_their_value(numbers: list[int], ops: str, seed: int) -> None:
    """Minimal parentheses never change the value; every written step is true."""
    item = random_item(numbers, ops, random.Random(seed))
    if item is None:
        return
    parsed = evaluate(item.expr)
    assert parsed.value == item.value > 0
    assert Counter(parsed.numbers) == Counter(Fraction(n) for n in numbers)
    for a, op, b, r in item.steps:
        assert evaluate(f"{a}{op}{b}").value == r


def test_linear_hand_examples() -> None:
    t = get_task("linear")
    p = Problem("l", "Solve 3*x+5=17.", "4", "linear")
    right = t.solve(p)
    # x = (17-5)/3 = 12/3 = 4; check 3*4+5 = 12+5 = 17
    assert right.text == "Try x=(17-5)/3=4." and t.verification(p, right) == "3*4+5=17. Correct."
    rng = random.Random(0)
    off = t.wrong_attempt(p, rng, "off")
    assert (
        off.answer in ("3", "5") and t.critique(p, off) == f"(17-5)/3=4, not {off.answer}. Wrong."
    )
    assert t.critique(p, t.wrong_attempt(p, rng, "sign")) == "(17-5)/3=4, not -4. Wrong."
    # (17+5)/3 = 22/3 is no integer: no "move" mistake for this one
    assert t.wrong_attempt(p, rng, "move") is None
    q = Problem("m", "Solve 2*x+5=17.", "6", "linear")
    move = t.wrong_attempt(q, rng, "move")
    # (17+5)/2 = 11; substituted back: 2*11+5 = 27, not 17
    assert move.text == "Try x=(17+5)/2=11." and t.critique(q, move) == "2*11+5=27, not 17. Wrong."
    neg = Problem("n", "Solve -3*x-4=8.", "-4", "linear")
    right = t.solve(neg)
    # x = (8+4)/(-3) = -4; check -3*(-4)-4 = 12-4 = 8
    assert (
        right.text == "Try x=(8+4)/(-3)=-4."
        and t.verification(neg, right) == "-3*(-4)-4=8. Correct."
    )
    assert evaluate("(8+4)/(-3)").value == -4
    assert t.solve(Problem("f", "Solve 2*x+1=4.", "1.5")) is None
    with pytest.raises(DataError, match="no 'a\\*x\\+b=c' equation"):
        t.solve(Problem("g", "Solve x^2=4.", "2"))


@pytest.mark.parametrize("task", ["countdown", "linear"])
def test_every_mistake_is_graded_wrong(task: str) -> None:
    t, verifier, rng = get_task(task), get_verifier(task), random.Random(1)
    made = Counter()
    for p in t.generate(200, 9, **({"use_all": True} if task == "countdown" else {})):
        for kind in t.mistake_kinds:
            w = t.wrong_attempt(p, rng, kind)
            if w is not None:
                made[kind] += 1
                assert not verifier(f"\\boxed{{{w.answer}}}", p.answer).correct, (p.prompt, w)
                assert t.critique(p, w).endswith(". Wrong.")
    assert set(made) == set(t.mistake_kinds)  # every kind occurs
