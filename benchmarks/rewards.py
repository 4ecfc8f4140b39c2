"""Grading throughput of `t1.rewards` against Math-Verify alone, and their verdict agreement.

    python benchmarks/rewards.py [--data ../shared/data/math500.jsonl] [--workers 2] [--seed 0]
                                 [--repeat 1] [--mix both|perturbed|cross|outputs]

Mixes, built reproducibly from MATH-500 with `--seed`:

    perturbed  per row: the gold answer, one equivalent respelling of it (`\\dfrac`, spaces,
               `\\left(`, a decimal for a simple fraction, `x = ` ...), and two plausible wrong
               answers (a digit changed, a sign flipped, a fraction inverted, tuple elements
               swapped, a constant swapped); graded answer against answer
    cross      each gold answer against 3 other rows' (a held-out check of agreement)
    outputs    per row, two right and two wrong model-like responses: the row's own solution
               text as reasoning, then the answer as models state it (a box, "the final answer
               is $X$. I hope it is correct.", "**Final Answer**", "Answer: $X$", "The value we
               want is $X$", one box per element of a tuple or list, a box corrected by a later
               "the final answer is"), written with units (`\\text{ cm}`), mixed numbers
               (`5\\frac{1}{2}`), thousands separators or a respelling; graded response against
               gold answer
    both       perturbed, then outputs (the default; outputs under the report's "outputs" key)

Graders:

    baseline   Math-Verify alone, in this process with its own signal-based limits (main
               thread): verify(parse(\\boxed{ref}), parse(\\boxed{pred})) on answers, and
               verify(parse(\\boxed{ref}), parse(response)) (its own extraction) on responses
    single     `math_equal(pred, ref)` on answers, the `math` verifier on responses: fast path,
               Math-Verify in a killable worker for the rest
    pool       `score_batch` with `workers` processes (answers are sent as "... \\boxed{pred}";
               includes answer extraction and penalties)

Timing: best of `--repeat` runs. Before each run every grader is warmed on `WARM` (pairs outside
the mix that need sympy's relation, set, simplification and matrix code), and t1 starts cold:
its cached readings cleared, its pool restarted. The report gives items/s, the ratio to the
baseline and the agreement with its verdicts, listing every disagreement.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "math500.jsonl"

_INT_RE = re.compile(r"\d+")
_FRAC_RE = re.compile(r"\\frac\{([^{}]*)\}\{([^{}]*)\}")


def respell(answer: str, rng: random.Random) -> str:
    """An equivalent spelling of `answer`, as a model might write it."""
    options = []
    if "\\frac" in answer:
        options.append(answer.replace("\\frac", "\\dfrac"))
        m = re.fullmatch(r"\\frac\{(\d+)\}\{(\d+)\}", answer)
        if m and int(m.group(2)) in (2, 4, 5, 8, 10, 20, 25):
            options.append(str(int(m.group(1)) / int(m.group(2))))
    if answer.startswith("(") and answer.endswith(")"):
        options.append("\\left(" + answer[1:-1] + "\\right)")
    list_comma = r",(?!\s*(?:\\!)?\s*\d{3})"  # a list's commas, not thousands separators
    if re.search(list_comma, answer):
        options.append(re.sub(list_comma, ", ", answer))
    if re.fullmatch(r"-?\d+", answer):
        options += [f"x = {answer}", f"{answer}.0", f"$ {answer} $"]
    options.append(" " + answer.replace("+", " + ") + " ")
    return rng.choice(options)


def corrupt(answer: str, rng: random.Random) -> str:
    """A plausible wrong answer near `answer` (never the same string)."""
    options = []
    ints = list(_INT_RE.finditer(answer))
    if ints:
        m = rng.choice(ints)
        new = str(int(m.group(0)) + rng.choice([1, -1, 2, 10])) if m.group(0) != "0" else "1"
        options.append(answer[: m.start()] + new + answer[m.end() :])
        options.append(answer[: m.start()] + str(int(m.group(0)) * 2) + answer[m.end() :])
    options.append(answer[1:] if answer.startswith("-") else "-" + answer)
    frac = _FRAC_RE.search(answer)
    if frac:
        swapped = f"\\frac{{{frac.group(2)}}}{{{frac.group(1)}}}"
        options.append(answer[: frac.start()] + swapped + answer[frac.end() :])
    if "\\pi" in answer:
        options.append(answer.replace("\\pi", "2\\pi", 1))
    if "\\sqrt" in answer:
        options.append(answer.replace("\\sqrt", "2\\sqrt", 1))
    pair = re.fullmatch(r"(\\left)?([(\[]?)([^,()\[\]]+),([^,()\[\]]+?)(\\right)?([)\]]?)", answer)
    if pair:  # (a, b) -> (b, a), keeping the brackets
        left, opening, first, second, right, closing = pair.groups()
        swapped = f"{left or ''}{opening}{second.strip()}, {first.strip()}{right or ''}{closing}"
        options.append(swapped)
    choices = [o for o in options if o != answer]
    return rng.choice(choices) if choices else answer + "+1"


def build_mix(rows: list[dict], seed: int) -> list[tuple[str, str]]:
    """(pred, ref) pairs: gold, a respelling and two wrong answers per row."""
    rng = random.Random(seed)
    items = []
    for row in rows:
        ref = row["answer"]
        items.append((ref, ref))
        items.append((respell(ref, rng), ref))
        items.append((corrupt(ref, rng), ref))
        items.append((corrupt(ref, rng), ref))
    return items


def build_cross(rows: list[dict], seed: int) -> list[tuple[str, str]]:
    """A held-out mix the fast path was not tuned on: each gold answer against 3 other rows'."""
    rng = random.Random(seed)
    answers = [str(row["answer"]) for row in rows]
    return [(rng.choice(answers), ref) for ref in answers for _ in range(3)]


_BOX_TAIL_RE = re.compile(r"\\boxed\{")
_UNITS = ("cm", "meters", "square units", "dollars", "degrees", "inches", "units", "m")


def split_top(answer: str) -> list[str]:
    """`answer` split at commas outside brackets ("(1,2), 3" -> ["(1,2)", "3"])."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(answer):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(answer[start:i].strip())
            start = i + 1
    return parts + [answer[start:].strip()]


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += (ch in "([{") - (ch in ")]}")
        if depth < 0:
            return False
    return depth == 0


def spellings(answer: str, rng: random.Random) -> str:
    """How a model might write `answer` in a box: units, a mixed number, thousands, as is."""
    options = [answer, respell(answer, rng)]
    if re.fullmatch(r"-?\d+(\.\d+)?", answer):
        unit = rng.choice(_UNITS)
        options += [f"{answer}\\text{{ {unit}}}", f"{answer} \\text{{{unit}}}"]
        if len(answer.lstrip("-")) > 3 and "." not in answer:
            options.append(f"{int(answer):,}")
    mixed = re.fullmatch(r"\\frac\{(\d+)\}\{(\d+)\}", answer)
    if mixed and int(mixed.group(1)) > int(mixed.group(2)) > 1:
        whole, rest = divmod(int(mixed.group(1)), int(mixed.group(2)))
        if rest:
            options.append(f"{whole}\\frac{{{rest}}}{{{mixed.group(2)}}}")
    if re.fullmatch(r"\\(?:frac|sqrt)\{.*\}|\d*\\sqrt\{\d+\}", answer):
        options.append(f"{answer}\\text{{ {rng.choice(_UNITS)}}}")
    return rng.choice(options)


def boxes(answer: str, rng: random.Random) -> str:
    """`answer` boxed once, or split over one box per element when it is a list or a tuple."""
    inner = answer[1:-1] if answer[:1] in "([" and answer[-1:] in ")]" else answer
    parts = split_top(inner) if _balanced(inner) and "\\cup" not in inner else [answer]
    if len(parts) < 2 or rng.random() < 0.3:
        return f"$\\boxed{{{answer}}}$"
    if len(parts) == 2 and rng.random() < 0.5:
        return f"$x = \\boxed{{{parts[0]}}}$ and $y = \\boxed{{{parts[1]}}}$"
    return ", ".join(f"$\\boxed{{{p}}}$" for p in parts)


def reasoning(solution: str, paragraphs: int) -> str:
    """The last `paragraphs` paragraphs of a solution before the sentence that states its
    answer (whole paragraphs and balanced `$`, so the prose reads as a model's would)."""
    before = _BOX_TAIL_RE.split(solution)[0]
    cut = max(before.rfind(". "), before.rfind("\n\n"))
    kept = [p for p in before[: max(cut + 1, 0)].split("\n\n") if p.strip()][-paragraphs:]
    prose = "\n\n".join(kept).strip()
    return prose if prose.count("$") % 2 == 0 else ""


def response(row: dict, answer: str, wrong: str, rng: random.Random) -> str:
    """A model-like response stating `answer` (`wrong` is a value it may state and revise)."""
    prose = reasoning(row["solution"], rng.choice([1, 2, 4]))
    said = spellings(answer, rng)
    templates = [
        lambda: f"{prose} $\\boxed{{{said}}}$.",
        lambda: (
            f"{prose}\n\nTherefore, the final answer is: $\\boxed{{{said}}}$. I hope it is correct."
        ),
        lambda: f"{prose}\n\nFinal Answer: The final answer is ${said}$. I hope it is correct.",
        lambda: f"{prose}\n\n**Final Answer**\n\\[\n\\boxed{{{said}}}\n\\]",
        lambda: f"{prose}\n\nAnswer: ${said}$",
        lambda: f"{prose} So the answer is ${said}$.",
        lambda: f"{prose}\n\nFinal Answer: The value we want is ${said}$.",
        lambda: f"{prose}\n\nThe answer is {boxes(answer, rng)}.",
        lambda: (
            f"{prose} This gives $\\boxed{{{wrong}}}$.\n\nWait, let me check that again. "
            f"Redoing the last step carefully, the final answer is ${said}$."
        ),
    ]
    return rng.choice(templates)()


def build_outputs(rows: list[dict], seed: int) -> list[tuple[str, str]]:
    """(response, reference) pairs: per row two right and two wrong model-like responses."""
    rng = random.Random(seed)
    items = []
    for row in rows:
        ref = str(row["answer"])
        for right in (True, True, False, False):
            wrong = corrupt(ref, rng)
            stated = ref if right else wrong
            items.append((response(row, stated, corrupt(ref, rng), rng), ref))
    return items


def _best_of(repeat: int, fn, *args, reset=None):  # noqa: ANN001, ANN202 - benchmark helper
    """(result, fastest wall time) over `repeat` runs: the machine's other load only adds.
    `reset` runs, untimed, before each run."""
    best = float("inf")
    for _ in range(repeat):
        if reset is not None:
            reset()
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return out, best


# pairs the fast path leaves to Math-Verify, one per kind of sympy work (relations, sets,
# simplification, matrices, logs, text): every grader runs them before it is timed, so no timed
# run pays sympy's first-use costs that the others were spared
WARM = [
    ("x<3", "3>x"),
    ("\\sin^2 x + \\cos^2 x", "1"),
    ("\\{1, 2\\}", "\\{2, 1, 3\\}"),
    ("[1, \\infty)", "x \\geq 1"),
    ("\\log_2 8", "3"),
    ("k = 45, n = 2", "(45, 2)"),
    (
        "\\begin{pmatrix} 1 & x \\\\ 0 & 1 \\end{pmatrix}^2",
        "\\begin{pmatrix} 1 & 2x \\\\ 0 & 1 \\end{pmatrix}",
    ),
    ("\\text{(A)}", "\\text{(B)}"),
]


def warm_math_verify() -> None:
    """The baseline's start: sympy's and Math-Verify's caches emptied (so no run reuses an
    earlier run's work on the mix), then Math-Verify alone on `WARM`, in this process."""
    from math_verify import parser
    from sympy.core.cache import clear_cache

    from t1.rewards.math_verify_guard import mv_equal

    clear_cache()
    for cached in (parser.parse_latex_cached, parser.parse_expr_cached, parser.extract_latex):
        cached.cache_clear()
    for pred, ref in WARM:
        mv_equal(pred, ref, timeouts=True)


def forget(cfg) -> None:  # noqa: ANN001 - benchmark helper
    """Start t1 cold: no reading cached from an earlier run, here or in its Math-Verify workers
    (all restarted); then warm those workers on `WARM` (answers outside the mix)."""
    from t1.rewards import latex_eval, normalize
    from t1.rewards.math_equal import math_verdict
    from t1.rewards.math_verify_guard import stop_worker
    from t1.rewards.reward import close_pools, score_batch

    close_pools()
    stop_worker()
    texts = [f"So $\\boxed{{{p}}}$." for p, _ in WARM] * 2 * cfg.workers
    refs = [r for _, r in WARM] * 2 * cfg.workers
    score_batch(texts, refs, ["stop"] * len(texts), None, "math", cfg)
    for pred, ref in WARM:
        math_verdict(pred, ref)
    for cached in (normalize.normalize_answer, normalize.parse_number, normalize.is_plain):
        cached.cache_clear()
    latex_eval.parse_latex.cache_clear()


def mv_grade(text: str, ref: str) -> bool:
    """Math-Verify alone on a whole response, with its own extraction and `signal` limits."""
    from math_verify import parse, verify

    gold = parse("\\boxed{" + ref + "}", parsing_timeout=5)
    return bool(verify(gold, parse(text, parsing_timeout=5), timeout_seconds=5))


def graders(mix: str, items: list[tuple[str, str]]) -> tuple[list[str], Callable, Callable]:
    """(responses for `score_batch`, the baseline, t1 in one process) for a mix."""
    from t1.rewards import get_verifier
    from t1.rewards.math_equal import math_verdict
    from t1.rewards.math_verify_guard import mv_equal

    if mix == "outputs":
        verifier = get_verifier("math")

        def single() -> list[tuple[bool, bool]]:
            results = [verifier(t, r) for t, r in items]
            return [(v.correct, v.metrics.get("slow_path", 0.0) == 0.0) for v in results]

        return [t for t, _ in items], lambda: [mv_grade(t, r) for t, r in items], single
    texts = [f"So the final answer is $\\boxed{{{p}}}$." for p, _ in items]
    return (
        texts,
        lambda: [mv_equal(p, r, timeouts=True) for p, r in items],
        lambda: [(v[0], v[1] == "fast") for v in (math_verdict(p, r) for p, r in items)],
    )


def run(data: Path, workers: int, seed: int, repeat: int = 1, mix: str = "perturbed") -> dict:
    from t1.config import RewardConfig
    from t1.rewards.math_verify_guard import mv_equal, warm_up
    from t1.rewards.reward import close_pools, score_batch

    rows = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    build = {"perturbed": build_mix, "cross": build_cross, "outputs": build_outputs}[mix]
    items = build(rows, seed)
    texts, baseline_fn, single_fn = graders(mix, items)
    refs = [r for _, r in items]
    cfg = RewardConfig(task="math", workers=workers)
    mv_equal("1", "1", timeouts=True)  # import sympy before timing anything
    warm_up()  # start the isolated worker

    def reset() -> None:
        forget(cfg)

    baseline, t_base = _best_of(repeat, baseline_fn, reset=warm_math_verify)
    single, t_single = _best_of(repeat, single_fn, reset=reset)
    pooled, t_pool = _best_of(
        repeat, score_batch, texts, refs, ["stop"] * len(items), None, "math", cfg, reset=reset
    )
    close_pools()

    n = len(items)
    report = {"items": n, "mix": mix, "repeat": repeat, "baseline_items_per_s": n / t_base}
    for name, verdicts, seconds in (
        ("single", [v[0] for v in single], t_single),
        ("pool", [r.correct for r in pooled], t_pool),
    ):
        disagree = [(items[i], baseline[i]) for i in range(n) if verdicts[i] != baseline[i]]
        report[name] = {
            "items_per_s": n / seconds,
            "speedup": t_base / seconds,
            "agreement": 1 - len(disagree) / n,
            "disagreements": [
                {"pred": p[-300:], "ref": r, "math_verify": b} for (p, r), b in disagree
            ],
        }
    report["fast_path_share"] = sum(v[1] for v in single) / n
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="best of N timings")
    parser.add_argument(
        "--mix",
        choices=["both", "perturbed", "cross", "outputs"],
        default="both",
        help="both: perturbed, then outputs (under the report's 'outputs' key)",
    )
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"error: {args.data} not found (MATH-500 JSONL)", file=sys.stderr)
        return 2
    first = "perturbed" if args.mix == "both" else args.mix
    report = run(args.data, args.workers, args.seed, args.repeat, first)
    if args.mix == "both":
        report["outputs"] = run(args.data, args.workers, args.seed, args.repeat, "outputs")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
