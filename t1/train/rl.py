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

import errno
import math
import sys
from pathlib import Path
from typing import Any

import torch

from t1.config import RLStage
from t1.errors import T1Error
from t1.models.lora import add_adapters
from t1.models.sharded import is_sharded
from t1.progress import Progress
from t1.runs import RunDir, latest_checkpoint
from t1.train.anchor import make_rl_anchor, reference, update_anchor_
from t1.train.distributed import DistInfo, all_sum, sum_gradients_
from t1.train.export import save_final
from t1.train.footprint import describe, learner_footprint
from t1.train.rl_eval import held_out_eval, prepare_engine
from t1.train.rl_logp import behaviour_logprobs
from t1.train.rl_metrics import (
    Timer,
    across_ranks,
    flat_metrics,
    rollout_metrics,
    sample_rows,
)
from t1.train.rl_setup import check_rl_config
from t1.train.rl_state import (
    PromptOrder,
    derive_seed,
    restore_rl_checkpoint,
    save_rl_checkpoint,
)
from t1.train.rl_update import (
    LossSpec,
    accumulate_gradients,
    choose_rows,
    compute_advantages,
    logprobs,
    slice_batch,
    with_response_column,
)
from t1.train.rundir import MetricLogger
from t1.train.sharding import autocast, clip_grad_norm, prepare_learner


class RLTrainer:
    """Owns the policy, the anchor, the engine and the optimiser; `train()` runs the loop.

    Reliability (issue 12): exact resume (t1.train.rl_state); SIGINT/SIGTERM stop after the step
    with a checkpoint; NaN/inf steps are skipped, counted and, `trainer.max_bad_steps` in a row,
    fatal; a non-finite reward is a verifier failure; a failed save leaves the last one intact.

    Scale (t1.train.sharding): the model given becomes the float32-master learner, sharded with
    FSDP2 under torchrun like the anchor; every rank then calls `train`, `save`, `resume` and
    `evaluate` together (they run collectives), each on its share of the prompts.
    """

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
        from t1.models.prompts import format_prompts
        from t1.rollout import make_engine
        from t1.train.schedule import make_optimizer, make_scheduler

        self.cfg, self.tokenizer = cfg, tokenizer
        self.info = info or DistInfo(device=next(model.parameters()).device)
        self.problems, self.eval_problems = problems, eval_problems or []
        max_pos = getattr(model.config, "max_position_embeddings", None)
        check_rl_config(cfg, self.info.world, max_pos)
        # LoRA adapters (model.lora), float32 masters, the compute dtype, FSDP2
        # (t1.models.lora, t1.train.sharding); each a no-op when done
        model = add_adapters(model, cfg.model.lora, cfg.model, cfg.trainer.seed)
        self.model = prepare_learner(model, cfg.train, cfg.model.dtype, self.info)
        self.sharded = is_sharded(self.model)
        self.prompts = format_prompts(tokenizer, problems, cfg.data)
        self.engine = engine or make_engine(cfg.rollout, self.model, tokenizer)
        # None, a copy of the policy, or a LoRA policy's EMA adapters (t1.train.anchor)
        self.anchor = make_rl_anchor(self.model, cfg, self.info)
        self.optimizer = make_optimizer(self.model, cfg.optim)
        self.total_updates = cfg.trainer.steps * cfg.rl.updates_per_batch
        self.scheduler = make_scheduler(self.optimizer, cfg.optim, self.total_updates)
        self.order = PromptOrder(len(problems), cfg.trainer.seed)
        self.step, self.updates, self.bad_in_row, self.bad_total = 0, 0, 0, 0
        self.run = RunDir(cfg.trainer.out) if self.info.main else None
        self.footprint = learner_footprint(self.model, self.anchor)
        if self.run is not None:
            self.run.write_json("learner.json", self.footprint)
            print(f"t1 rl: {describe(self.footprint)}", flush=True)
        # the step of the newest checkpoint on disk (0: none); `stopped`: the signal's name
        self.saved_step = 0
        self.stopped: str | None = None

    @property
    def ckpt_root(self) -> Path:
        return Path(self.cfg.trainer.out) / "checkpoints"

    def save(self) -> Path | None:
        """Checkpoint this step on every rank (once: a step already on disk is not rewritten)."""
        if self.saved_step == self.step:
            return None
        path = save_rl_checkpoint(self, self.ckpt_root)
        self.saved_step = self.step
        return path

    def resume(self) -> int:
        """Load the latest complete checkpoint of the run, if any; returns its step (0: none)."""
        ckpt = latest_checkpoint(self.ckpt_root)
        if ckpt is None:
            return 0
        restore_rl_checkpoint(self, ckpt)
        self.engine.update_weights(self.model)
        self.saved_step = self.step
        return self.step

    # ------------------------------------------------------------------ one step
    def rollout(self, timer: Timer) -> tuple[list, list, list]:
        """This rank's prompts, their K rollouts each, and the graded results.

        The ranks of one engine (a vLLM tensor-parallel group) generate the same prompts with
        one seed and each keeps its share (t1.rollout.groups); with one rank per engine that is
        the plain data-parallel split.
        """
        from t1.rewards.reward import failure_result, score_batch
        from t1.rollout import sampling_params
        from t1.rollout.groups import engine_group_size, keep_rollouts, rollout_share

        cfg, info = self.cfg, self.info
        share = rollout_share(
            self.order.take(cfg.rl.prompts_per_step),
            info.rank,
            info.world,
            engine_group_size(cfg.rollout),
        )
        problems = [self.problems[i] for i in share.prompts]
        seed = derive_seed(cfg.trainer.seed, "rollout", self.step, share.group)
        self.release_learner_memory()
        with timer("generate"), autocast(self.model):
            rollouts = self.engine.generate(
                [self.prompts[i] for i in share.group_prompts],
                cfg.rl.k,
                sampling_params(cfg.sampling, seed),
            )
            rollouts = keep_rollouts(rollouts, share.kept)
            # an engine that shares the GPU hands its memory to the learner until the next update
            if hasattr(self.engine, "sleep"):
                self.engine.sleep()
        with timer("score"):
            results = score_batch(
                [r.text for r in rollouts],
                [problems[r.prompt_index].answer for r in rollouts],
                [r.finish_reason for r in rollouts],
                [r.response_ids for r in rollouts],
                cfg.reward.task,
                cfg.reward,
            )
        # a NaN/inf reward would poison the whole batch's advantages: it is a verifier failure
        results = [
            r if math.isfinite(r.score) else failure_result(cfg.reward, f"reward {r.score}")
            for r in results
        ]
        return problems, rollouts, results

    def train_step(self) -> dict[str, Any]:
        from t1.rollout import collate_rollouts

        cfg, rl, timer = self.cfg, self.cfg.rl, Timer()
        self.step += 1
        problems, rollouts, results = self.rollout(timer)
        B, K = len(problems), rl.k
        rewards = torch.tensor([r.score for r in results], dtype=torch.float32).view(B, K)
        batch = collate_rollouts(rollouts, self.tokenizer.pad_token_id)
        if self.sharded:  # every rank runs a log-prob forward, even with no response token
            batch = with_response_column(batch)
        mask = batch.response_mask
        T, mbs, sharded = cfg.sampling.temperature, rl.micro_batch_size, self.sharded
        with timer("logprobs"), torch.no_grad(), autocast(self.model):
            behaviour = behaviour_logprobs(self.model, rollouts, batch, cfg, self.info, sharded)
            old_logp = behaviour.old_logp
            seq_kl = None
            if self.anchor is not None:
                with reference(self.anchor, self.model) as ref_model:
                    ref_logp = logprobs(ref_model, batch, T, mbs, sharded=sharded)
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
            rl.skip_zero_advantage,
            sharded,
        )
        stats: dict[str, float] = {}
        with timer("update"):
            for _ in range(rl.updates_per_batch):
                weight = behaviour.weight[rows] if behaviour.weight is not None else None
                stats = self.update(train, old_logp[rows], adv.reshape(-1)[rows], spec, weight)
        lengths = mask.sum(1)
        gen_tokens = float(all_sum(lengths.sum(), self.info))
        metrics = {
            **rollout_metrics(results, rollouts, rewards, lengths, seq_kl, adv),
            "samples/trained": int(len(rows)),
            **stats,
            **behaviour.metrics,
            "lr": self.scheduler.get_last_lr()[0],
            "bad_steps": self.bad_total,
            "tokens_per_s": gen_tokens / max(timer.spent["generate"], 1e-9),
            **{f"time/{k}": v for k, v in timer.spent.items()},
        }
        every = cfg.trainer.sample_every
        if self.info.main and every and self.step % every == 0:
            self.run.write_samples(self.step, sample_rows(problems, rollouts, results, adv))
        return across_ranks(metrics, self.info)

    def update(self, train, old_logp, adv, spec: LossSpec, weight=None) -> dict[str, float]:
        """One optimiser step on the selected rows; NaN/inf steps are skipped and counted.

        `weight`: per-token truncated importance-sampling weights of the rows (rl.tis_cap).
        """
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.model):
            stats = accumulate_gradients(self.model, train, old_logp, adv, spec, self.info, weight)
        if not self.sharded:  # FSDP2 summed the gradients in its reduce-scatter
            sum_gradients_(self.model, self.info)
        norm = clip_grad_norm(list(self.model.parameters()), self.cfg.optim.grad_clip)
        finite = math.isfinite(norm) and all(math.isfinite(v) for v in stats.values())
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
                last = latest_checkpoint(self.ckpt_root)
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
            # float32 masters, shard by shard (the anchor's slices match the policy's)
            update_anchor_(self.anchor, self.model, rl.ema_alpha)
        self.engine.update_weights(self.model)
        return {**stats, "grad_norm": norm}

    # ------------------------------------------------------------------ the loop
    def evaluate(self) -> dict[str, float]:
        """Every rank evaluates its share of the held-out problems (t1.train.rl_eval); rank 0
        merges, writes eval/step-N.json and returns the eval/* scalars (the others: {})."""
        if not self.eval_problems:
            return {}
        from t1.eval.evaluate import write_eval

        self.release_learner_memory()
        with prepare_engine(self.engine, self.model), autocast(self.model):
            result = held_out_eval(
                self.cfg, self.engine, self.tokenizer, self.eval_problems, self.info
            )
        if result is None:
            return {}
        write_eval(self.run, f"step-{self.step}", result, {"step": self.step})
        return flat_metrics(result)

    def release_learner_memory(self) -> None:
        """Free the last update's gradients before the engine samples, and on a GPU hand the
        blocks the learner freed back to the driver: vLLM wakes its weights and KV cache in
        memory it maps itself (vllm/device_allocator/cumem.py), outside torch's cache."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.info.device.type == "cuda":
            torch.cuda.empty_cache()

    def train(self, resume: bool = False) -> dict[str, Any]:
        """Run (or, with `resume`, continue) the loop to trainer.steps; returns the last metrics."""
        from t1.train.signals import StopRequest

        tr = self.cfg.trainer
        start = self.resume() if resume else 0
        if self.info.main:
            self.run.write_config(self.cfg)
        logger = (
            MetricLogger(self.run.path, tr.report_to, start if resume else None, config=self.cfg)
            if self.info.main
            else None
        )
        last: dict[str, Any] = {}
        show = tr.progress and self.info.main
        try:
            with (
                StopRequest() as stop,
                Progress(tr.steps, "rl", show, completed=start) as bar,
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
                        self._periodic_save()
                    if self._stop_requested(stop.reason) and self.step < tr.steps:
                        self._stop(stop.reason or "a signal on another rank")
                        return last
            self.save()
            if not tr.eval_every or self.step % tr.eval_every:
                last.update(self.evaluate())
            final = Path(self.cfg.trainer.out) / "final"
            save_final(self.model, self.tokenizer, final, self.cfg.model.dtype, self.info)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            kept = latest_checkpoint(self.ckpt_root) or "no checkpoint"
            raise T1Error(f"disk full at step {self.step} ({e}); {kept} is intact") from e
        finally:
            if logger:
                logger.close()
        return last

    def _periodic_save(self) -> None:
        if self.bad_in_row:
            # keep the last good checkpoint the newest one while updates are being skipped
            print(
                f"t1 rl: step {self.step}: no checkpoint while updates are skipped",
                file=sys.stderr,
            )
            return
        self.save()

    def _stop_requested(self, reason: str | None) -> bool:
        """Any rank's signal stops every rank after the same step."""
        if self.info.world == 1:
            return reason is not None
        return bool(all_sum(torch.tensor([float(reason is not None)]), self.info) > 0)

    def _stop(self, reason: str) -> None:
        from t1.train.signals import resume_command

        self.save()
        self.stopped = reason
        if self.info.main:
            cmd = resume_command("rl", Path(self.cfg.trainer.out).resolve())
            print(
                f"t1 rl: {reason}: stopped at step {self.step} of {self.cfg.trainer.steps}, "
                f"checkpoint saved; resume with:\n  {cmd}",
                flush=True,
            )
