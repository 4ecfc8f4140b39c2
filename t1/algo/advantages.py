"""Advantage estimators over groups of K responses per prompt (T1, arXiv 2501.11651, §3).

Shapes: `rewards (B, K)`: B prompts, K sampled responses each; every estimator returns (B, K).

Leave-one-out (RLOO) baseline, the one T1 uses:

    A_i = r_i − (1/(K−1)) · Σ_{j≠i} r_j            (K ≥ 2)

GRPO's group-normalised baseline, and its mean-only variant (Dr. GRPO, `scale=False`):

    A_i = (r_i − mean_j r_j) / (std_j r_j + eps)     std unbiased (divides by K−1), as in GRPO
    A_i =  r_i − mean_j r_j

T1's advantage folds the on-policy KL to the anchor model into the reward signal. With the
per-response KL_i = Σ_t (log π_θ − log π_ref), normalised by the same leave-one-out baseline,

    KL̄_i = KL_i − (1/(K−1)) · Σ_{j≠i} KL_j
    A_i  = r_i − (1/(K−1)) · Σ_{j≠i} r_j − β · KL̄_i

and the KL term is a constant in the gradient (it is detached), so the policy gradient is
−A_i · ∇ log π_θ(y_i) with no extra term from the KL's own dependence on θ.

`ADVANTAGES` maps a name to an estimator `rewards (B, K) -> (B, K)` for the trainer to choose once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._checks import check_2d, check_group_size, check_same_shape


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """`r_i − mean_{j≠i} r_j` per group: each sample is judged against the others only.

    The baseline excludes the sample itself, so it is independent of that sample's action and
    the gradient estimate stays unbiased. Equivalent to `K/(K−1) · (r_i − mean_j r_j)`.
    """
    check_group_size("rewards", rewards, 2)
    k = rewards.shape[1]
    others_sum = rewards.sum(dim=1, keepdim=True) - rewards  # (B, K)
    return rewards - others_sum / (k - 1)


def group_advantages(rewards: torch.Tensor, scale: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """GRPO's `(r − mean)/(std + eps)`, or `r − mean` when `scale=False` (Dr. GRPO).

    Dr. GRPO drops the std division because it up-weights groups that are nearly all right or
    all wrong. The std is the unbiased one (K−1 denominator), which needs K >= 2.
    """
    check_group_size("rewards", rewards, 2 if scale else 1)
    centred = rewards - rewards.mean(dim=1, keepdim=True)  # (B, K)
    if not scale:
        return centred
    return centred / (rewards.std(dim=1, keepdim=True) + eps)


def mean_baseline_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """`r − mean` (Dr. GRPO): `group_advantages(rewards, scale=False)` under a family name."""
    return group_advantages(rewards, scale=False)


def t1_advantages(rewards: torch.Tensor, seq_kl: torch.Tensor, beta: float) -> torch.Tensor:
    """T1's advantage: RLOO reward minus `beta` times the RLOO-normalised sequence KL.

    `seq_kl (B, K)` is detached: the KL acts as a per-response reward penalty, not as a loss
    term with its own gradient (DESIGN.md §3, "on-policy KL normalisation").
    """
    check_2d("seq_kl", seq_kl)
    check_same_shape(rewards=rewards, seq_kl=seq_kl)
    kl_bar = rloo_advantages(seq_kl.detach())  # (B, K)
    return rloo_advantages(rewards) - beta * kl_bar


ADVANTAGES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "rloo": rloo_advantages,
    "grpo": group_advantages,
    "dr_grpo": mean_baseline_advantages,
}
