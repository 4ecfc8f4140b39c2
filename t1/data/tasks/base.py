"""The `Task` interface of synthetic tasks, and the `Attempt` record trace synthesis works on.

A task knows four things about its problems, all programmatic and seeded:

    generate(n, seed, **knobs)      problems, unique by `canonical` key, answers in the verifier's format
    solve(problem, rng)             a correct attempt (a programmatic solver)
    wrong_attempt(problem, rng)     a realistic mistake of one of `mistake_kinds`
    critique / verification         the rule-based check of a wrong / right attempt, whose every
                                    arithmetic statement is true ("3+8=11, not 9. Wrong.")

Attempts are single lines ("Try 3+8=11."), so an answer-forcing suffix (`Task.suffix`) after
any line of a trace makes sense.
"""

from __future__ import annotations

import dataclasses
import difflib
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from t1.data.problems import Problem
from t1.errors import ConfigError


@dataclass(frozen=True)
class Attempt:
    """One attempt at a problem, as it appears in a trace."""

    # the attempt as written, e.g. "Try 3*5=15, 15+7=22."
    text: str
    # the final answer it commits to, in the verifier's format (None: the verifier extracts it)
    answer: str | None
    # how it was made: "correct", a mistake kind ("miss", "slip", ...) or "model"
    kind: str
    # task-specific structure the critic needs (steps, claimed values)
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class Task(ABC):
    """A synthetic task: generator, solver, mistake maker and rule-based critic."""

    name: str = ""
    # the t1.rewards verifier that grades its answers ("": the verifier named like the task)
    verifier: str = ""
    # mistakes `wrong_attempt` can make, and the default mix
    mistake_kinds: tuple[str, ...] = ()
    # the knobs dataclass `generate` accepts
    knobs_type: type = object
    # appended after a (possibly cut) trace to force an answer
    suffix: str = "\nAnswer: \\boxed{"

    def answer_line(self, answer: str) -> str:
        """The trace's last line; `suffix` is its prefix, so a forced answer reads the same."""
        prefix = self.suffix.lstrip("\n")
        return f"{prefix}{answer}}}"

    def trace_shape(self, text: str, check_phrases: Sequence[str] = ()) -> str | None:
        """Why `text` is not shaped like a synthesized trace, or None when it is.

        The shape, whatever the arithmetic: one or more attempt lines, each checked (one of
        `check_phrases` when given) and ending in "Wrong." except the last, which ends in
        "Correct.", then the answer line with a single boxed answer. A response cut by the
        length limit has no answer line, so it fails.
        """
        lines = text.strip().split("\n")
        *attempts, last = lines
        prefix = self.suffix.lstrip("\n")
        inner = last[len(prefix) : -1]
        if not (last.startswith(prefix) and last.endswith("}") and inner):
            return "no answer line"
        if "{" in inner or "}" in inner:
            return "malformed answer"
        if not attempts:
            return "no attempt"
        for i, line in enumerate(attempts, 1):
            verdict = "Correct." if i == len(attempts) else "Wrong."
            if not line.endswith(verdict):
                return f"attempt {i} does not end in {verdict!r}"
            if check_phrases and not any(p in line for p in check_phrases):
                return f"attempt {i} has no check"
        return None

    def knobs(self, **knobs: Any) -> Any:
        """Typed, checked difficulty knobs; unknown names and bad values are ConfigErrors."""
        return parse_knobs(self.knobs_type, knobs, self.name)

    @abstractmethod
    def generate(self, n: int, seed: int, **knobs: Any) -> list[Problem]:
        """`n` distinct problems (by `canonical`), the same for the same seed and knobs."""

    @abstractmethod
    def canonical(self, problem: Problem) -> str:
        """A key equal for problems that are the same up to presentation (e.g. number order)."""

    @abstractmethod
    def solve(self, problem: Problem, rng: random.Random | None = None) -> Attempt | None:
        """A correct attempt, or None when the problem has no solution."""

    @abstractmethod
    def wrong_attempt(
        self, problem: Problem, rng: random.Random, kind: str | None = None
    ) -> Attempt | None:
        """A realistic wrong attempt of `kind` (random kind when None); None when none exists."""

    @abstractmethod
    def critique(self, problem: Problem, attempt: Attempt) -> str:
        """Which step of a wrong attempt is wrong and why, in true arithmetic, ending in Wrong."""

    @abstractmethod
    def verification(self, problem: Problem, attempt: Attempt) -> str:
        """An explicit check of a right attempt, every statement true, ending in Correct."""

    def clean_solution(self, problem: Problem, attempt: Attempt) -> str:
        """A direct solution (no trial, no check) for the "clean" ablation."""
        return attempt.data.get("body", attempt.text)


def parse_knobs(cls: type, knobs: dict[str, Any], task: str) -> Any:
    """Build the knobs dataclass `cls`, naming the closest valid knob for an unknown one."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in knobs:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (valid: {', '.join(names)})"
            raise ConfigError(f"unknown knob 'synth.task_args.{key}' for task '{task}'{hint}")
    out = cls(**knobs)
    check = getattr(out, "check", None)
    if check is not None:
        check()
    return out


def int_knob(value: Any, key: str, low: int | None = None) -> int:
    """An int knob (bool rejected) at least `low`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"synth.task_args.{key} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"synth.task_args.{key} must be >= {low}, got {value}")
    return value


def unique_problems(
    make: Any, n: int, canonical: Any, task: str, max_tries_per_item: int = 50
) -> list[Problem]:
    """Call `make(i)` until `n` problems with distinct canonical keys exist.

    `make` returns None for a draw it rejects. Raises ConfigError when the knobs admit too few
    distinct problems, rather than looping forever.
    """
    out: list[Problem] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > max_tries_per_item * max(n, 20):
            raise ConfigError(
                f"task '{task}': found only {len(out)} distinct problems of the {n} asked for; "
                "widen the ranges in synth.task_args"
            )
        problem = make(len(out))
        if problem is None:
            continue
        key = canonical(problem)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out
