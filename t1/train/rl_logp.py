"""The behaviour log-probs of a rollout batch, wired from `t1.algo.mismatch` (no maths here).

    sampler log-probs (from the engine) ─┐
                                          ├─> old_logp (rl.old_logp), mismatch metrics,
    learner log-probs (a no-grad pass) ──┘    truncated importance-sampling weights (rl.tis_cap)

`rl.old_logp: auto` means the sampler's own log-probs with the HF engine, which reports exactly
what the learner computes, and the learner's with vLLM, whose bf16 kernels differ from the
learner's, so the KL to the anchor and the PPO ratio start from the learner's own numbers.
Whenever both are at hand, `mismatch/logp_abs_mean` and `mismatch/logp_abs_max` log
|log π_sampler − log π_learner| over this step's response tokens, on all ranks together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from t1.algo import logp_mismatch, truncated_is_weights
from t1.models.sharded import settle
from t1.rollout import Batch
from t1.rollout.batch import sampler_logprobs
from t1.train.distributed import DistInfo, all_max, all_sum
from t1.train.rl_update import logprobs


def resolve_old_logp(old_logp: str, engine: str) -> str:
    """`rl.old_logp` with "auto" made concrete for `rollout.engine`."""
    if old_logp != "auto":
        return old_logp
    return "learner" if engine == "vllm" else "sampler"


@dataclass
class BehaviourLogp:
    # (N, T) log π of the sampled tokens that the KL and the PPO ratio start from
    old_logp: torch.Tensor
    # (N, T) truncated importance-sampling weights, or None when rl.tis_cap is off
    weight: torch.Tensor | None
    metrics: dict[str, float]


def _mismatch_metrics(
    sampler: torch.Tensor, learner: torch.Tensor, mask: torch.Tensor, info: DistInfo
) -> dict[str, float]:
    stats = logp_mismatch(sampler, learner, mask)
    total = all_sum(torch.stack([stats["abs_sum"], stats["tokens"]]).double(), info)
    return {
        "mismatch/logp_abs_mean": float(total[0] / total[1].clamp_min(1)),
        "mismatch/logp_abs_max": float(all_max(stats["abs_max"].double().reshape(1), info)),
    }


def _weight_metrics(
    weight: torch.Tensor, mask: torch.Tensor, cap: float, info: DistInfo
) -> dict[str, float]:
    m = mask.bool()
    local = torch.stack([weight[m].sum(), (weight[m] >= cap).sum(), m.sum()]).double()
    total = all_sum(local, info)
    tokens = total[2].clamp_min(1)
    return {"tis/weight_mean": float(total[0] / tokens), "tis/capped": float(total[1] / tokens)}


@torch.no_grad()
def behaviour_logprobs(
    model: Any, rollouts: list, batch: Batch, cfg: Any, info: DistInfo, sharded: bool = False
) -> BehaviourLogp:
    """old_logp, TIS weights and mismatch metrics of one rollout batch (cfg: the RL stage;
    `sharded`: the model is FSDP2-sharded, so every rank runs the learner pass alike)."""
    rl, mask = cfg.rl, batch.response_mask
    sampler = sampler_logprobs(rollouts, mask.shape[1]) * mask
    mode = resolve_old_logp(rl.old_logp, cfg.rollout.engine)
    if mode == "sampler" and rl.tis_cap is None:
        return BehaviourLogp(sampler, None, {})
    T = cfg.sampling.temperature
    learner = logprobs(model, batch, T, rl.micro_batch_size, sharded=sharded)
    settle(model)
    on_cpu = learner.cpu()
    metrics = _mismatch_metrics(sampler, on_cpu, mask, info)
    weight = None
    if rl.tis_cap is not None:
        weight = truncated_is_weights(on_cpu, sampler, mask, rl.tis_cap)
        metrics.update(_weight_metrics(weight, mask, rl.tis_cap, info))
    return BehaviourLogp(learner if mode == "learner" else sampler, weight, metrics)
