"""`t1 demo`: the whole T1 recipe on one CPU, in one run directory.

    task problems -> trial-and-error traces -> SFT a tiny model from scratch -> curate RL
    prompts -> T1 RL -> evaluate SFT and RL on held-out problems -> inference scaling of both
    -> report.html

The task is Countdown in its "pick two" form (which two of five digits sum to the target?):
a character-level model can't see the answer at a glance, so trying a pair, checking the sum
and trying again is how it gets there. That makes the paper's story visible at a small scale:
the trial-and-error habit comes from SFT, RL makes it reliable, and accuracy grows with the
thinking budget because later attempts fix earlier ones.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from pathlib import Path
from typing import Any

from t1.config import (
    DataConfig,
    DemoStage,
    EvalStage,
    ModelConfig,
    RLStage,
    SFTStage,
    TrainerConfig,
    load_config,
)
from t1.runs import RunDir, seed_everything

# --quick: every stage runs, at sizes that finish in a few minutes (for tests)
QUICK = [
    "data.n_sft=300",
    "data.n_rl=64",
    "data.n_test=100",
    "sft.epochs=1",
    "rl_steps=3",
    "rl.k=4",
    "rl.prompts_per_step=4",
    "rl.curate.n=2",
    "eval.n=1",
    "eval.max_new_tokens=48",
    "sampling.max_new_tokens=48",
    "scale.budgets=[8,16,32,48]",
    "scale.parallel_ks=[2]",
    "model.tiny.hidden_size=64",
    "model.tiny.num_layers=2",
    "model.tiny.intermediate_size=128",
]


def demo_config(quick: bool, seed: int, overrides: list[str], path: str | None = None) -> DemoStage:
    cfg = load_config(DemoStage, path, (QUICK if quick else []) + [f"seed={seed}", *overrides])
    return cfg


_T0 = [time.perf_counter()]


def _say(text: str) -> None:
    print(f"[t1 demo {time.perf_counter() - _T0[0]:6.0f}s] {text}", flush=True)


def _data_cfg() -> DataConfig:
    return DataConfig(chat_template="on")


def make_data(cfg: DemoStage, run: RunDir) -> dict[str, list]:
    """Disjoint SFT / RL / test problem sets, written to data/ (disjointness is checked)."""
    from t1.data.splits import assert_disjoint, generate_splits, write_splits

    d = cfg.data
    sizes = {"sft": d.n_sft, "rl": d.n_rl, "test": d.n_test}
    sets = generate_splits(d.task, sizes, seed=cfg.seed, knobs=d.task_args)
    assert_disjoint(sets)
    write_splits(run.sub("data"), sets)
    return sets


def make_traces(cfg: DemoStage, problems: list, run: RunDir) -> list:
    from t1.data.synth import summarize, synthesize
    from t1.data.traces import write_traces

    synth = dataclasses.replace(
        cfg.synth, task=cfg.data.task, task_args=cfg.data.task_args, seed=cfg.seed
    )
    traces = synthesize(problems, synth, progress=True)
    write_traces(run.sub("data") / "traces.jsonl", list(traces))
    run.write_json("data/traces_summary.json", summarize(traces, synth))
    return list(traces)


def train_sft_stage(cfg: DemoStage, traces: list, run: RunDir) -> tuple[Any, Any]:
    from t1.models import load_model
    from t1.train.sft import train_sft

    stage = SFTStage(
        model=cfg.model,
        data=_data_cfg(),
        sft=cfg.sft,
        optim=cfg.sft_optim,
        trainer=TrainerConfig(
            out=str(run.path / "sft"), seed=cfg.seed, steps=10**9, save_every=0, sample_every=0
        ),
    )
    seed_everything(cfg.seed)
    model, tokenizer = load_model(stage.model)
    model, summary = train_sft(stage, traces=traces, model=model, tokenizer=tokenizer)
    _say(f"SFT: {summary['steps']} steps in {summary['seconds']:.0f} s")
    return model, tokenizer


def rl_stage_config(cfg: DemoStage, run: RunDir) -> RLStage:
    return RLStage(
        model=cfg.model,
        data=_data_cfg(),
        sampling=cfg.sampling,
        reward=cfg.reward,
        rl=cfg.rl,
        optim=cfg.rl_optim,
        trainer=TrainerConfig(
            out=str(run.path / "rl"),
            seed=cfg.seed,
            steps=cfg.rl_steps,
            save_every=max(1, cfg.rl_steps // 3),
            sample_every=10,
            eval_every=0,
        ),
    )


def curate(
    cfg: DemoStage, stage: RLStage, model: Any, tokenizer: Any, problems: list, run: RunDir
) -> list:
    from t1.rollout import make_engine, sampling_params
    from t1.train.curate import curate_prompts

    if not cfg.rl.curate.enabled:
        return problems
    engine = make_engine(stage.rollout, model, tokenizer)
    sampling = sampling_params(cfg.sampling, seed=cfg.seed, temperature=cfg.rl.curate.temperature)
    kept, report = curate_prompts(
        engine, tokenizer, problems, cfg.rl.curate, sampling, cfg.reward, stage.data
    )
    run.write_json("rl/curation.json", dataclasses.asdict(report))
    _say(report.summary())
    if len(kept) < cfg.rl.prompts_per_step:  # too few hard prompts: train on the whole pool
        _say("too few prompts survived curation; using the whole RL pool")
        return problems
    return kept


def evaluate_model(
    cfg: DemoStage, name: str, model: Any, tokenizer: Any, problems: list, run: RunDir
) -> dict[str, Any]:
    from t1.eval.evaluate import evaluate, write_eval
    from t1.rollout import SamplingParams, make_engine

    stage = EvalStage(data=_data_cfg(), reward=cfg.reward)
    engine = make_engine(stage.rollout, model, tokenizer)
    e = cfg.eval
    sampling = SamplingParams(
        temperature=e.temperature, max_new_tokens=e.max_new_tokens, seed=cfg.seed
    )
    result = evaluate(
        engine,
        tokenizer,
        problems,
        cfg.reward.task,
        sampling,
        e.n,
        [1],
        cfg.reward,
        stage.data,
        seed=cfg.seed,
    )
    write_eval(run, name, result, {"model": name, "n_problems": len(problems), "samples": e.n})
    return result


def scale_models(
    cfg: DemoStage, models: dict[str, tuple[Any, Any]], problems: list, run: RunDir
) -> list[dict[str, Any]]:
    from t1.eval.complete import GreedyCompleter
    from t1.eval.plots import plot_scaling
    from t1.eval.scaling import scaling_curve, write_scale
    from t1.rollout import SamplingParams, make_engine

    sc = cfg.scale
    ks = list(sc.parallel_ks) if sc.parallel else []
    # k samples per problem for majority vote over k (at budget b / k each)
    n = sc.n or max(ks, default=1)
    results = []
    for label, (model, tokenizer) in models.items():
        engine = make_engine(EvalStage().rollout, model, tokenizer)
        sampling = SamplingParams(temperature=cfg.eval.temperature, seed=cfg.seed)
        results.append(
            scaling_curve(
                engine,
                GreedyCompleter(model, tokenizer),
                tokenizer,
                problems,
                task=cfg.reward.task,
                budgets=cfg.scale.budgets,
                sampling=sampling,
                data_cfg=_data_cfg(),
                n=n,
                parallel_ks=ks,
                suffix=cfg.scale.suffix,
                answer_tokens=cfg.scale.answer_tokens,
                seed=cfg.seed,
                label=label,
            )
        )
    write_scale(run, results, {"labels": list(models)})
    plot_scaling(results, run.sub("plots") / "scaling.png")
    return results


# `t1 demo` at its default settings over seeds 0-4, each with 1 and with 2 intra-op threads, on
# the project's 2-core machine (benchmarks/demo_seeds.py; README, Results): (min, median, max) in
# points over the runs. One run's interval covers its evaluation sample only; this is the spread
# of training itself (seed, thread count; another CPU rounds differently again).
DEMO_SPREAD: dict[str, Any] = {
    "runs": "10 runs (seeds 0-4, 1 and 2 threads)",
    "rl_minus_sft": (11.1, 16.8, 20.8),
    "scaling_gain": (47.3, 61.8, 65.8),
}


def spread_lines(spread: dict[str, Any]) -> list[str]:
    """How much the headline's numbers vary between runs, as measured (`DEMO_SPREAD`)."""
    d, g = spread["rl_minus_sft"], spread["scaling_gain"]
    return [
        f"  the gain varies from run to run: over {spread['runs']}, see README, Results,",
        f"  RL - SFT was {d[0]:+.1f} to {d[2]:+.1f} points (median {d[1]:+.1f}) and the RL "
        f"scaling gain {g[0]:+.1f} to {g[2]:+.1f} (median {g[1]:+.1f})",
    ]


def headline(
    sft: dict[str, Any],
    rl: dict[str, Any],
    scale: list[dict[str, Any]],
    spread: dict[str, Any] | None = None,
) -> list[str]:
    """The numbers a reader wants first: SFT vs RL accuracy and the scaling gain; with `spread`,
    how much they vary between runs."""
    a, b = sft["accuracy"], rl["accuracy"]
    # standard errors from the per-problem bootstrap intervals: a problem's samples are
    # correlated, so counting them as independent draws would overstate the evidence
    se = math.hypot((a["hi"] - a["lo"]) / 3.92, (b["hi"] - b["lo"]) / 3.92)
    diff = b["mean"] - a["mean"]
    # both intervals of zero width (every problem scored alike): no spread to compare against
    ratio = f"{diff / se:.1f} standard errors" if se else "intervals of zero width"
    lines = [
        f"held-out accuracy  SFT {a['mean']:.1%} [{a['lo']:.1%}, {a['hi']:.1%}]   "
        f"RL {b['mean']:.1%} [{b['lo']:.1%}, {b['hi']:.1%}]",
        f"RL - SFT = {diff:+.1%} ({ratio})",
        *(spread_lines(spread) if spread else []),
    ]
    for res in scale:
        lines.extend(scaling_lines(res))
    return lines


def scaling_lines(res: dict[str, Any]) -> list[str]:
    """One model's scaling gain, and at the largest budget its parallel alternatives."""
    pts = res["sequential"]
    lo, hi = pts[0], pts[-1]
    lines = [
        f"{res['model']}: accuracy at budget {lo['budget']} = {lo['accuracy']:.1%}, "
        f"at {hi['budget']} = {hi['accuracy']:.1%}"
    ]
    par = [p for p in res.get("parallel", []) if p["budget"] == hi["budget"]]
    if par:
        votes = ", ".join(
            f"majority of {p['k']} x {p['per_sample_budget']} = {p['accuracy']:.1%}" for p in par
        )
        lines.append(f"  same {hi['budget']} tokens in parallel: {votes}")
    return lines


STAGE_DIRS = ("data", "sft", "rl", "eval", "plots", "samples")
# the settings that make stages 1-3 (problems, traces, SFT model): equal runs share them
SFT_KEYS = ("data", "model", "synth", "sft", "sft_optim", "seed")


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def reuse_sft(cfg: DemoStage, source: Path, run: RunDir) -> tuple[dict[str, list], Any, Any]:
    """Problems, traces and SFT model of the earlier demo in `source`, copied into `run`.

    Refused unless `source` finished its SFT stage with the same `SFT_KEYS` settings: a run
    that reuses another's SFT model must be the run it would have been from scratch.
    """
    import shutil

    from t1.config import to_dict
    from t1.data.problems import load_problems
    from t1.data.splits import assert_disjoint
    from t1.errors import ConfigError
    from t1.models import load_model

    config, final = source / "config.yaml", source / "sft" / "final"
    if not (config.is_file() and final.is_dir()):
        raise ConfigError(
            f"--sft-from {source}: no finished demo SFT stage there ({final} is missing)"
        )
    theirs, ours = _flat(to_dict(load_config(DemoStage, config))), _flat(to_dict(cfg))
    differ = [
        f"{k} {theirs.get(k)!r} != {v!r}"
        for k, v in ours.items()
        if k.split(".")[0] in SFT_KEYS and theirs.get(k) != v
    ]
    if differ:
        raise ConfigError(
            f"--sft-from {source}: its SFT stage had other settings: {'; '.join(differ)}"
        )
    for name in ("data", "sft"):
        shutil.copytree(source / name, run.path / name, dirs_exist_ok=True)
    sets = {k: list(load_problems(run.path / "data" / f"{k}.jsonl")) for k in ("sft", "rl", "test")}
    assert_disjoint(sets)
    model, tokenizer = load_model(ModelConfig(path=str(run.path / "sft" / "final")))
    return sets, model.eval(), tokenizer


def fresh_start(out: Path) -> None:
    """A demo always runs from scratch: clear what an earlier demo wrote into `out`."""
    import shutil

    if (out / "config.yaml").exists():
        _say(f"clearing the earlier demo in {out}")
        for name in STAGE_DIRS:
            shutil.rmtree(out / name, ignore_errors=True)


def run_demo(
    out: str = "runs/demo",
    quick: bool = False,
    seed: int = 0,
    overrides: list[str] = (),
    config: str | None = None,
    sft_from: str | None = None,
) -> int:

    started = _T0[0] = time.perf_counter()
    cfg = demo_config(quick, seed, list(overrides), config)
    fresh_start(Path(out))
    run = RunDir(out)
    run.write_config(cfg)
    seed_everything(cfg.seed)
    _say(f"run directory {run.path.resolve()}")
    if sft_from:
        _say(f"1-3/7 problems, traces and SFT model from {sft_from}")
        sets, sft_model, tokenizer = reuse_sft(cfg, Path(sft_from), run)
    else:
        _say("1/7 problems")
        sets = make_data(cfg, run)
        _say("2/7 trial-and-error traces")
        traces = make_traces(cfg, sets["sft"], run)
        _say("3/7 SFT")
        sft_model, tokenizer = train_sft_stage(cfg, traces, run)
    _say(f"    {len(sets['sft'])} SFT, {len(sets['rl'])} RL, {len(sets['test'])} test (disjoint)")
    _say("4/7 curate RL prompts")
    stage = rl_stage_config(cfg, run)
    rl_problems = curate(cfg, stage, sft_model, tokenizer, sets["rl"], run)
    _say("5/7 RL")
    from t1.train.rl import RLTrainer

    rl_model = copy.deepcopy(sft_model).train()
    RLTrainer(stage, rl_model, tokenizer, rl_problems).train()
    rl_model.eval()
    _say("6/7 evaluate on held-out problems")
    sft_eval = evaluate_model(cfg, "sft", sft_model, tokenizer, sets["test"], run)
    rl_eval = evaluate_model(cfg, "rl", rl_model, tokenizer, sets["test"], run)
    _say("7/7 inference scaling")
    scale = scale_models(
        cfg, {"SFT": (sft_model, tokenizer), "RL": (rl_model, tokenizer)}, sets["test"], run
    )
    from t1.eval.report import build_report

    build_report(run.path)
    minutes = (time.perf_counter() - started) / 60
    lines = headline(sft_eval, rl_eval, scale, DEMO_SPREAD)
    run.write_json("headline.json", {"lines": lines, "minutes": minutes})
    print()
    for line in lines:
        print(line)
    print(f"done in {minutes:.1f} min; report: {(run.path / 'report.html').resolve()}")
    return 0
