"""`t1 scale`: inference scaling by truncation (DESIGN.md, recipe step 4; paper Figure 1).

For every problem, n responses are generated once, at the largest budget B = max(budgets).
For each budget b and response y (|y| tokens, finish reason f):

    own answer     if |y| <= b and f == "stop"  (it finished within b: graded as written)
    forced answer  otherwise: input = prompt_ids + y[:b] + suffix_ids, exactly b response
                   tokens kept, then `answer_tokens` greedy tokens by the policy (or by a separate
                   summariser, fed the same text through its own tokenizer and prompt format);
                   graded text = suffix + completion (e.g. "\\n\\nFinal answer: \\boxed{" + "42}")

    acc(b)  = mean_i (1/n) sum_j correct_ij(b),   95 % bootstrap interval over problems

Parallel alternative at equal total tokens: k samples of budget b/k, majority vote
(`t1.eval.metrics.maj_at_k`: disjoint groups of k consecutive samples, first-seen wins ties):

    par_k(b) = mean_i maj@k({answer_ij(b // k)}_j)

The forced answers' own `answer_tokens` are not counted in either budget (they are the same for
every point). The answers of one budget and one response are computed once, shared by all curves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from t1.config import DataConfig, ScaleStage
from t1.errors import ConfigError
from t1.eval.complete import GreedyCompleter
from t1.eval.metrics import accuracy_with_interval, maj_at_k
from t1.models.prompts import format_prompts
from t1.progress import Progress
from t1.rollout import sampling_params
from t1.rollout.base import Rollout, RolloutEngine, SamplingParams
from t1.runs import RunDir, seed_everything

# The default answer-forcing suffix per task (ScaleConfig.suffix overrides it).
DEFAULT_SUFFIX: dict[str, str] = {
    "math": "\n\nFinal answer: \\boxed{",
    "gsm8k": "\n\nFinal answer: \\boxed{",
    "countdown": "\n\nFinal answer: \\boxed{",
    "linear": "\n\nFinal answer: \\boxed{",
}
FALLBACK_SUFFIX = "\n\nFinal answer: \\boxed{"

# (answer or None, correct) of one response at one budget
Grade = tuple[str | None, bool]


def default_suffix(task: str) -> str:
    """The answer-forcing suffix for `task` (the boxed form every t1 verifier reads)."""
    return DEFAULT_SUFFIX.get(task, FALLBACK_SUFFIX)


def finished_within(rollout: Rollout, budget: int) -> bool:
    """A response that stopped by itself within `budget` tokens keeps its own answer."""
    return rollout.finish_reason == "stop" and len(rollout.response_ids) <= budget


def forced_input(rollout: Rollout, budget: int, suffix_ids: Sequence[int]) -> list[int]:
    """prompt + exactly the first `budget` response tokens + the answer-forcing suffix."""
    return list(rollout.prompt_ids) + list(rollout.response_ids[:budget]) + list(suffix_ids)


def grade_budgets(
    rollouts: Sequence[Rollout],
    references: Sequence[str],
    budgets: Sequence[int],
    completer: Any,
    suffix: str,
    answer_tokens: int,
    verifier: Callable[[str, str], Any] | Sequence[Callable[[str, str], Any]],
    policy_tokenizer: Any | None = None,
    completer_prompts: Sequence[str] | None = None,
) -> list[dict[int, Grade]]:
    """grades[r][b] = (answer, correct) of rollout r at budget b (see the module docstring).

    `references[p]` is prompt p's reference; `verifier` grades every prompt, or is a list with
    prompt p's verifier at p (files that mix tasks). The completer continues token ids: with the policy
    as completer the ids are the policy's own; with a summariser (`completer_prompts` given:
    prompt p formatted for the summariser) the kept text is decoded by `policy_tokenizer` and
    re-encoded by the summariser.
    """

    def grade(text: str, p: int) -> Grade:
        check = verifier[p] if isinstance(verifier, Sequence) else verifier
        res = check(text, references[p])
        return res.answer, bool(res.correct)

    suffix_ids = completer.encode(suffix)
    grades: list[dict[int, Grade]] = [{} for _ in rollouts]
    jobs: list[tuple[int, int]] = []
    inputs: list[list[int]] = []
    own: dict[int, Grade] = {}
    for r, ro in enumerate(rollouts):
        for b in budgets:
            if finished_within(ro, b):
                if r not in own:
                    own[r] = grade(ro.text, ro.prompt_index)
                grades[r][b] = own[r]
                continue
            if completer_prompts is None:
                inputs.append(forced_input(ro, b, suffix_ids))
            else:
                kept = policy_tokenizer.decode(ro.response_ids[:b], skip_special_tokens=True)
                text = completer_prompts[ro.prompt_index] + kept + suffix
                inputs.append(completer.encode_prompt(text))
            jobs.append((r, b))
    completions = completer.complete(inputs, answer_tokens) if inputs else []
    for (r, b), ids in zip(jobs, completions, strict=True):
        grades[r][b] = grade(suffix + completer.decode(ids), rollouts[r].prompt_index)
    return grades


def _per_problem(rollouts: Sequence[Rollout], grades: list[dict[int, Grade]]) -> list[list[dict]]:
    """Grades regrouped by prompt (prompts in index order, samples in generation order)."""
    groups: dict[int, list[dict[int, Grade]]] = {}
    for ro, g in zip(rollouts, grades, strict=True):
        groups.setdefault(ro.prompt_index, []).append(g)
    return [groups[i] for i in sorted(groups)]


def curves(
    rollouts: Sequence[Rollout],
    grades: list[dict[int, Grade]],
    budgets: Sequence[int],
    parallel_ks: Sequence[int] = (),
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """{"sequential": [{budget, accuracy, lo, hi, forced}], "parallel": [{k, budget,
    per_sample_budget, accuracy, lo, hi}]}; parallel points need b // k >= 1 and n >= k."""
    problems = _per_problem(rollouts, grades)
    n_min = min((len(p) for p in problems), default=0)
    seq = []
    for b in sorted(budgets):
        accs = [sum(g[b][1] for g in p) / len(p) for p in problems]
        point = accuracy_with_interval(accs, resamples=bootstrap, seed=seed)
        forced = [not finished_within(ro, b) for ro in rollouts]
        seq.append({"budget": b, **_rename(point), "forced": sum(forced) / max(1, len(forced))})
    par = []
    for k in sorted(set(parallel_ks)):
        for b in sorted(budgets):
            if k > n_min or b // k < 1:
                continue
            sub = b // k
            accs = [maj_at_k([g[sub][0] for g in p], [g[sub][1] for g in p], k) for p in problems]
            point = accuracy_with_interval(accs, resamples=bootstrap, seed=seed)
            par.append({"k": k, "budget": b, "per_sample_budget": sub, **_rename(point)})
    return {"sequential": seq, "parallel": par}


def _rename(point: dict[str, float]) -> dict[str, float]:
    return {"accuracy": point["mean"], "lo": point["lo"], "hi": point["hi"]}


def needed_budgets(budgets: Sequence[int], parallel_ks: Sequence[int], n: int) -> list[int]:
    """Every budget some curve reads: the budgets themselves and b // k for the parallel points."""
    need = set(budgets)
    for k in parallel_ks:
        if k <= n:
            need.update(b // k for b in budgets if b // k >= 1)
    return sorted(need)


def scaling_curve(
    engine: RolloutEngine,
    completer: Any,
    tokenizer: Any,
    problems: Sequence[Any],
    *,
    task: str,
    budgets: Sequence[int],
    sampling: SamplingParams,
    data_cfg: DataConfig,
    n: int = 1,
    parallel_ks: Sequence[int] = (),
    suffix: str | None = None,
    answer_tokens: int = 16,
    completer_prompts: Sequence[str] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    label: str = "model",
    progress: bool = True,
) -> dict[str, Any]:
    """Accuracy against the thinking budget of one policy on in-memory problems (for the demo
    and `t1 scale`). `completer` writes the forced answers: `GreedyCompleter(policy, tokenizer)`
    or one around a summariser, with `completer_prompts` the problems formatted for it."""
    if not budgets or min(budgets) < 1:
        raise ConfigError("config key 'scale.budgets': give one or more budgets >= 1")
    suffix = default_suffix(task) if suffix is None else suffix
    prompts = format_prompts(tokenizer, problems, data_cfg)
    long = dataclasses.replace(sampling, max_new_tokens=max(budgets))
    chunk = max(1, int(getattr(engine, "batch_size", 64)) // max(1, n))
    rollouts: list[Rollout] = []
    # progress: one unit per problem generated, one for all the forced answers
    with Progress(len(problems) + 1, f"scale {label}", enabled=progress) as bar:
        for start in range(0, len(prompts), chunk):
            part = engine.generate(prompts[start : start + chunk], n, long)
            rollouts += [dataclasses.replace(r, prompt_index=r.prompt_index + start) for r in part]
            bar.update(len(prompts[start : start + chunk]))
        grades = grade_budgets(
            rollouts,
            [str(p.answer) for p in problems],
            needed_budgets(budgets, parallel_ks, n),
            completer,
            suffix,
            answer_tokens,
            _verifiers(problems, task),
            policy_tokenizer=tokenizer,
            completer_prompts=completer_prompts,
        )
        bar.update(1)
    out = curves(rollouts, grades, budgets, parallel_ks, bootstrap=bootstrap, seed=seed)
    lens = [len(r.response_ids) for r in rollouts]
    return {
        "model": label,
        "n_problems": len(problems),
        "n": n,
        "suffix": suffix,
        "len_mean": sum(lens) / max(1, len(lens)),
        **out,
    }


def _verifiers(problems: Sequence[Any], task: str) -> list[Any]:
    """Each problem's verifier: its own task where the file names one, else `task`."""
    from t1.rewards import get_verifier

    made: dict[str, Any] = {}
    out = []
    for p in problems:
        name = getattr(p, "task", None) or task
        if name not in made:
            made[name] = get_verifier(name)
        out.append(made[name])
    return out


def model_label(path: str, taken: set[str]) -> str:
    """A short legend name: the folder or file name; a checkpoint (runs/x/rl/checkpoints/step-9)
    or final/ folder is named with its run ("rl/step-9"); a repeated name gets its parent."""
    p = Path(path)
    label = p.name or path
    if label.startswith("step-") or label == "final":
        run = p.parent.parent if p.parent.name == "checkpoints" else p.parent
        label = f"{run.name}/{p.name}"
    elif label in taken:
        label = f"{p.parent.name}/{p.name}"
    while label in taken:
        label += "'"
    taken.add(label)
    return label


def run_scale(cfg: ScaleStage) -> int:
    """`t1 scale`: scaling curves of cfg.models (or cfg.model) on data.eval, one figure."""
    from t1.data import problems_for
    from t1.eval.plots import plot_scaling
    from t1.models import load_model
    from t1.rollout import make_engine

    sc = cfg.scale
    if not cfg.data.eval:
        raise ConfigError(
            "config key 'data.eval' is required: a file, folder or Hub dataset of problems"
        )
    n = sc.n or (max(sc.parallel_ks) if sc.parallel and sc.parallel_ks else 1)
    ks = list(sc.parallel_ks) if sc.parallel else []
    if any(k > n for k in ks):
        raise ConfigError(f"config key 'scale.n': n={n} is smaller than a parallel k in {ks}")
    seed_everything(cfg.seed)
    problems = problems_for(cfg.data, "eval")
    summariser = None
    if sc.summariser:
        summariser = load_model(dataclasses.replace(cfg.model, path=sc.summariser))
    results, taken = [], set()
    for path in cfg.models or [cfg.model.path]:
        model, tok = load_model(dataclasses.replace(cfg.model, path=path))
        sum_model, sum_tok = summariser or (model, tok)
        completer = GreedyCompleter(sum_model, sum_tok, sc.answer_batch_size)
        prompts = format_prompts(sum_tok, problems, cfg.data)
        results.append(
            scaling_curve(
                make_engine(cfg.rollout, model, tok),
                completer,
                tok,
                problems,
                task=cfg.reward.task,
                budgets=sc.budgets,
                sampling=_sampling(cfg),
                data_cfg=cfg.data,
                n=n,
                parallel_ks=ks,
                suffix=sc.suffix,
                answer_tokens=sc.answer_tokens,
                completer_prompts=prompts if summariser else None,
                bootstrap=sc.bootstrap,
                seed=cfg.seed,
                label=model_label(path, taken),
                progress=sc.progress,
            )
        )
        del model
    run = RunDir(sc.out)
    run.write_config(cfg)
    path = write_scale(run, results, {"data": cfg.data.eval, "summariser": sc.summariser})
    png = plot_scaling(results, run.sub("plots") / "scale.png")
    print_scale(results)
    print(f"wrote {path} and {png}")
    return 0


def _sampling(cfg: ScaleStage) -> SamplingParams:
    return sampling_params(cfg.sampling, seed=cfg.seed)


def write_scale(run: RunDir, results: list[dict[str, Any]], meta: dict | None = None) -> Path:
    """eval/scale.json: {"models": [one scaling_curve() result per model], **meta}."""
    return run.write_json("eval/scale.json", {**(meta or {}), "models": results})


def print_scale(results: list[dict[str, Any]]) -> None:
    """Accuracy per budget for each model (sequential, then each parallel k), as a rich table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="t1 scale: accuracy against thinking budget (tokens per problem)")
    for col in ("model", "curve", "budget", "accuracy", "95% CI"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for res in results:
        points = [("sequential", pt) for pt in res["sequential"]]
        points += [(f"maj@{pt['k']} x {pt['per_sample_budget']}", pt) for pt in res["parallel"]]
        for curve, pt in points:
            ci = f"[{pt['lo']:.3f}, {pt['hi']:.3f}]"
            table.add_row(res["model"], curve, str(pt["budget"]), f"{pt['accuracy']:.3f}", ci)
    Console().print(table)
