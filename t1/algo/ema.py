"""The dynamic anchor: an exponential moving average of the policy (T1, arXiv 2501.11651, §3).

T1 replaces the frozen reference model of the KL term with one that follows the policy slowly,
so the KL restrains each step without pinning the policy to its starting point:

    θ_ref ← α · θ_ref + (1 − α) · θ          after every optimiser step

α = 1 keeps the anchor frozen; α = 0 copies the policy.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


@torch.no_grad()
def ema_update_(
    ref_params: Iterable[torch.Tensor], params: Iterable[torch.Tensor], alpha: float
) -> None:
    """In place, `ref ← α·ref + (1−α)·param` for each pair, outside autograd.

    Pairs are matched by position (pass `ref_model.parameters()` and `model.parameters()` of
    one architecture). Each `param` is cast to its ref's dtype and device first, so an anchor
    kept in another precision or on another device works.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    refs, news = list(ref_params), list(params)
    if len(refs) != len(news):
        raise ValueError(f"ref_params has {len(refs)} tensors but params has {len(news)}")
    for i, (ref, new) in enumerate(zip(refs, news)):
        if ref.shape != new.shape:
            raise ValueError(
                f"parameter {i}: ref shape {tuple(ref.shape)} != param shape {tuple(new.shape)}"
            )
    for ref, new in zip(refs, news):
        # lerp: ref + (1 − α)·(new − ref) = α·ref + (1 − α)·new
        ref.lerp_(new.detach().to(device=ref.device, dtype=ref.dtype), 1.0 - alpha)
