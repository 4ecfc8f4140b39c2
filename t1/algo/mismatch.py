"""Sampler/learner mismatch: how far the engine's log-probs are from the learner's, and the
truncated importance-sampling (TIS) weight that corrects the policy gradient for it.

An inference engine (vLLM in bf16, other kernels, other summation orders) samples y_t from
π_sampler, which is not exactly the learner's π_θ at the same weights. Per response token, with
ℓ_t = log π_θ(y_t) − log π_sampler(y_t) (the learner's log-prob at the weights that sampled):

    mismatch:   mean_t |ℓ_t|  and  max_t |ℓ_t|    over response tokens (0 for a perfect engine)
    TIS weight: w_t = min(exp(ℓ_t), C)            a constant (no gradient) per token

The policy-gradient term of each token is multiplied by w_t, so the expectation over the
sampler's tokens becomes one over the learner's, with the ratio capped at C to bound the
variance (truncated importance sampling: Ionides 2008, "Truncated importance sampling"; applied
to the vLLM/learner gap by Yao et al. 2025, "Your efficient RL framework secretly brings you
off-policy RL training", https://fengyao.notion.site/off-policy-rl; the same correction as
verl's `rollout_is_threshold` (docs/algo/rollout_corr.md) and TRL's
`vllm_importance_sampling_correction` (trl/trainer/grpo_trainer.py)).

Rows are responses `(N, T)`; `mask (N, T)` marks real tokens. Padding is zeroed before any
arithmetic, so inf or nan there changes nothing.
"""

from __future__ import annotations

import torch

from ._checks import as_bool_mask, check_2d, check_same_shape


def logp_mismatch(
    sampler_logp: torch.Tensor, learner_logp: torch.Tensor, mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Mean and max of |log π_sampler − log π_learner| over real tokens, plus their count.

    Returns detached 0-dim tensors `abs_mean`, `abs_max`, `abs_sum`, `tokens` (sum and count
    let a trainer combine ranks into a token-weighted mean); all 0 when there are no tokens.
    """
    check_2d("sampler_logp", sampler_logp)
    check_same_shape(sampler_logp=sampler_logp, learner_logp=learner_logp, mask=mask)
    m = as_bool_mask(mask)
    diff = torch.where(m, sampler_logp.detach() - learner_logp.detach(), 0.0).abs()  # (N, T)
    tokens = m.sum()
    total = diff.sum()
    zero = torch.zeros((), dtype=diff.dtype, device=diff.device)
    return {
        "abs_mean": total / tokens.clamp_min(1),
        "abs_max": diff.amax() if diff.numel() else zero,
        "abs_sum": total,
        "tokens": tokens.to(diff.dtype),
    }


def truncated_is_weights(
    learner_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, cap: float
) -> torch.Tensor:
    """(N, T) w_t = min(exp(log π_learner − log π_sampler), cap) on real tokens, 0 on padding.

    Detached: the weight rescales each token's gradient and has none of its own.
    """
    check_2d("learner_logp", learner_logp)
    check_same_shape(learner_logp=learner_logp, sampler_logp=sampler_logp, mask=mask)
    if not cap > 0:
        raise ValueError(f"cap must be > 0, got {cap!r}")
    m = as_bool_mask(mask)
    log_ratio = torch.where(m, learner_logp.detach() - sampler_logp.detach(), 0.0)
    # exp may overflow to inf for a large log ratio; the cap then gives exactly C
    weight = torch.exp(log_ratio).clamp(max=cap)
    return torch.where(m, weight, 0.0)
