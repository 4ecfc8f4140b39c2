"""Trial-and-error trace synthesis (DESIGN.md, recipe step 1) and the `t1 synth` command.

For each problem:

    pool     = attempter.attempts(problem)                    (t1.data.attempters)
    verdict  = verifier(attempt) for each attempt in pool     (t1.rewards.get_verifier)
    f        ~ Categorical(synth.failures)                    (0 failures included; "clean": 0)
    chosen   = f distinct wrong attempts, then one right attempt
    response = attempt_1 + check phrase + critique_1   sep
               retry phrase + attempt_2 + ...          sep
               retry phrase + right attempt + check phrase + verification   sep
               answer line ("Answer: \\boxed{8+1}")

e.g. "Try 3+8=11. Check: 3+8=11, not 9. Wrong.\\nLet me try again. Try 8+1=9. Check: 8+1=9.
Correct.\\nAnswer: \\boxed{8+1}". A trace is kept when the verifier accepts its whole response,
it has at most `max_chars` characters and its (prompt, response) pair is new; every drop is
counted by reason. A programmatic attempt whose verdict contradicts its own kind (a "correct"
attempt graded wrong) is dropped too: its rule-based check would state a falsehood.

When no attempt in the pool is right (a weak model on a real dataset) and the problem carries a
worked reference solution (GSM8K's answer text, MATH's `solution`), `synth.reference_fallback`
ends the trace with that solution as the right attempt instead of dropping the problem: at
least one of the model's wrong attempts and its critique come first (none in the clean style),
then the solution and its verification. `meta["final"]` and the summary's `final_attempt`
say how many traces end in a sampled, a reference or a solver's solution.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from t1.data.attempters import Attempter, TaskAttempter, model_attempter, reference_attempt
from t1.data.problems import Problem, problems_for
from t1.data.splits import generate_splits, normalize_prompt, write_splits
from t1.data.tasks import Attempt, Task, get_task
from t1.data.traces import Trace, write_traces
from t1.errors import ConfigError, T1Error
from t1.progress import Progress
from t1.runs import RunDir

# where a trace's right attempt came from (meta["final"]): sampled from a model, the problem's
# worked reference solution, or (anything else) a synthetic task's solver
FINAL = {"model": "sampled", "reference": "reference"}


class SynthResult(list):
    """The kept traces (a plain list) plus how many problems went in and why others dropped."""

    def __init__(self, problems: int) -> None:
        super().__init__()
        self.problems = problems
        self.dropped: Counter[str] = Counter()


def failure_weights(failures: list[float]) -> list[float]:
    """Checked probabilities of 0, 1, 2, ... failures (need not sum to 1)."""
    if not failures or any(not isinstance(w, int | float) or w < 0 for w in failures):
        raise ConfigError(f"synth.failures must be non-negative weights, got {failures!r}")
    if sum(failures) <= 0:
        raise ConfigError(f"synth.failures must have a positive weight, got {failures!r}")
    return [float(w) for w in failures]


def check_config(s: Any) -> None:
    """ConfigErrors for bad `synth.*` values, before any work (model keys only without a task)."""
    failure_weights(s.failures)
    positive = {"n": s.n, "max_chars": s.max_chars}
    if not s.task:
        positive.update(
            samples=s.samples,
            max_new_tokens=s.max_new_tokens,
            critic_max_new_tokens=s.critic_max_new_tokens,
        )
        if not s.temperatures or any(t <= 0 for t in s.temperatures):
            raise ConfigError(f"synth.temperatures must be positive, got {s.temperatures}")
        for key in ("critic_template", "verify_template"):
            if "{attempt}" not in getattr(s, key):
                raise ConfigError(f"synth.{key} must contain '{{attempt}}' where the attempt goes")
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"synth.{key} must be >= 1, got {value}")


def compose_trace(
    units: list[tuple[str, str]],
    answer_line: str,
    check_phrases: list[str],
    retry_phrases: list[str],
    rng: random.Random,
    inner: str = " ",
    sep: str = "\n",
) -> str:
    """One response from (attempt, check) units, failures first, and the final answer line."""
    lines = []
    for i, (attempt, check) in enumerate(units):
        retry = rng.choice(retry_phrases) if i > 0 and retry_phrases else ""
        phrase = rng.choice(check_phrases) if check_phrases else ""
        pieces = [p for p in (retry, attempt) if p]
        head = " ".join(pieces)
        tail = " ".join(p for p in (phrase, check) if p)
        lines.append(inner.join(p for p in (head, tail) if p))
    lines.append(answer_line)
    return sep.join(lines)


def _boxed(answer: str) -> str:
    return f"\\boxed{{{answer}}}"


def _grade(verifier: Any, problem: Problem, attempt: Attempt) -> tuple[bool, str | None]:
    """(correct, extracted answer) of one attempt; a bare answer is graded as \\boxed{answer}."""
    text = attempt.text if attempt.answer is None else _boxed(attempt.answer)
    result = verifier(text, problem.answer)
    return bool(result.correct), result.answer


def _wrongs(
    pool: list[Attempt], verdicts: list[tuple[bool, str | None]], f: int, rng: random.Random
) -> list[Attempt]:
    """Up to f wrong attempts with distinct answers, in pool order."""
    wrong: dict[str, Attempt] = {}
    for a, (ok, answer) in zip(pool, verdicts):
        if not ok and answer is not None and a.kind != "correct":
            wrong.setdefault(answer, a)
    wrongs = list(wrong.values())
    picked = sorted(rng.sample(range(len(wrongs)), min(f, len(wrongs))))
    return [wrongs[i] for i in picked]


def _choose(
    pool: list[Attempt], verdicts: list[tuple[bool, str | None]], f: int, rng: random.Random
) -> tuple[list[Attempt], Attempt] | str:
    """f wrong attempts with distinct answers and one right attempt, or the reason there are none."""
    right = [a for a, (ok, _) in zip(pool, verdicts) if ok]
    mismatch = any(
        a.kind != "model" and ok != (a.kind == "correct") for a, (ok, _) in zip(pool, verdicts)
    )
    if mismatch:
        return "verdict_mismatch"
    if not right:
        return "no_correct_attempt"
    return _wrongs(pool, verdicts, f, rng), rng.choice(right)


def _with_reference(
    problem: Problem,
    pool: list[Attempt],
    verdicts: list[tuple[bool, str | None]],
    f: int,
    rng: random.Random,
    verifier: Any,
) -> tuple[list[Attempt], Attempt] | str:
    """Up to f of the model's wrong attempts, then the problem's worked solution (rewritten by
    `reference_attempt`) as the right attempt; the reason when there is no usable solution."""
    reference = reference_attempt(problem)
    if reference is None:
        return "no_correct_attempt"
    if not _grade(verifier, problem, reference)[0]:
        return "reference_wrong"
    return _wrongs(pool, verdicts, f, rng), reference


def _resolve(
    problems_or_task: list[Problem] | Task | str, cfg: Any, attempter: Attempter | None
) -> tuple[list[Problem], Attempter]:
    if isinstance(problems_or_task, str | Task):
        task = get_task(problems_or_task) if isinstance(problems_or_task, str) else problems_or_task
        problems = task.generate(cfg.n, cfg.seed, **cfg.task_args)
    else:
        problems = list(problems_or_task)
        task = get_task(cfg.task) if attempter is None and cfg.task else None
    if attempter is None:
        if task is None:
            raise ConfigError("synthesize: problems without a synthetic task need an attempter")
        attempter = TaskAttempter(task, len(cfg.failures) - 1, cfg.mistakes)
    return problems, attempter


def synthesize(
    problems_or_task: list[Problem] | Task | str,
    cfg: Any,
    attempter: Attempter | None = None,
    rng: random.Random | int | None = None,
    chunk: int = 256,
    progress: bool = False,
) -> SynthResult:
    """Trial-and-error traces (or clean solutions) for problems, under a `SynthConfig`.

    `problems_or_task` is a problem list, or a task (name) whose `cfg.n` problems are generated
    with `cfg.task_args`; `attempter` defaults to the task's programmatic solver.
    """
    from t1.rewards import get_verifier

    weights = failure_weights(cfg.failures)
    problems, attempter = _resolve(problems_or_task, cfg, attempter)
    rng = rng if isinstance(rng, random.Random) else random.Random(cfg.seed if rng is None else rng)
    verifier = get_verifier(attempter.verifier_task)
    result = SynthResult(len(problems))
    seen: set[tuple[str, str]] = set()
    with Progress(len(problems), "synth", enabled=progress) as bar:
        for start in range(0, len(problems), chunk):
            batch = problems[start : start + chunk]
            _synth_chunk(batch, attempter, verifier, cfg, weights, rng, result, seen)
            bar.update(len(batch), traces=len(result))
    return result


def _synth_chunk(
    batch: list[Problem],
    attempter: Attempter,
    verifier: Any,
    cfg: Any,
    weights: list[float],
    rng: random.Random,
    result: SynthResult,
    seen: set[tuple[str, str]],
) -> None:
    """Attempts, grading, choice, checks and filters for one chunk of problems."""
    fails = [0 if cfg.style == "clean" else _draw(weights, rng) for _ in batch]
    pools = attempter.attempts(batch, rng)
    chosen = []
    for problem, pool, f in zip(batch, pools, fails, strict=True):
        verdicts = [_grade(verifier, problem, a) for a in pool]
        picked = _choose(pool, verdicts, f, rng)
        if picked == "no_correct_attempt" and cfg.reference_fallback:
            f = f if cfg.style == "clean" else max(f, 1)  # show a mistake of the model's own
            picked = _with_reference(problem, pool, verdicts, f, rng, verifier)
        if isinstance(picked, str):
            result.dropped[picked] += 1
        else:
            chosen.append((problem, *picked))
    for trace in _compose_all(chosen, attempter, cfg, rng, result.dropped):
        key = (normalize_prompt(trace.prompt), trace.response)
        if len(trace.response) > cfg.max_chars:
            result.dropped["too_long"] += 1
        elif not verifier(trace.response, trace.answer).correct:
            result.dropped["final_answer_wrong"] += 1
        elif key in seen:
            result.dropped["duplicate"] += 1
        else:
            seen.add(key)
            result.append(trace)


def _draw(weights: list[float], rng: random.Random) -> int:
    return rng.choices(range(len(weights)), weights=weights)[0]


def _compose_all(
    chosen: list[tuple[Problem, list[Attempt], Attempt]],
    attempter: Attempter,
    cfg: Any,
    rng: random.Random,
    dropped: Counter,
) -> list[Trace]:
    """Traces for the chosen attempts; the checks of one chunk are written in one batch
    (one generate call for an LLM critic). Clean solutions need no checks."""
    clean = cfg.style == "clean"
    flat = [(p, a, a is right) for p, wrongs, right in chosen for a in [*wrongs, right]]
    if clean:
        flat = []
    checks = iter(
        attempter.checks([x[0] for x in flat], [x[1] for x in flat], [x[2] for x in flat])
    )
    traces = []
    for problem, wrongs, right in chosen:
        units = [(a.text, "" if clean else next(checks)) for a in [*wrongs, right]]
        if not clean and any(not check for _, check in units):
            dropped["empty_check"] += 1
            continue
        answer = right.answer if right.answer is not None else _grade_answer(right)
        line = attempter.answer_line(answer)
        if clean:
            response = attempter.sep.join([attempter.clean(problem, right), line])
        else:
            response = compose_trace(
                units,
                line,
                cfg.check_phrases,
                cfg.retry_phrases,
                rng,
                attempter.inner,
                attempter.sep,
            )
        meta = {
            "id": problem.id,
            "task": attempter.verifier_task,
            "style": cfg.style,
            "attempts": len(wrongs) + 1,
            "failures": len(wrongs),
            "mistakes": [a.kind for a in wrongs],
            "final": FINAL.get(right.kind, "solver"),
        }
        if "messages" in problem.meta:
            meta["messages"] = problem.meta["messages"]
        traces.append(Trace(problem.prompt, response, problem.answer, meta))
    return traces


def _grade_answer(attempt: Attempt) -> str:
    """The final answer of a free-text (model) attempt, as the verifier extracts it."""
    from t1.rewards import extract_answer

    return extract_answer(attempt.text) or ""


def summarize(result: SynthResult, cfg: Any, seconds: float | None = None) -> dict[str, Any]:
    """Counts, attempts-per-trace histogram, mistake kinds, lengths and drop reasons."""
    lengths = sorted(len(t.response) for t in result)
    attempts = Counter(t.meta["attempts"] for t in result)
    mistakes = Counter(k for t in result for k in t.meta["mistakes"])
    final = Counter(t.meta.get("final", "solver") for t in result)
    chars = {}
    if lengths:
        chars = {
            "min": lengths[0],
            "mean": round(statistics.fmean(lengths), 1),
            "p50": lengths[len(lengths) // 2],
            "p95": lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))],
            "max": lengths[-1],
        }
    summary = {
        "traces": len(result),
        "problems": result.problems,
        "task": cfg.task,
        "style": cfg.style,
        "attempts_per_trace": {str(k): attempts[k] for k in sorted(attempts)},
        "with_retry": sum(c for k, c in attempts.items() if k > 1),
        "mistakes": dict(sorted(mistakes.items())),
        "final_attempt": dict(sorted(final.items())),
        "chars": chars,
        "dropped": dict(sorted(result.dropped.items())),
    }
    if seconds is not None:
        summary["seconds"] = round(seconds, 2)
    return summary


def format_summary(summary: dict[str, Any], path: Path) -> str:
    hist = ", ".join(f"{k}: {v}" for k, v in summary["attempts_per_trace"].items())
    chars = summary["chars"]
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()) or "none"
    final = ", ".join(f"{k} {v}" for k, v in summary["final_attempt"].items()) or "none"
    return (
        f"wrote {summary['traces']} traces from {summary['problems']} problems to {path}\n"
        f"  attempts per trace: {hist}\n"
        f"  final attempt: {final}\n"
        f"  characters: mean {chars.get('mean')}, p95 {chars.get('p95')}, max {chars.get('max')}\n"
        f"  dropped: {dropped}"
    )


def run_synth(cfg: Any, attempter: Attempter | None = None) -> int:
    """`t1 synth`: traces JSONL + summary.json (+ the problem sets of a synthetic task) at synth.out.

    With `synth.task` set, problems are generated (train.jsonl holds those the traces came from,
    plus one NAME.jsonl per `synth.splits` entry, all disjoint); otherwise `data.train` is read
    (at most data.max_train rows) and `synth.model` makes the attempts.
    """
    s = cfg.synth
    out = Path(s.out)
    check_config(s)
    start = time.perf_counter()
    if s.task:
        sets = generate_splits(s.task, {"train": s.n, **s.splits}, s.seed, s.task_args)
        problems = sets["train"]
    else:
        if not cfg.data.train:
            raise ConfigError("synth.task is null, so data.train must name a problem file")
        if s.splits:
            raise ConfigError("synth.splits needs a synthetic task (synth.task)")
        sets = {}
        problems = problems_for(cfg.data, "train")
        attempter = attempter or model_attempter(s, cfg.data)
    result = synthesize(problems, s, attempter=attempter, rng=s.seed, progress=True)
    if not result:
        raise T1Error(f"synth: no trace survived the filters (dropped: {dict(result.dropped)})")
    write_traces(out, list(result))
    summary = summarize(result, s, time.perf_counter() - start)
    if sets:
        summary["problem_sets"] = {k: str(v) for k, v in write_splits(out.parent, sets).items()}
    RunDir(out.parent).write_json("summary.json", summary)
    print(format_summary(summary, out))
    return 0
