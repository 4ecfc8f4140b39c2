"""The T1 algorithm core: pure PyTorch functions, one per equation (arXiv 2501.11651, §3).

Nothing here imports the rest of `t1` or reads a config: trainers pick from the families
(`ADVANTAGES`, `KL_ESTIMATORS`, `LOSS_AGGREGATIONS`, `SELECTIONS`) once and wire the pieces.

    advantages  rloo_advantages, group_advantages, t1_advantages   A_i = r_i − mean_{j≠i} r_j − β·KL̄
    kl          kl_per_token, sequence_kl                          k1 / k2 / k3 estimators
    entropy     token_entropy                                      H = −Σ_v p_v log p_v, chunked
    losses      policy_loss, aggregate, masked_mean                REINFORCE / PPO-clip
    ema         ema_update_                                        θ_ref ← α·θ_ref + (1−α)·θ
    mismatch    logp_mismatch, truncated_is_weights                |ℓ|, w = min(exp ℓ, C)
    selection   select_samples, informative_groups                 which k of K samples train
    passk       pass_at_k                                          1 − C(n−c, k)/C(n, k)
"""

from .advantages import (
    ADVANTAGES,
    group_advantages,
    mean_baseline_advantages,
    rloo_advantages,
    t1_advantages,
)
from .ema import ema_update_
from .entropy import token_entropy
from .kl import KL_ESTIMATORS, kl_per_token, sequence_kl
from .losses import LOSS_AGGREGATIONS, aggregate, masked_mean, policy_loss
from .mismatch import logp_mismatch, truncated_is_weights
from .passk import pass_at_k
from .selection import SELECTIONS, informative_groups, select_samples

__all__ = [
    "ADVANTAGES",
    "KL_ESTIMATORS",
    "LOSS_AGGREGATIONS",
    "SELECTIONS",
    "aggregate",
    "ema_update_",
    "group_advantages",
    "informative_groups",
    "kl_per_token",
    "logp_mismatch",
    "masked_mean",
    "mean_baseline_advantages",
    "pass_at_k",
    "policy_loss",
    "rloo_advantages",
    "select_samples",
    "sequence_kl",
    "t1_advantages",
    "token_entropy",
    "truncated_is_weights",
]
