"""Every synthesized trace of a synthetic task is valid, read back from its text alone.

For thousands of traces per task: each attempt's check is parsed back and evaluated with the
safe parser of t1.rewards.arith (not the synthesiser's own arithmetic):
- a verification ("E=V. Correct.") is true and V is the target;
- a critique points at a step that is really wrong: "E=V, not Z" has E really equal to V and
  either E=Z is a step the attempt wrote (a false step), or E is the attempt's whole expression
  and Z the target it misses; "n is used twice" / "n is not used" are true of the attempt;
- only the last attempt is judged correct, and the final \\boxed{} answer passes the verifier.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from fractions import Fraction

import pytest

from t1.config import SynthConfig
from t1.data.synth import synthesize
from t1.data.tasks import get_task
from t1.rewards import get_verifier
from t1.rewards.arith import evaluate

STEP = re.compile(r"(\d+)([-+*/])(\d+)=(\d+)")
CHECK = re.compile(
    r"^(?P<e>[^=]+)=(?P<v>-?\d+)(?:, not (?P<z>-?\d+))?\. (?P<verdict>Wrong|Correct)\.$"
)
USAGE = re.compile(r"^(?P<n>\d+) is (?P<what>used twice|not used)\. Wrong\.$")


def split_line(line: str, cfg: SynthConfig) -> tuple[str, str]:
    """(attempt body after "Try ", check text) of one attempt line, phrases removed."""
    head, body_and_rest = line.split("Try ", 1)
    assert head.strip() in [*cfg.retry_phrases, ""]
    body, rest = body_and_rest.split(". ", 1)
    for phrase in sorted(cfg.check_phrases, key=len, reverse=True):
        if phrase and rest.startswith(phrase + " "):
            rest = rest[len(phrase) + 1 :]
            break
    return body, rest


def value(expr: str) -> Fraction:
    return evaluate(expr).value


def check_countdown_line(body: str, check: str, ref: dict) -> str | None:
    """Assert one countdown attempt line is truthful; the verified expression if judged correct."""
    steps = [(int(a), op, int(b), int(r)) for a, op, b, r in STEP.findall(body)]
    assert steps and ", ".join(f"{a}{op}{b}={r}" for a, op, b, r in steps) == body
    operands = Counter(x for a, _, b, _ in steps for x in (a, b))
    leaves = operands - Counter(r for *_, r in steps[:-1])
    usage = USAGE.match(check)
    if usage:
        n = int(usage["n"])
        given = Counter(ref["numbers"])
        if usage["what"] == "used twice":
            assert leaves[n] > given[n] == 1, (body, check)
        else:
            assert ref["use_all"] and n in given and leaves[n] == 0, (body, check)
        return None
    m = CHECK.match(check)
    assert m, check
    e, v = m["e"], int(m["v"])
    assert value(e) == v, f"false statement {e}={v}"
    if m["verdict"] == "Correct":
        assert m["z"] is None and v == ref["target"]
        assert all(value(f"{a}{op}{b}") == r for a, op, b, r in steps), body
        assert sorted(evaluate(e).numbers) == sorted(Fraction(x) for x in leaves.elements())
        return e
    z = int(m["z"])
    assert v != z
    if f"{e}={z}" in [f"{a}{op}{b}={r}" for a, op, b, r in steps]:
        return None  # the critique names a step the attempt wrote, and that step is false
    # otherwise the critique is about the whole attempt: its true result misses the target
    assert z == ref["target"] and steps[-1][3] == v, (body, check)
    assert all(value(f"{a}{op}{b}") == r for a, op, b, r in steps), body
    assert sorted(evaluate(e).numbers) == sorted(Fraction(x) for x in leaves.elements())
    return None


def check_linear_line(body: str, check: str, abc: tuple[int, int, int]) -> str | None:
    """Assert one linear attempt line is truthful; the verified x if judged correct."""
    a, b, c = abc
    m = re.fullmatch(r"x=(\(.+\)/\(?-?\d+\)?)=(-?\d+)", body)
    assert m, body
    expr, x = m[1], int(m[2])
    cm = CHECK.match(check)
    assert cm, check
    e, v = cm["e"], int(cm["v"])
    assert value(e) == v, f"false statement {e}={v}"
    is_substitution = e == f"{a}*{x if x >= 0 else f'({x})'}{b:+d}"
    if cm["verdict"] == "Correct":
        assert is_substitution and v == c
        return str(x)
    z = int(cm["z"])
    assert v != z
    if is_substitution:
        assert z == c  # substituting the attempt's x back does not give c
    else:
        assert e == expr and z == x  # the attempt's own division step is false
    return None


CASES = [
    ("countdown", {"ops": "+", "pick": 2}, 1200),
    ("countdown", {}, 1200),
    ("countdown", {"use_all": True}, 1000),
    ("linear", {}, 2000),
]


@pytest.mark.parametrize(("task", "knobs", "n"), CASES)
def test_every_trace_is_truthful(task: str, knobs: dict, n: int) -> None:
    cfg = SynthConfig(task=task, n=n, task_args=knobs, seed=7)
    traces = synthesize(task, cfg)
    verifier = get_verifier(task)
    assert len(traces) == n and not traces.dropped  # nothing to filter when all is well
    retries = 0
    for t in traces:
        *lines, last = t.response.split("\n")
        assert last.startswith("Answer: \\boxed{") and verifier(t.response, t.answer).correct
        verdicts = []
        for line in lines:
            body, check = split_line(line, cfg)
            if task == "countdown":
                verdicts.append(check_countdown_line(body, check, json.loads(t.answer)))
            else:
                abc = tuple(
                    int(g) for g in re.search(r"(-?\d+)\*x([+-]\d+)=(-?\d+)", t.prompt).groups()
                )
                verdicts.append(check_linear_line(body, check, abc))
        assert verdicts[-1] is not None and verdicts[:-1] == [None] * (len(lines) - 1)
        assert len(lines) == t.meta["attempts"] == len(t.meta["mistakes"]) + 1
        # the boxed answer is the expression (or x) the verification checked
        assert last == f"Answer: \\boxed{{{verdicts[-1]}}}"
        retries += len(lines) > 1
        assert get_task(task).trace_shape(t.response, cfg.check_phrases) is None
    # the configured 0.3 / 0.4 / 0.3 failure mix gives retries in most traces
    assert retries > 0.5 * n


TRACE = "Try 1+2=3. Check: 1+2=3, not 5. Wrong.\nTry 2+3=5. Check: 2+3=5. Correct.\nAnswer: \\boxed{2+3}"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (TRACE, None),
        ("Try 2+3=5. Check: 2+3=5. Correct.\nAnswer: \\boxed{2+3}", None),
        (TRACE.rsplit("\n", 1)[0], "no answer line"),  # cut before the answer
        (TRACE[:-4], "no answer line"),  # cut inside it
        (TRACE.replace("{2+3}", "{}"), "no answer line"),
        (TRACE.replace("{2+3}", "{{2+3}}"), "malformed answer"),
        ("Answer: \\boxed{2+3}", "no attempt"),
        (TRACE.replace("not 5. Wrong.", "not 5."), "attempt 1 does not end in 'Wrong.'"),
        (TRACE.replace("Wrong.", "Correct."), "attempt 1 does not end in 'Wrong.'"),
        (TRACE.replace("5. Correct.", "5. Wrong."), "attempt 2 does not end in 'Correct.'"),
        (TRACE.replace("Check: 2+3", "2+3"), "attempt 2 has no check"),
    ],
)
def test_trace_shape(text: str, why: str | None) -> None:
    assert get_task("countdown").trace_shape(text, ["Check:"]) == why
