"""Everything `t1 rl` does before its first step: check the config, load and check the prompts,
curate them. Each check raises a one-line `ConfigError` / `DataError` before any work starts:
no model is trained and no checkpoint is written when the input is wrong.

    config alone         check_rl_config(cfg, world)           before data or model are loaded
    data                 load_rl_problems(cfg, main)           bad rows name file:line
    memory               t1.train.plan.plan_rl(cfg, info, ...) before any weight is loaded
    with the model       check_rl_config(cfg, world, context)  before curation or training
                         check_prompt_lengths(...)             longest prompt + budget <= context
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import torch.distributed as dist

from t1.config import RLStage
from t1.errors import ConfigError, T1Error
from t1.models.lora import check_lora_config
from t1.runs import RunDir
from t1.train.rl_state import derive_seed
from t1.train.sharding import check_train_config
from t1.train.tracking import check_trackers


def check_rl_config(cfg: RLStage, world: int = 1, max_positions: int | None = None) -> None:
    """Reject inconsistent settings before any work starts (each error names its keys)."""
    from t1.rollout import sampling_params
    from t1.rollout.hf import check_sampling

    rl, tr = cfg.rl, cfg.trainer
    check_train_config(cfg.train, world)
    check_lora_config(cfg.model.lora)
    if rl.k < 2 and rl.advantage == "rloo":
        raise ConfigError(f"rl.k={rl.k}: the leave-one-out baseline needs rl.k >= 2")
    if rl.train_k is not None and not 1 <= rl.train_k <= rl.k:
        raise ConfigError(f"rl.train_k={rl.train_k} must be between 1 and rl.k={rl.k}")
    if rl.updates_per_batch > 1 and rl.clip_eps is None:
        raise ConfigError(
            f"rl.updates_per_batch={rl.updates_per_batch} reuses a rollout batch off-policy: "
            "set rl.clip_eps (e.g. 0.2)"
        )
    if rl.prompts_per_step % world:
        raise ConfigError(
            f"rl.prompts_per_step={rl.prompts_per_step} is not divisible by the world size {world}"
        )
    _check_engine(cfg, world)
    if cfg.optim.grad_accum != 1:
        raise ConfigError(
            "optim.grad_accum: RL accumulates over rl.micro_batch_size micro-batches itself; "
            "leave optim.grad_accum at 1"
        )
    if rl.anchor == "ema" and not 0.0 <= rl.ema_alpha <= 1.0:
        raise ConfigError(f"rl.ema_alpha={rl.ema_alpha} must be in [0, 1]")
    if cfg.sampling.temperature <= 0:
        raise ConfigError("sampling.temperature must be > 0 for RL (the policy must explore)")
    if max_positions is not None and cfg.sampling.max_new_tokens >= max_positions:
        raise ConfigError(
            f"sampling.max_new_tokens={cfg.sampling.max_new_tokens} does not fit the model's "
            f"context of {max_positions} positions"
        )
    at_least = {
        "trainer.steps": (tr.steps, 1),
        "trainer.max_bad_steps": (tr.max_bad_steps, 1),
        "trainer.log_every": (tr.log_every, 1),
        "trainer.save_every": (tr.save_every, 0),
        "trainer.keep_last": (tr.keep_last, 0),
        "trainer.sample_every": (tr.sample_every, 0),
        "trainer.eval_every": (tr.eval_every, 0),
        "rl.prompts_per_step": (rl.prompts_per_step, 1),
        "rl.micro_batch_size": (rl.micro_batch_size, 1),
        "rl.updates_per_batch": (rl.updates_per_batch, 1),
        "rl.ema_every": (rl.ema_every, 1),
    }
    for key, (value, low) in at_least.items():
        if value < low:
            raise ConfigError(f"{key}={value} must be >= {low}")
    _check_rewards(cfg)
    check_trackers(tr.report_to)
    try:
        check_sampling(sampling_params(cfg.sampling, 0), rl.k)
    except T1Error as e:  # the sampler's own message names the parameter
        raise ConfigError(str(e)) from None


def _check_engine(cfg: RLStage, world: int) -> None:
    """The rollout engine's groups tile the world; the sampler-correction settings are sane."""
    from t1.rollout.groups import check_engine_groups, engine_group_size

    check_engine_groups(world, engine_group_size(cfg.rollout))
    cap = cfg.rl.tis_cap
    if cap is not None and not (math.isfinite(cap) and cap > 0):
        raise ConfigError(f"rl.tis_cap={cap} must be a positive number (e.g. 2.0) or null")


def _check_rewards(cfg: RLStage) -> None:
    """Rewards must be finite numbers: a NaN here would silently poison every batch."""
    r = cfg.reward
    values = {
        "reward.correct_reward": r.correct_reward,
        "reward.wrong_reward": r.wrong_reward,
        "reward.failure_reward": r.failure_reward,
        "reward.truncation_penalty": r.truncation_penalty,
        "reward.repetition_penalty": r.repetition_penalty,
        "reward.garbage_penalty": r.garbage_penalty,
    }
    for key, value in values.items():
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"{key}={value} must be a finite number")


def prompt_lengths(cfg: RLStage, tokenizer: Any, problems: list) -> list[int]:
    """Each problem's prompt in tokens, formatted and encoded as the engines do."""
    from t1.models.prompts import format_prompts
    from t1.rollout.hf import encode_prompts

    texts = format_prompts(tokenizer, problems, cfg.data)
    return [len(ids) for ids in encode_prompts(tokenizer, texts)]


def check_prompt_lengths(
    cfg: RLStage, tokenizer: Any, problems: list, max_positions: int | None
) -> None:
    """The longest prompt plus `sampling.max_new_tokens` must fit the model's context."""
    if max_positions is None or not problems:
        return
    lengths = prompt_lengths(cfg, tokenizer, problems)
    longest = max(range(len(problems)), key=lengths.__getitem__)
    budget = cfg.sampling.max_new_tokens
    if lengths[longest] + budget > max_positions:
        raise ConfigError(
            f"problem {problems[longest].id!r} has a {lengths[longest]}-token prompt: with "
            f"sampling.max_new_tokens={budget} it does not fit the model's context of "
            f"{max_positions} positions (lower the budget or drop long prompts)"
        )


def context_size(model: Any) -> int | None:
    """The model's context length in positions, when its config says."""
    return getattr(model.config, "max_position_embeddings", None)


def load_rl_problems(cfg: RLStage, main: bool = True) -> tuple[list, list]:
    """(train, eval) problems; with data.skip_bad_rows the skipped rows are reported.

    The report goes to stderr and, on the main rank, to `data.json` in the run directory.
    """
    from t1.data.problems import problems_for

    if cfg.data.train is None:
        raise ConfigError(
            "data.train: RL needs prompts with reference answers (a file, folder or Hub dataset)"
        )
    train = problems_for(cfg.data, "train")
    held = problems_for(cfg.data, "eval") if cfg.data.eval else []
    report = {}
    for name, loaded in (("train", train), ("eval", held)):
        if not loaded:
            continue
        report[name] = {
            "path": str(loaded.path),
            "rows": len(loaded),
            "skipped": loaded.skipped,
            "errors": loaded.errors[:20],
        }
        if loaded.skipped and main:
            print(
                f"t1 rl: data.{name}: skipped {loaded.skipped} bad rows of {loaded.path} "
                f"(first: {loaded.errors[0]})",
                file=sys.stderr,
            )
    if main:
        RunDir(cfg.trainer.out).write_json("data.json", report)
    return train, held


def maybe_curate(
    cfg: RLStage, model: Any, tokenizer: Any, problems: list, info: Any, engine: Any = None
) -> list:
    """Apply `rl.curate` once per run; the kept prompts are saved so a resume reuses them.

    `engine`: the run's rollout engine (one vLLM engine per process, not a second one).
    Every rank curates (a sharded model's generation needs them all); with several ranks,
    all then train on rank 0's list, read back from the run directory (a shared file system),
    so ranks whose sampling differed (GPU kernels) cannot disagree.
    """
    if not cfg.rl.curate.enabled:
        return problems
    from t1.data.problems import load_problems, write_problems
    from t1.rollout import make_engine, sampling_params
    from t1.train.curate import curate_prompts

    path = Path(cfg.trainer.out) / "curated.jsonl"
    if path.exists():
        return load_problems(path)
    engine = engine or make_engine(cfg.rollout, model, tokenizer)
    sampling = sampling_params(
        cfg.sampling, derive_seed(cfg.trainer.seed, "curate"), temperature=cfg.rl.curate.temperature
    )
    kept, report = curate_prompts(
        engine, tokenizer, problems, cfg.rl.curate, sampling, cfg.reward, cfg.data
    )
    if info.main:
        print(f"t1 rl: {report.summary()}")
        RunDir(cfg.trainer.out).write_json("curation.json", report.__dict__)
        write_problems(path, kept)
    if info.world > 1:
        dist.barrier()
        kept = load_problems(path)
    return kept
