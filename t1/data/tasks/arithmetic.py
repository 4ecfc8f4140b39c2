"""Arithmetic word problems: a count changed by one or more additions and subtractions.

Problem   "Mia has 37 stickers. She buys 48 more. She gives away 19. How many stickers does
          Mia have now?"                  Reference "66" (graded by the "gsm8k" verifier)
Attempt   "37 + 48 = 85. 85 - 19 = 66."   one step per sentence, in the story's order
Answer    \\boxed{66}

The story's numbers and operations are kept in `meta` ({"start": 37, "steps": [["+", 48],
["-", 19]]}), so a problem read back from a file is solved from its structure, not its text.
Problems are the same (`canonical`) when their numbers and operations are, whatever the names.

Mistakes a solver makes, each with a rule-based critique whose arithmetic is true:
    carry  one step's result off by 10 (100, ...), a dropped carry or borrow
    off    one step's result off by one
    op     one step adds where the story takes away, or the reverse (and says so)
The check works backwards: every step is undone, from the last to the first, until the start
comes back ("Check: 66 + 19 = 85. 85 - 48 = 37. Correct."); a slip shows where undoing it
misses ("75 - 48 = 27, not 37. Wrong."); an operation mistake is named ("19 is taken away,
not added. Wrong.").
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from t1.data.problems import Problem
from t1.data.tasks.base import Attempt, Task, int_knob, unique_problems
from t1.errors import ConfigError, DataError

NAMES = [
    ("Mia", "She"), ("Tom", "He"), ("Ava", "She"), ("Leo", "He"), ("Zoe", "She"), ("Sam", "He"),
    ("Lily", "She"), ("Max", "He"), ("Emma", "She"), ("Ben", "He"), ("Nora", "She"),
    ("Jack", "He"),
]  # fmt: skip
ITEMS = ["apples", "stickers", "marbles", "books", "coins", "shells", "cards", "stamps", "beads"]
GAIN = ["{p} buys {n} more.", "{p} finds {n} more.", "{p} gets {n} more.", "{p} wins {n} more."]
LOSS = ["{p} gives away {n}.", "{p} loses {n}.", "{p} sells {n}.", "{p} uses {n}."]

Step = tuple[str, int]  # (operation, number)
WHAT = {"+": "added", "-": "taken away"}


@dataclass
class ArithmeticKnobs:
    # every number in the story (the start and each change) is drawn from [low, high]
    low: int = 10
    high: int = 99
    # changes after the start (additions or subtractions)
    steps: int = 1
    # allowed operations, a string made of + and -
    ops: str = "+-"

    def check(self) -> None:
        int_knob(self.high, "high", int_knob(self.low, "low", 1) + 1)
        int_knob(self.steps, "steps", 1)
        if not isinstance(self.ops, str) or not self.ops or set(self.ops) - set("+-"):
            raise ConfigError(f"synth.task_args.ops must be made of '+-', got {self.ops!r}")


def apply(value: int, op: str, n: int) -> int:
    return value + n if op == "+" else value - n


def inverse(op: str) -> str:
    return "-" if op == "+" else "+"


def structure(problem: Problem) -> tuple[int, list[Step]]:
    """(start, [(op, n), ...]) of a problem, from its meta."""
    try:
        start = int(problem.meta["start"])
        steps = [(str(op), int(n)) for op, n in problem.meta["steps"]]
        if not steps or any(op not in "+-" or len(op) != 1 for op, _ in steps):
            raise ValueError(f"bad steps {problem.meta['steps']!r}")
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(
            f"problem {problem.id}: no arithmetic structure in meta ({e}); expected "
            '{"start": 37, "steps": [["+", 48]]}'
        ) from None
    return start, steps


def story(start: int, steps: list[Step], rng: random.Random) -> str:
    name, pronoun = rng.choice(NAMES)
    items = rng.choice(ITEMS)
    lines = [f"{name} has {start} {items}."]
    for op, n in steps:
        lines.append(rng.choice(GAIN if op == "+" else LOSS).format(p=pronoun, n=n))
    lines.append(f"How many {items} does {name} have now?")
    return " ".join(lines)


class Arithmetic(Task):
    name = "arithmetic"
    verifier = "gsm8k"
    mistake_kinds = ("carry", "off", "op")
    knobs_type = ArithmeticKnobs

    def generate(self, n: int, seed: int, **knobs: Any) -> list[Problem]:
        k = self.knobs(**knobs)
        rng = random.Random(f"arithmetic-{seed}")

        def make(i: int) -> Problem | None:
            value = start = rng.randint(k.low, k.high)
            steps = []
            for _ in range(k.steps):
                op, m = rng.choice(k.ops), rng.randint(k.low, k.high)
                if op == "-" and m >= value:
                    return None  # counts stay positive
                steps.append((op, m))
                value = apply(value, op, m)
            meta = {"start": start, "steps": [list(s) for s in steps]}
            text = story(start, steps, rng)
            # `task` names the verifier that grades it (see Problem.task)
            return Problem(f"arithmetic-{seed}-{i}", text, str(value), self.verifier, meta)

        return unique_problems(make, n, self.canonical, self.name)

    def canonical(self, problem: Problem) -> str:
        start, steps = structure(problem)
        return "arithmetic|" + "|".join([str(start), *(f"{op}{n}" for op, n in steps)])

    def _attempt(
        self, start: int, steps: list[Step], results: list[int], kind: str, **d
    ) -> Attempt:
        """An attempt whose step i reads "a op n = results[i]" (a = the previous result)."""
        lines, value = [], start
        for (op, n), r in zip(steps, results, strict=True):
            lines.append(f"{value} {op} {n} = {r}.")
            value = r
        data = {"start": start, "steps": steps, "results": results, "key": str(value), **d}
        return Attempt(" ".join(lines), str(value), kind, data)

    def solve(self, problem: Problem, rng: random.Random | None = None) -> Attempt | None:
        start, steps = structure(problem)
        results, value = [], start
        for op, n in steps:
            value = apply(value, op, n)
            results.append(value)
        return self._attempt(start, steps, results, "correct")

    def wrong_attempt(
        self, problem: Problem, rng: random.Random, kind: str | None = None
    ) -> Attempt | None:
        start, steps = structure(problem)
        kind = kind or rng.choice(self.mistake_kinds)
        if kind not in self.mistake_kinds:
            raise ConfigError(f"unknown arithmetic mistake '{kind}' (valid: {self.mistake_kinds})")
        at = rng.randrange(len(steps))
        written, results, value = list(steps), [], start
        for i, (op, n) in enumerate(steps):
            true = apply(value, op, n)
            if i == at and kind == "op":  # the other operation, written as such
                written[i] = (inverse(op), n)
                value = apply(value, inverse(op), n)
            elif i == at:
                value = _slip(value, op, n, true, kind, rng)
            else:
                value = true
            if value is None or value <= 0 or (i == at and value == true):
                return None
            results.append(value)
        return self._attempt(start, written, results, kind, at=at)

    def critique(self, problem: Problem, attempt: Attempt) -> str:
        d = attempt.data
        start, steps, results, at = d["start"], d["steps"], d["results"], d["at"]
        before = [start, *results[:-1]]  # the value each step starts from, as written
        if attempt.kind == "op":
            # the story's operation, named without giving the answer away
            n, wrong = steps[at][1], steps[at][0]
            return f"{n} is {WHAT[inverse(wrong)]}, not {WHAT[wrong]}. Wrong."
        lines = _undo(steps, results, at + 1)
        op, n = steps[at]
        undone = apply(results[at], inverse(op), n)
        lines.append(f"{results[at]} {inverse(op)} {n} = {undone}, not {before[at]}. Wrong.")
        return " ".join(lines)

    def verification(self, problem: Problem, attempt: Attempt) -> str:
        d = attempt.data
        return " ".join(_undo(d["steps"], d["results"], 0)) + " Correct."


def _undo(steps: list[Step], results: list[int], down_to: int) -> list[str]:
    """Each step from the last down to `down_to` undone: "r inv n = a." (true when the step is)."""
    lines = []
    for i in range(len(steps) - 1, down_to - 1, -1):
        op, n = steps[i]
        lines.append(f"{results[i]} {inverse(op)} {n} = {apply(results[i], inverse(op), n)}.")
    return lines


def _slip(value: int, op: str, n: int, true: int, kind: str, rng: random.Random) -> int:
    """The wrong result of one step: off by one, or off by a power of ten (a dropped carry in
    an addition gives less, a dropped borrow in a subtraction more)."""
    if kind == "off":
        return true + rng.choice((1, -1))
    places = [10**p for p in range(1, len(str(max(value, n))))] or [10]
    return true + rng.choice(places) * (-1 if op == "+" else 1)
