"""Linear equations: solve a*x + b = c over the integers.

Problem   "Solve 3*x+5=17."            Reference "4" (an integer; t1.rewards "linear" format)
Attempt   "Try x=(17-5)/3=4."          x = (c - b) / a, written out
Answer    \\boxed{4}

Mistakes a solver makes, each with a rule-based critique whose arithmetic is true:
    off    the division result off by one       "(17-5)/3=4, not 5. Wrong."
    sign   the division result with its sign lost "(17-5)/3=4, not -4. Wrong."
    move   b moved across without flipping sign, x = (c + b) / a (when that divides);
           shown wrong by substituting back      "2*11+5=27, not 17. Wrong."
The verification of a right attempt substitutes x back: "3*4+5=17. Correct."
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from t1.data.problems import Problem
from t1.data.tasks.base import Attempt, Task, int_knob, unique_problems
from t1.errors import ConfigError, DataError

_EQUATION = re.compile(r"(-?\d+)\*x([+-]\d+)=(-?\d+)")


@dataclass
class LinearKnobs:
    # |a| is drawn from [a_min, a_max]
    a_min: int = 2
    a_max: int = 9
    # the solution x is drawn from [x_min, x_max]
    x_min: int = -9
    x_max: int = 9
    # b is drawn from [b_min, b_max], never 0
    b_min: int = -20
    b_max: int = 20
    # a may be negative too
    negative_a: bool = False

    def check(self) -> None:
        int_knob(self.a_max, "a_max", int_knob(self.a_min, "a_min", 1))
        int_knob(self.x_max, "x_max", int_knob(self.x_min, "x_min"))
        int_knob(self.b_max, "b_max", int_knob(self.b_min, "b_min"))
        if self.b_min == self.b_max == 0:
            raise ConfigError("synth.task_args: b_min..b_max must contain a non-zero b")
        if not isinstance(self.negative_a, bool):
            raise ConfigError(
                f"synth.task_args.negative_a must be true or false, got {self.negative_a!r}"
            )


def paren(v: int) -> str:
    """A number as a factor: negatives in parentheses, so "3*(-4)" never reads as "3*-4"."""
    return f"({v})" if v < 0 else str(v)


def equation(a: int, b: int, c: int) -> str:
    return f"{a}*x{b:+d}={c}"


def solve_expr(a: int, b: int, c: int, flip: bool = True) -> str:
    """(c - b) / a as written in an attempt; flip=False keeps b's sign (the "move" mistake)."""
    moved = -b if flip else b
    return f"({c}{moved:+d})/{paren(a)}"


def substitution(a: int, b: int, x: int) -> tuple[str, int]:
    """("a*x+b", its value) for a candidate x."""
    return f"{a}*{paren(x)}{b:+d}", a * x + b


def coefficients(problem: Problem) -> tuple[int, int, int]:
    """(a, b, c) of a linear problem, read from its text."""
    m = _EQUATION.search(problem.prompt.replace(" ", ""))
    if not m:
        raise DataError(f"problem {problem.id}: no 'a*x+b=c' equation in {problem.prompt!r}")
    a, b, c = (int(g) for g in m.groups())
    if a == 0:
        raise DataError(f"problem {problem.id}: a is 0 in {problem.prompt!r}")
    return a, b, c


class Linear(Task):
    name = "linear"
    mistake_kinds = ("off", "sign", "move")
    knobs_type = LinearKnobs

    def generate(self, n: int, seed: int, **knobs: Any) -> list[Problem]:
        k = self.knobs(**knobs)
        rng = random.Random(f"linear-{seed}")

        def make(i: int) -> Problem | None:
            a = rng.randint(k.a_min, k.a_max) * (rng.choice((1, -1)) if k.negative_a else 1)
            x, b = rng.randint(k.x_min, k.x_max), rng.randint(k.b_min, k.b_max)
            if b == 0:
                return None
            text = f"Solve {equation(a, b, a * x + b)}."
            return Problem(id=f"linear-{seed}-{i}", prompt=text, answer=str(x), task="linear")

        return unique_problems(make, n, self.canonical, self.name)

    def canonical(self, problem: Problem) -> str:
        return "linear|" + "|".join(map(str, coefficients(problem)))

    def _attempt(self, a: int, b: int, c: int, kind: str, x: int, flip: bool = True) -> Attempt:
        expr = solve_expr(a, b, c, flip)
        body = f"x={expr}={x}."
        data = {"body": body, "expr": expr, "x": x, "a": a, "b": b, "c": c, "key": str(x)}
        return Attempt(text=f"Try {body}", answer=str(x), kind=kind, data=data)

    def solve(self, problem: Problem, rng: random.Random | None = None) -> Attempt | None:
        a, b, c = coefficients(problem)
        if (c - b) % a:
            return None
        return self._attempt(a, b, c, "correct", (c - b) // a)

    def wrong_attempt(
        self, problem: Problem, rng: random.Random, kind: str | None = None
    ) -> Attempt | None:
        a, b, c = coefficients(problem)
        if (c - b) % a:
            return None
        x = (c - b) // a
        kind = kind or rng.choice(self.mistake_kinds)
        if kind == "off":
            return self._attempt(a, b, c, kind, x + rng.choice((1, -1)))
        if kind == "sign":
            return None if x == 0 else self._attempt(a, b, c, kind, -x)
        if kind == "move":
            if (c + b) % a or (c + b) // a == x:
                return None
            return self._attempt(a, b, c, kind, (c + b) // a, flip=False)
        raise ConfigError(f"unknown linear mistake '{kind}' (valid: {self.mistake_kinds})")

    def critique(self, problem: Problem, attempt: Attempt) -> str:
        d = attempt.data
        if attempt.kind == "move":
            lhs, value = substitution(d["a"], d["b"], d["x"])
            return f"{lhs}={value}, not {d['c']}. Wrong."
        a, b, c = d["a"], d["b"], d["c"]
        return f"{d['expr']}={(c - b) // a}, not {d['x']}. Wrong."

    def verification(self, problem: Problem, attempt: Attempt) -> str:
        d = attempt.data
        lhs, value = substitution(d["a"], d["b"], d["x"])
        return f"{lhs}={value}. Correct."
