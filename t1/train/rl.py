"""`t1 rl`: the on-policy T1 loop (arXiv 2501.11651, §3; DESIGN.md "RL with exploration").

    prompts -> K samples each at temperature T (default 1.2) -> rewards with penalties
    -> anchor log-probs -> T1 advantages (RLOO reward baseline − β·RLOO-normalised KL)
    -> optional selection of train_k of the K / dropping all-equal groups
    -> policy loss − γ·entropy -> AdamW step -> EMA anchor update -> weights to the engine

How this departs from the paper, which published no code:
- the anchor's KL enters the advantage per response, `KL_i = Σ_t (log π_θ − log π_ref)` over
  the sampled tokens (estimator `rl.kl_estimator`), normalised leave-one-out like the reward;
- one optimiser step per rollout batch by default (on-policy); `rl.updates_per_batch > 1`
  reuses a batch with the PPO clipped ratio (`rl.clip_eps`), which the paper does not use;
- the learner recomputes log-probs with softmax(logits / T), the distribution the sampler drew
  from, so old, new and anchor log-probs are all of one tempered distribution.
"""

from __future__ import annotations

import copy
import hashlib
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from t1.config import RLStage
from t1.errors import ConfigError, T1Error
from t1.train.checkpoint import latest_checkpoint, load_state, rng_state, save_checkpoint
from t1.train.distributed import DistInfo, all_sum, sum_gradients_
from t1.train.rl_update import (
    LossSpec,
    accumulate_gradients,
    choose_rows,
    compute_advantages,
    slice_batch,
)
from t1.train.rundir import MetricLogger, Progress, RunDir, seed_everything

PENALTY_NAMES = ("truncated", "repetitive", "garbage", "failure")
# metrics that measure time, not learning: they differ between a run and its resumed twin
TIMING_KEYS = ("time/", "tokens_per_s")


def derive_seed(*parts: Any) -> int:
    """A stable 63-bit seed from any parts (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class PromptOrder:
    """Epoch-wise shuffled prompt indices; its state (epoch, position) goes into checkpoints."""

    def __init__(self, n: int, seed: int):
        if n == 0:
            raise ConfigError("no RL prompts to train on (data.train is empty after curation)")
        self.n, self.seed, self.epoch, self.pos = n, seed, 0, 0

    def _perm(self) -> list[int]:
        g = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", self.epoch))
        return torch.randperm(self.n, generator=g).tolist()

    def take(self, m: int) -> list[int]:
        out: list[int] = []
        while len(out) < m:
            perm = self._perm()
            grab = perm[self.pos : self.pos + m - len(out)]
            out += grab
            self.pos += len(grab)
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]


def log_names(rates: dict[str, float]) -> dict[str, float]:
    """The reward module's rates under the training log's names (reward/*, penalty/*)."""
    out = {}
    for key, value in rates.items():
        if key.endswith("_rate") and key[: -len("_rate")] in PENALTY_NAMES:
            out[f"penalty/{key[: -len('_rate')]}"] = value
        else:
            out[f"reward/{key.removesuffix('_rate')}"] = value
    return out


class Timer:
    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, phase: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.spent[phase] += time.perf_counter() - t0


def check_rl_config(cfg: RLStage, world: int = 1, max_positions: int | None = None) -> None:
    """Reject inconsistent settings before any work starts (each error names its keys)."""
    rl = cfg.rl
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
    if cfg.trainer.steps < 1:
        raise ConfigError(f"trainer.steps={cfg.trainer.steps} must be >= 1")


class RLTrainer:
    """Owns the policy, the anchor, the engine and the optimiser; `train()` runs the loop."""

    def __init__(
        self,
        cfg: RLStage,
        model: Any,
        tokenizer: Any,
        problems: list,
        info: DistInfo | None = None,
        engine: Any = None,
        eval_problems: list | None = None,
    ):
        from t1.models.prompts import build_prompt
        from t1.rollout import make_engine
        from t1.train.schedule import make_optimizer, make_scheduler

        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        self.info = info or DistInfo(device=next(model.parameters()).device)
        self.problems, self.eval_problems = problems, eval_problems or []
        max_pos = getattr(model.config, "max_position_embeddings", None)
        check_rl_config(cfg, self.info.world, max_pos)
        self.prompts = [build_prompt(tokenizer, p.prompt_input, cfg.data) for p in problems]
        self.engine = engine or make_engine(cfg.rollout, model, tokenizer)
        self.anchor = None
        if cfg.rl.anchor != "none":
            self.anchor = copy.deepcopy(model).eval().requires_grad_(False)
        self.optimizer = make_optimizer(model, cfg.optim)
        self.total_updates = cfg.trainer.steps * cfg.rl.updates_per_batch
        self.scheduler = make_scheduler(self.optimizer, cfg.optim, self.total_updates)
        self.order = PromptOrder(len(problems), cfg.trainer.seed)
        self.step, self.updates, self.bad_in_row, self.bad_total = 0, 0, 0, 0
        self.run = RunDir(cfg.trainer.out) if self.info.main else None

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "updates": self.updates,
            "bad_in_row": self.bad_in_row,
            "bad_total": self.bad_total,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "anchor": self.anchor.state_dict() if self.anchor is not None else None,
            "order": self.order.state_dict(),
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from t1.train.checkpoint import set_rng_state

        self.step, self.updates = state["step"], state["updates"]
        self.bad_in_row, self.bad_total = state["bad_in_row"], state["bad_total"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.anchor is not None and state["anchor"] is not None:
            self.anchor.load_state_dict(state["anchor"])
        self.order.load_state_dict(state["order"])
        set_rng_state(state["rng"])

    def save(self) -> Path | None:
        if not self.info.main:
            return None
        return save_checkpoint(
            self.run.path / "checkpoints",
            self.step,
            self.model,
            self.tokenizer,
            self.state_dict(),
            keep_last=self.cfg.trainer.keep_last,
        )

    # ------------------------------------------------------------------ one step
    def rollout(self, timer: Timer) -> tuple[list, list, list]:
        """This rank's prompts, their K rollouts each, and the graded results."""
        from t1.rewards.reward import score_batch
        from t1.rollout import sampling_params

        cfg, info = self.cfg, self.info
        chosen = self.order.take(cfg.rl.prompts_per_step)[info.rank :: info.world]
        problems = [self.problems[i] for i in chosen]
        seed = derive_seed(cfg.trainer.seed, "rollout", self.step, info.rank)
        with timer("generate"):
            rollouts = self.engine.generate(
                [self.prompts[i] for i in chosen], cfg.rl.k, sampling_params(cfg.sampling, seed)
            )
        with timer("score"):
            results = score_batch(
                [r.text for r in rollouts],
                [problems[r.prompt_index].answer for r in rollouts],
                [r.finish_reason for r in rollouts],
                [r.response_ids for r in rollouts],
                cfg.reward.task,
                cfg.reward,
            )
        return problems, rollouts, results

    def train_step(self) -> dict[str, Any]:
        from t1.rewards.reward import reward_metrics
        from t1.rollout import collate_rollouts, compute_logprobs

        cfg, rl, timer = self.cfg, self.cfg.rl, Timer()
        self.step += 1
        problems, rollouts, results = self.rollout(timer)
        B, K = len(problems), rl.k
        rewards = torch.tensor([r.score for r in results], dtype=torch.float32).view(B, K)
        batch = collate_rollouts(rollouts, self.tokenizer.pad_token_id)
        mask = batch.response_mask
        T = cfg.sampling.temperature
        with timer("logprobs"), torch.no_grad():
            old_logp = compute_logprobs(self.model, batch, T, rl.micro_batch_size)
            seq_kl = None
            if self.anchor is not None:
                ref_logp = compute_logprobs(self.anchor, batch, T, rl.micro_batch_size)
                from t1.algo import sequence_kl

                seq_kl = sequence_kl(old_logp, ref_logp, mask, rl.kl_estimator).view(B, K)
        adv = compute_advantages(rewards, seq_kl, rl.beta, rl.advantage)  # (B, K)
        gen = torch.Generator().manual_seed(derive_seed(cfg.trainer.seed, "select", self.step))
        rows = choose_rows(rewards, rl.train_k, rl.select, rl.drop_equal_groups, gen)
        train = slice_batch(batch, rows)
        spec = LossSpec(
            rl.loss_agg,
            rl.clip_eps,
            rl.entropy_coef,
            T,
            rl.micro_batch_size,
            cfg.sampling.max_new_tokens,
        )
        stats: dict[str, float] = {}
        with timer("update"):
            for _ in range(rl.updates_per_batch):
                stats = self.update(train, old_logp[rows], adv.reshape(-1)[rows], spec)
        lengths = mask.sum(1)
        gen_tokens = float(all_sum(lengths.sum(), self.info))
        metrics = {
            **log_names(reward_metrics(results)),
            "reward/mean": float(rewards.mean()),
            "reward/std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
            "response/len_mean": float(lengths.float().mean()),
            "response/len_max": int(lengths.max()),
            "response/truncated": sum(r.finish_reason == "length" for r in rollouts)
            / len(rollouts),
            "kl": float(seq_kl.mean()) if seq_kl is not None else 0.0,
            "adv/mean": float(adv.mean()),
            "adv/std": float(adv.std()) if adv.numel() > 1 else 0.0,
            "adv/abs_mean": float(adv.abs().mean()),
            "samples/trained": int(len(rows)),
            **stats,
            "lr": self.scheduler.get_last_lr()[0],
            "bad_steps": self.bad_total,
            "tokens_per_s": gen_tokens / max(timer.spent["generate"], 1e-9),
            **{f"time/{k}": v for k, v in timer.spent.items()},
        }
        self._maybe_write_samples(problems, rollouts, results, adv)
        return self._across_ranks(metrics)

    def _across_ranks(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Per-rank means of the rollout statistics become global means (equal shares)."""
        if self.info.world == 1:
            return metrics
        keys = [k for k in metrics if k.startswith(("reward/", "penalty/", "adv/"))]
        keys += ["response/len_mean", "response/truncated", "kl"]
        values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
        means = all_sum(values, self.info) / self.info.world
        out = {**metrics, **dict(zip(keys, means.tolist()))}
        longest = all_sum(
            torch.zeros(self.info.world).index_fill_(
                0, torch.tensor([self.info.rank]), float(metrics["response/len_max"])
            ),
            self.info,
        )
        out["response/len_max"] = int(longest.max())
        return out

    def update(self, train, old_logp, adv, spec: LossSpec) -> dict[str, float]:
        """One optimiser step on the selected rows; NaN/inf steps are skipped and counted."""
        from t1.algo import ema_update_

        self.optimizer.zero_grad(set_to_none=True)
        stats = accumulate_gradients(self.model, train, old_logp, adv, spec, self.info)
        sum_gradients_(self.model, self.info)
        clip = self.cfg.optim.grad_clip
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = (
            torch.nn.utils.clip_grad_norm_(params, clip if clip else float("inf"))
            if params
            else torch.tensor(0.0)
        )
        finite = bool(torch.isfinite(norm)) and all(
            torch.isfinite(torch.tensor(v)) for v in stats.values()
        )
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            self.bad_in_row += 1
            self.bad_total += 1
            print(
                f"t1 rl: step {self.step}: non-finite loss or gradient, update skipped "
                f"({self.bad_in_row} in a row)",
                file=sys.stderr,
            )
            if self.bad_in_row >= self.cfg.trainer.max_bad_steps:
                last = latest_checkpoint(Path(self.cfg.trainer.out) / "checkpoints")
                raise T1Error(
                    f"{self.bad_in_row} consecutive steps with a non-finite loss or gradient; "
                    f"stopping (last good checkpoint: {last or 'none'})"
                )
            return {**stats, "grad_norm": float("nan")}
        self.bad_in_row = 0
        self.optimizer.step()
        self.scheduler.step()
        self.updates += 1
        rl = self.cfg.rl
        if self.anchor is not None and rl.anchor == "ema" and self.updates % rl.ema_every == 0:
            ema_update_(self.anchor.parameters(), self.model.parameters(), rl.ema_alpha)
        self.engine.update_weights(self.model)
        return {**stats, "grad_norm": float(norm)}

    def _maybe_write_samples(self, problems, rollouts, results, adv) -> None:
        every = self.cfg.trainer.sample_every
        if not self.info.main or not every or self.step % every:
            return
        flat_adv = adv.reshape(-1).tolist()
        rows = [
            {
                "prompt": problems[r.prompt_index].prompt,
                "response": r.text,
                "reference": problems[r.prompt_index].answer,
                "answer": res.answer,
                "reward": res.score,
                "correct": res.correct,
                "penalty": res.penalty,
                "adv": flat_adv[i],
                "finish_reason": r.finish_reason,
            }
            for i, (r, res) in enumerate(zip(rollouts, results))
        ]
        self.run.write_samples(self.step, rows)

    # ------------------------------------------------------------------ the loop
    def resume(self) -> int:
        """Load the latest complete checkpoint of the run, if any; returns its step (0: none)."""
        ckpt = latest_checkpoint(Path(self.cfg.trainer.out) / "checkpoints")
        if ckpt is None:
            return 0
        from safetensors.torch import load_file

        weights = {}
        for f in sorted(ckpt.glob("*.safetensors")):
            weights.update(load_file(str(f)))
        missing, unexpected = self.model.load_state_dict(weights, strict=False)
        if unexpected or [m for m in missing if "lm_head" not in m]:
            raise T1Error(
                f"{ckpt}: weights do not match the model ({missing[:3]} {unexpected[:3]})"
            )
        self.load_state_dict(load_state(ckpt))
        self.engine.update_weights(self.model)
        return self.step

    def evaluate(self) -> dict[str, float]:
        if not self.eval_problems or not self.info.main:
            return {}
        from t1.eval.evaluate import evaluate, flat_metrics

        result = evaluate(
            self.engine,
            self.tokenizer,
            self.eval_problems,
            self.cfg.reward.task,
            _eval_sampling(self.cfg),
            self.cfg.eval.n,
            self.cfg.eval.ks,
            self.cfg.reward,
            self.cfg.data,
            progress=False,
        )
        self.run.write_json(f"eval/step-{self.step}.json", result)
        return flat_metrics(result)

    def train(self, resume: bool = False) -> dict[str, Any]:
        from t1.train.signals import StopRequest, resume_command

        cfg, tr = self.cfg, self.cfg.trainer
        start = self.resume() if resume else 0
        if self.info.main:
            self.run.write_config(cfg)
        logger = (
            MetricLogger(self.run.path, tr.tensorboard, resume_step=start if resume else None)
            if self.info.main
            else None
        )
        last: dict[str, Any] = {}
        try:
            with (
                StopRequest() as stop,
                Progress(tr.steps, "rl", tr.progress and self.info.main, completed=start) as bar,
            ):
                while self.step < tr.steps:
                    last = self.train_step()
                    if tr.eval_every and self.step % tr.eval_every == 0:
                        last.update(self.evaluate())
                    if logger and self.step % tr.log_every == 0:
                        logger.log(self.step, last)
                    bar.update(
                        1,
                        reward=last["reward/mean"],
                        acc=last.get("reward/accuracy", 0.0),
                        len=last["response/len_mean"],
                    )
                    if tr.save_every and self.step % tr.save_every == 0:
                        self.save()
                    if stop.requested and self.step < tr.steps:
                        self.save()
                        if self.info.main:
                            print(
                                f"t1 rl: stopped at step {self.step}; resume with:\n  "
                                f"{resume_command('rl', Path(tr.out).resolve())}"
                            )
                        return last
            if not tr.save_every or self.step % tr.save_every:
                self.save()
            if not tr.eval_every or self.step % tr.eval_every:
                last.update(self.evaluate())
            if self.info.main:
                from t1.models import save_model

                save_model(self.model, self.tokenizer, self.run.path / "final")
        finally:
            if logger:
                logger.close()
        return last


def _eval_sampling(cfg: RLStage):
    from t1.rollout import sampling_params

    seed = derive_seed(cfg.trainer.seed, "eval")
    return sampling_params(cfg.sampling, seed, temperature=cfg.rl.eval_temperature)


def run_rl(cfg: RLStage, resume: bool = False) -> int:
    """`t1 rl CONFIG`: load the model and prompts, curate, train; 0 on success."""
    from t1.data.problems import load_problems
    from t1.models import load_model
    from t1.train.distributed import broadcast_parameters_, close_distributed, init_distributed

    info = init_distributed(cfg.model.device)
    try:
        if cfg.data.train is None:
            raise ConfigError("data.train: RL needs a JSONL file of prompts with reference answers")
        check_rl_config(cfg, info.world)
        problems = load_problems(
            cfg.data.train, skip_bad_rows=cfg.data.skip_bad_rows, limit=cfg.data.max_train
        )
        eval_problems = (
            load_problems(
                cfg.data.eval, skip_bad_rows=cfg.data.skip_bad_rows, limit=cfg.data.max_eval
            )
            if cfg.data.eval
            else []
        )
        seed_everything(cfg.trainer.seed)
        model, tokenizer = load_model(cfg.model)
        broadcast_parameters_(model, info)
        problems = maybe_curate(cfg, model, tokenizer, problems, info)
        trainer = RLTrainer(cfg, model, tokenizer, problems, info, eval_problems=eval_problems)
        last = trainer.train(resume)
        if info.main:
            shown = {k: v for k, v in last.items() if k.startswith(("reward/", "eval/"))}
            print(
                f"t1 rl: {trainer.step} steps done in {trainer.run.path}: "
                + ", ".join(f"{k}={v:.3f}" for k, v in shown.items() if isinstance(v, float))
            )
        return 0
    finally:
        close_distributed()


def maybe_curate(cfg: RLStage, model, tokenizer, problems: list, info: DistInfo) -> list:
    """Apply `rl.curate` once per run; the kept prompts are saved so a resume reuses them."""
    if not cfg.rl.curate.enabled:
        return problems
    from t1.data.problems import load_problems, write_problems
    from t1.rollout import make_engine, sampling_params
    from t1.train.curate import curate_prompts

    path = Path(cfg.trainer.out) / "curated.jsonl"
    if path.exists():
        return load_problems(path)
    engine = make_engine(cfg.rollout, model, tokenizer)
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
    return kept
