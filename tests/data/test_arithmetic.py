"""The arithmetic word-problem task: generation, solver, mistakes and their true checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from t1.config import SynthConfig
from t1.data import Problem, load_problems, write_problems
from t1.data.synth import synthesize
from t1.data.tasks import get_task
from t1.data.tasks.arithmetic import Arithmetic
from t1.errors import ConfigError, DataError
from t1.rewards import get_verifier

STATEMENT = re.compile(r"(\d+) ([-+]) (\d+) = (-?\d+)")


def test_hand_example() -> None:
    t = Arithmetic()
    p = Problem(
        "p",
        "Mia has 37 stickers. ...",
        "66",
        "gsm8k",
        {"start": 37, "steps": [["+", 48], ["-", 19]]},
    )
    right = t.solve(p)
    assert right.text == "37 + 48 = 85. 85 - 19 = 66." and right.answer == "66"
    assert t.verification(p, right) == "66 + 19 = 85. 85 - 48 = 37. Correct."
    # a dropped carry in the first step; the second step is right from the wrong value
    carry = t._attempt(37, [("+", 48), ("-", 19)], [75, 56], "carry", at=0)
    assert carry.text == "37 + 48 = 75. 75 - 19 = 56."
    assert t.critique(p, carry) == "56 + 19 = 75. 75 - 48 = 27, not 37. Wrong."
    op = t._attempt(37, [("+", 48), ("+", 19)], [85, 104], "op", at=1)
    assert op.text == "37 + 48 = 85. 85 + 19 = 104."
    assert t.critique(p, op) == "19 is taken away, not added. Wrong."


def test_generation_seeded_unique_and_in_range() -> None:
    t = get_task("arithmetic")
    a, b, c = (t.generate(300, s, low=10, high=99, steps=2) for s in (1, 1, 2))
    assert a == b and a != c
    assert len({t.canonical(p) for p in a}) == 300
    verify = get_verifier("gsm8k")
    for p in a:
        start, steps = p.meta["start"], p.meta["steps"]
        assert len(steps) == 2 and all(10 <= n <= 99 for n in [start, *(n for _, n in steps)])
        assert p.prompt.startswith(f"{p.prompt.split()[0]} has {start} ")
        assert p.prompt.endswith(" have now?") and p.task == "gsm8k"
        value = start
        for op, n in steps:
            value = value + n if op == "+" else value - n
            assert value > 0  # counts stay positive
        assert p.answer == str(value)
        assert verify(f"So \\boxed{{{value}}}.", p.answer).correct


def test_structure_survives_a_file_and_is_required(tmp_path: Path) -> None:
    t = get_task("arithmetic")
    ps = t.generate(5, 0, low=100, high=999)
    back = load_problems(write_problems(tmp_path / "p.jsonl", ps))
    assert [t.solve(p).answer for p in back] == [p.answer for p in ps]
    with pytest.raises(DataError, match="problem q: no arithmetic structure in meta"):
        t.solve(Problem("q", "Tom has 3 apples.", "3"))


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"ops": "*"}, "synth.task_args.ops must be made of '+-'"),
        ({"steps": 0}, "synth.task_args.steps must be >= 1"),
        ({"low": 50, "high": 50}, "synth.task_args.high must be >= 51"),
    ],
)
def test_bad_knobs(knobs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        get_task("arithmetic").generate(10, 0, **knobs)


def _true(text: str) -> bool:
    """Every "a op b = c" statement in `text` is true."""
    return all(
        int(c) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        for a, op, b, c in STATEMENT.findall(text)
    )


def _check_wrong(attempt: str, check: str) -> None:
    """A critique's arithmetic is true and it names a real error of the attempt."""
    steps = STATEMENT.findall(attempt)
    starts = [steps[0][0]] + [c for *_, c in steps[:-1]]  # what each written step starts from
    assert check.endswith(". Wrong.") and _true(check)
    op_named = re.fullmatch(r"(\d+) is (added|taken away), not (added|taken away)\. Wrong\.", check)
    if op_named:
        # a step with that number used the operation the critique says it should not have
        n, right, wrong = op_named.groups()
        assert right != wrong
        assert any(b == n and op == ("+" if wrong == "added" else "-") for _, op, b, _ in steps)
        return
    # undoing a carry slip can go below zero: "62 - 69 = -7, not 3" (3 + 69 = 62 was written)
    miss = re.search(r"(\d+) ([-+]) (\d+) = (-?\d+), not (\d+)\. Wrong\.$", check)
    r, op, n, got, claimed = miss.groups()
    # undoing a written step misses the value that step started from: the step is false
    undone = [i for i, (_, _, b, c) in enumerate(steps) if (c, b) == (r, n)]
    assert any(got != claimed == starts[i] for i in undone) and not _true(attempt)


def test_every_check_of_every_trace_is_true() -> None:
    """2000 two-step traces, read back from their text: every verification undoes each step
    back to the story's start; every critique's arithmetic is true and names a real error."""
    cfg = SynthConfig(
        task="arithmetic",
        n=2000,
        failures=[0.2, 0.4, 0.4],
        task_args={"steps": 2},
        check_phrases=["Check:"],
        retry_phrases=["Let me try again."],
    )
    traces = synthesize("arithmetic", cfg)
    assert len(traces) == 2000 and not traces.dropped
    verify = get_verifier("gsm8k")
    for tr in traces:
        *attempts, last = tr.response.split("\n")
        assert last == f"Answer: \\boxed{{{tr.answer}}}" and verify(tr.response, tr.answer).correct
        for line in attempts[:-1]:
            attempt, check = line.removeprefix("Let me try again. ").split(" Check: ")
            _check_wrong(attempt, check)
        attempt, check = attempts[-1].removeprefix("Let me try again. ").split(" Check: ")
        start = STATEMENT.findall(attempt)[0][0]
        assert _true(attempt) and _true(check) and check.endswith(f"= {start}. Correct.")
        assert STATEMENT.findall(attempt)[-1][3] == tr.answer
    kinds = {k for tr in traces for k in tr.meta["mistakes"]}
    assert kinds == {"carry", "off", "op"}
