"""Which of the K samples per prompt enter the gradient (T1, arXiv 2501.11651, §3, oversampling).

T1 oversamples K responses per prompt to explore; the gradient may then use a subset of k ≤ K of
them. With `rewards (B, K)`, `select_samples` returns `idx (B, k)`, the chosen sample indices of
each row in ascending order (gather with `rewards.gather(1, idx)`):

    "all"       every sample (k must equal K)
    "random"    k of the K uniformly without replacement
    "balanced"  split the group at its mean reward into "above" (r > mean) and the rest
                (r ≤ mean); take a = min(⌊k/2⌋, #above) above and k − a from the rest, and when the
                rest runs short, fill from above: as near k/2 each as the group allows, chosen
                uniformly at random within each part

Random choices draw only from `generator` (CPU or the rewards' device), so a seeded generator gives
the same indices on every run. `informative_groups` marks groups whose rewards are not all equal:
with a mean baseline their advantages are all zero and they contribute no gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._checks import check_2d, pick

Selector = Callable[[torch.Tensor, int, torch.Generator | None], torch.Tensor]


def _uniform_keys(rewards: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Random keys (B, K) in [0, 1), drawn on the generator's device, moved to the rewards'."""
    device = generator.device if generator is not None else rewards.device
    keys = torch.rand(rewards.shape, generator=generator, device=device)
    return keys.to(rewards.device)


def _chosen_to_indices(chosen: torch.Tensor, k: int) -> torch.Tensor:
    """bool (B, K) with exactly k True per row → their column indices (B, k), ascending."""
    order = torch.sort(chosen.to(torch.int8), dim=1, descending=True, stable=True).indices
    return order[:, :k].sort(dim=1).values


def _select_all(rewards: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    if k != rewards.shape[1]:
        raise ValueError(f"strategy 'all' keeps all K={rewards.shape[1]} samples; got k={k}")
    return torch.arange(k, device=rewards.device).expand(rewards.shape[0], k).clone()


def _select_random(
    rewards: torch.Tensor, k: int, generator: torch.Generator | None
) -> torch.Tensor:
    keys = _uniform_keys(rewards, generator)  # (B, K)
    return keys.argsort(dim=1, stable=True)[:, :k].sort(dim=1).values


def _random_order_within_parts(
    first: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Permutation (B, K): samples with `first` True come first, each part in random order."""
    order = _uniform_keys(first, generator).argsort(dim=1, stable=True)  # random order
    part = (~first).to(torch.int8).gather(1, order)  # 0 for `first`, 1 for the rest
    return order.gather(1, part.argsort(dim=1, stable=True))


def _select_balanced(
    rewards: torch.Tensor, k: int, generator: torch.Generator | None
) -> torch.Tensor:
    big_k = rewards.shape[1]
    r = rewards if rewards.is_floating_point() else rewards.double()
    above = r > r.mean(dim=1, keepdim=True)  # (B, K)
    n_above = above.sum(dim=1, keepdim=True)  # (B, 1)
    take_rest = torch.clamp(k - torch.clamp(n_above, max=k // 2), max=big_k - n_above)
    take_above = k - take_rest  # (B, 1); <= n_above because #above + #rest = K >= k
    position = torch.empty_like(above, dtype=torch.long)
    ranks = torch.arange(big_k, device=rewards.device).expand_as(position)
    position.scatter_(1, _random_order_within_parts(above, generator), ranks)  # (B, K)
    rank_in_part = position - torch.where(above, 0, n_above)
    chosen = rank_in_part < torch.where(above, take_above, take_rest)
    return _chosen_to_indices(chosen, k)


SELECTIONS: dict[str, Selector] = {
    "all": _select_all,
    "random": _select_random,
    "balanced": _select_balanced,
}


def select_samples(
    rewards: torch.Tensor,
    k: int | None,
    strategy: str = "all",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Indices `(B, k)` (long, ascending per row) of the samples per prompt to train on.

    `k=None` means all K. Raises `ValueError` for k outside 1..K or an unknown strategy.
    """
    check_2d("rewards", rewards)
    big_k = rewards.shape[1]
    k = big_k if k is None else k
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= big_k:
        raise ValueError(f"k must be an int in 1..K={big_k}, got {k!r}")
    return pick(SELECTIONS, strategy, "selection strategy")(rewards, k, generator)


def informative_groups(rewards: torch.Tensor) -> torch.Tensor:
    """`(B,)` bool: True where a group's K rewards are not all equal (it carries gradient)."""
    check_2d("rewards", rewards)
    return (rewards != rewards[:, :1]).any(dim=1)
