"""Countdown: combine some of the given numbers with + - * / to hit a target exactly.

Problem   "Make 9 from 3 8 1 5 using +."   (use_all adds " Use every number once.")
Reference {"target": 9, "numbers": [3, 8, 1, 5], "use_all": false}   (t1.rewards countdown format)
Attempt   "Try 3*5=15, 15+7=22."   one binary step at a time, every intermediate a positive integer
Answer    the expression, minimally parenthesised: \\boxed{3*5+7}

Mistakes a solver makes, each with a rule-based critique whose arithmetic is true:
    miss     a valid expression that lands elsewhere   "3*5+7=22, not 26. Wrong."
    slip     the last step miscomputed as the target   "15+7=22, not 23. Wrong."
    reuse    a number used more often than given       "4 is used twice. Wrong."
    unused   (use_all only) hits the target, skips one "1 is not used. Wrong."
The verification of a right attempt restates it against the target: "8+1=9. Correct."
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from typing import Any, NamedTuple

from t1.data.problems import Problem
from t1.data.tasks.base import Attempt, Task, int_knob, unique_problems
from t1.errors import ConfigError, DataError

OPS = "+-*/"
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


@dataclass
class CountdownKnobs:
    # how many numbers a problem gives
    count: int = 4
    # the numbers are drawn uniformly from [low, high]
    low: int = 1
    high: int = 9
    # allowed operations, a string made of + - * /
    ops: str = OPS
    # every number must be used exactly once (else each at most once)
    use_all: bool = False
    # how many numbers the generator's own solution combines (None: 2..count at random)
    pick: int | None = None
    # targets stay within [min_target, max_target]
    min_target: int = 1
    max_target: int = 100

    def check(self) -> None:
        int_knob(self.count, "count", 2)
        int_knob(self.low, "low", 1)
        int_knob(self.high, "high", self.low)
        int_knob(self.max_target, "max_target", int_knob(self.min_target, "min_target", 1))
        if not isinstance(self.ops, str) or not self.ops or set(self.ops) - set(OPS):
            raise ConfigError(f"synth.task_args.ops must be made of '{OPS}', got {self.ops!r}")
        if not isinstance(self.use_all, bool):
            raise ConfigError(
                f"synth.task_args.use_all must be true or false, got {self.use_all!r}"
            )
        if self.pick is not None:
            int_knob(self.pick, "pick", 2)
            if self.pick > self.count or (self.use_all and self.pick != self.count):
                raise ConfigError(
                    f"synth.task_args.pick={self.pick} must be <= count={self.count} "
                    "(and equal to it when use_all is true)"
                )


class Item(NamedTuple):
    """A value built from leaves, with its expression and the steps that built it."""

    value: int
    expr: str
    # operator precedence of the top node (3 for a leaf)
    prec: int
    # (a, op, b, result) in the order written
    steps: tuple[tuple[int, str, int, int], ...]
    # the given numbers it consumed
    leaves: tuple[int, ...]


def leaf(n: int) -> Item:
    return Item(n, str(n), 3, (), (n,))


def _value(a: int, op: str, b: int) -> int | None:
    """a op b when it is a positive integer (the classic Countdown rule), else None."""
    if op == "+":
        v = a + b
    elif op == "-":
        v = a - b
    elif op == "*":
        v = a * b
    elif b != 0 and a % b == 0:
        v = a // b
    else:
        return None
    return v if v > 0 else None


def combine(x: Item, y: Item, op: str) -> Item | None:
    """The item x op y, minimally parenthesised; None when the result is not a positive integer."""
    v = _value(x.value, op, y.value)
    if v is None:
        return None
    p = _PREC[op]
    left = x.expr if x.prec >= p else f"({x.expr})"
    right = y.expr if y.prec > p or (y.prec == p and op in "+*") else f"({y.expr})"
    return Item(
        v,
        f"{left}{op}{right}",
        p,
        x.steps + y.steps + ((x.value, op, y.value, v),),
        x.leaves + y.leaves,
    )


class Spec(NamedTuple):
    target: int
    numbers: list[int]
    use_all: bool
    # allowed operations (the reference's "ops"; all four when it has none)
    ops: str
    # numbers the generator's solutions combine, when fixed (wrong attempts combine as many)
    pick: int | None


def spec(problem: Problem) -> Spec:
    """The countdown problem held in a reference (missing use_all means true, as in t1.rewards)."""
    try:
        ref = json.loads(problem.answer)
        target, numbers = int(ref["target"]), [int(n) for n in ref["numbers"]]
        ops, pick = str(ref.get("ops", OPS)), ref.get("pick")
        use_all = bool(ref.get("use_all", True))
        if set(ops) - set(OPS) or (pick is not None and int(pick) < 2):
            raise ValueError(f"bad ops {ops!r} or pick {pick!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"problem {problem.id}: not a countdown reference ({e})") from None
    return Spec(target, numbers, use_all, ops, None if pick is None else int(pick))


def steps_text(steps: tuple[tuple[int, str, int, int], ...]) -> str:
    return ", ".join(f"{a}{op}{b}={r}" for a, op, b, r in steps)


def random_item(numbers: list[int], ops: str, rng: random.Random) -> Item | None:
    """A random expression combining all of `numbers` (None when the ops can't)."""
    items = [leaf(n) for n in numbers]
    choices = [(op, swap) for op in ops for swap in (False, True)]
    while len(items) > 1:
        i, j = rng.sample(range(len(items)), 2)
        x, y = items[i], items[j]
        new = None
        for op, swap in rng.sample(choices, len(choices)):
            if op in "*/" and 1 in (x.value, y.value):
                continue  # x*1, x/1: no one writes them
            new = combine(y, x, op) if swap else combine(x, y, op)
            if new is not None:
                break
        if new is None:
            return None
        items = [it for k, it in enumerate(items) if k not in (i, j)] + [new]
    return items[0]


Move = tuple[int, int, str]


def _search(
    values: list[int], target: int, ops: str, rng: random.Random | None, dead: set
) -> list[Move] | None:
    """Moves (i, j, op) that combine all of `values` into `target`, or None.

    A move replaces values[i] and values[j] by values[i] op values[j] at the end of the list.
    Depth-first over values only (expressions are rebuilt from the moves); `dead` memoises
    multisets that cannot reach the target, and `rng` shuffles the first choice for variety.
    """
    if len(values) == 1:
        return [] if values[0] == target else None
    key = tuple(sorted(values))
    if key in dead:
        return None
    n = len(values)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    if rng is not None:
        rng.shuffle(pairs)
    for i, j in pairs:
        rest = [v for k, v in enumerate(values) if k != i and k != j]
        for op in ops:
            if op in "+*" and i > j:
                continue  # commutative: (j, i) covers it
            v = _value(values[i], op, values[j])
            if v is None:
                continue
            moves = _search([*rest, v], target, ops, None, dead)
            if moves is not None:
                return [(i, j, op), *moves]
    dead.add(key)
    return None


def _replay(values: list[int], moves: list[Move]) -> Item:
    items = [leaf(v) for v in values]
    for i, j, op in moves:
        new = combine(items[i], items[j], op)
        items = [it for k, it in enumerate(items) if k != i and k != j] + [new]
    return items[0]


def search_all(
    values: list[int],
    target: int,
    ops: str,
    rng: random.Random | None = None,
    dead: set | None = None,
) -> Item | None:
    """An expression using every one of `values` exactly once that equals `target`."""
    if len(values) < 2:
        return None
    moves = _search(list(values), target, ops, rng, set() if dead is None else dead)
    return None if moves is None else _replay(list(values), moves)


def solve_numbers(
    numbers: list[int], target: int, ops: str, use_all: bool, rng: random.Random | None = None
) -> Item | None:
    """An expression over `numbers` equal to `target` with at least one operation (None: none).

    Without use_all, subsets are tried smallest first, so the solution is one of the shortest:
    traces stay short when "8+1" does the job.
    """
    if use_all:
        return search_all(numbers, target, ops, rng)
    dead: set = set()
    for size in range(2, len(numbers) + 1):
        subsets = list(dict.fromkeys(tuple(c) for c in combinations(numbers, size)))
        if rng is not None:
            rng.shuffle(subsets)
        for subset in subsets:
            found = search_all(list(subset), target, ops, rng, dead)
            if found is not None:
                return found
    return None


class Countdown(Task):
    name = "countdown"
    mistake_kinds = ("miss", "slip", "reuse", "unused")
    knobs_type = CountdownKnobs

    def generate(self, n: int, seed: int, **knobs: Any) -> list[Problem]:
        k = self.knobs(**knobs)
        rng = random.Random(f"countdown-{seed}")

        def make(i: int) -> Problem | None:
            numbers = [rng.randint(k.low, k.high) for _ in range(k.count)]
            pick = k.count if k.use_all else (k.pick or rng.randint(2, k.count))
            item = random_item(rng.sample(numbers, pick), k.ops, rng)
            if item is None or not k.min_target <= item.value <= k.max_target:
                return None
            if item.value in numbers:
                return None  # a zero-step "solution"
            s = Spec(item.value, numbers, k.use_all, k.ops, k.pick)
            return self.make_problem(f"countdown-{seed}-{i}", s)

        return unique_problems(make, n, self.canonical, self.name)

    @staticmethod
    def make_problem(pid: str, s: Spec) -> Problem:
        """The problem text and its reference; "ops" and "pick" ride along in the reference
        (t1.rewards reads target, numbers and use_all, and ignores them)."""
        text = f"Make {s.target} from {' '.join(map(str, s.numbers))} using {' '.join(s.ops)}."
        if s.use_all:
            text += " Use every number once."
        ref = {"target": s.target, "numbers": s.numbers, "use_all": s.use_all, "ops": s.ops}
        if s.pick is not None:
            ref["pick"] = s.pick
        return Problem(id=pid, prompt=text, answer=json.dumps(ref), task="countdown")

    def canonical(self, problem: Problem) -> str:
        s = spec(problem)
        return f"countdown|{s.target}|{sorted(s.numbers)}|{s.use_all}|{''.join(sorted(s.ops))}"

    def solve(self, problem: Problem, rng: random.Random | None = None) -> Attempt | None:
        s = spec(problem)
        item = solve_numbers(s.numbers, s.target, s.ops, s.use_all, rng)
        return None if item is None else self._attempt(item, "correct")

    def _attempt(self, item: Item, kind: str, **extra: Any) -> Attempt:
        steps = extra.pop("claimed_steps", item.steps)
        body = f"{steps_text(steps)}."
        data = {"body": body, "expr": item.expr, "value": item.value, "steps": item.steps, **extra}
        # one attempt up to order: "7+9" and "9+7" use the same numbers for the same value
        data["key"] = f"{sorted(item.leaves)}={item.value}"
        return Attempt(text=f"Try {body}", answer=item.expr, kind=kind, data=data)

    def wrong_attempt(
        self, problem: Problem, rng: random.Random, kind: str | None = None
    ) -> Attempt | None:
        s = spec(problem)
        kind = kind or rng.choice(self.mistake_kinds)
        make = {"miss": _miss, "slip": _miss, "reuse": _reuse, "unused": _unused}.get(kind)
        if make is None:
            raise ConfigError(f"unknown countdown mistake '{kind}' (valid: {self.mistake_kinds})")
        item = make(s, rng)
        if item is None:
            return None
        if kind == "slip":
            if abs(item.value - s.target) > max(2, s.target // 10):
                return None  # nobody slips from 81 to 24: only near misses read as slips
            a, op, b, r = item.steps[-1]
            claimed = (*item.steps[:-1], (a, op, b, s.target))
            return self._attempt(item, kind, claimed_steps=claimed)
        extra: dict[str, Any] = {}
        if kind == "reuse":
            extra["number"] = _overused(item.leaves, s.numbers)
        if kind == "unused":
            extra["number"] = next(n for n in s.numbers if n not in item.leaves)
        return self._attempt(item, kind, **extra)

    def critique(self, problem: Problem, attempt: Attempt) -> str:
        target = spec(problem).target
        d = attempt.data
        if attempt.kind == "slip":
            a, op, b, r = d["steps"][-1]
            return f"{a}{op}{b}={r}, not {target}. Wrong."
        if attempt.kind == "reuse":
            return f"{d['number']} is used twice. Wrong."
        if attempt.kind == "unused":
            return f"{d['number']} is not used. Wrong."
        return f"{d['expr']}={d['value']}, not {target}. Wrong."

    def verification(self, problem: Problem, attempt: Attempt) -> str:
        return f"{attempt.data['expr']}={attempt.data['value']}. Correct."


def _subset_size(s: Spec, rng: random.Random) -> int:
    """How many numbers a wrong attempt combines: as many as the generator's solutions use."""
    if s.use_all:
        return len(s.numbers)
    return min(s.pick, len(s.numbers)) if s.pick else rng.randint(2, len(s.numbers))


def _miss(s: Spec, rng: random.Random, tries: int = 3) -> Item | None:
    """The closest of a few random valid expressions that miss (no step passing the target).

    Few draws keep variety (several misses per problem must differ) while favouring near misses.
    """
    best = None
    for _ in range(tries):
        item = random_item(rng.sample(s.numbers, _subset_size(s, rng)), s.ops, rng)
        if item is None or item.value == s.target or any(st[3] == s.target for st in item.steps):
            continue
        if best is None or abs(item.value - s.target) < abs(best.value - s.target):
            best = item
    return best


def _overused(leaves: tuple[int, ...], numbers: list[int]) -> int:
    have = Counter(numbers)
    return next(n for n, c in Counter(leaves).items() if c > have[n])


def _reuse(s: Spec, rng: random.Random, tries: int = 3) -> Item | None:
    """An expression hitting the target that uses a once-given number twice.

    With use_all, the second copy takes the place of another number (the slip people make);
    otherwise it joins a subset of the usual size.
    """
    singles = [n for n, c in Counter(s.numbers).items() if c == 1]
    for _ in range(tries if singles else 0):
        n = rng.choice(singles)
        others = list(s.numbers)
        others.remove(n)
        if s.use_all:
            others.pop(rng.randrange(len(others)))
            multiset = [n, n, *others]
        else:
            multiset = [n, n, *rng.sample(others, max(0, _subset_size(s, rng) - 2))]
        found = search_all(multiset, s.target, s.ops, rng)
        if found is not None:
            return found
    return None


def _unused(s: Spec, rng: random.Random) -> Item | None:
    """(use_all only) an expression hitting the target that leaves one number out."""
    if not s.use_all or len(s.numbers) < 3:
        return None
    skip = rng.randrange(len(s.numbers))
    rest = [n for i, n in enumerate(s.numbers) if i != skip]
    if s.numbers[skip] in rest:
        return None  # "x is not used" would be false: another copy of x is used
    return search_all(rest, s.target, s.ops, rng)
