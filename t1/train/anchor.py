"""The KL term's reference policy π_ref, the "anchor" (DESIGN.md "dynamic anchor"; T1 §3).

Full-weight training: π_ref is a second model θ_ref, a copy of the policy with float32 masters,
sharded like it (`t1.train.sharding.make_anchor`), updated after optimiser steps by

    θ_ref ← α·θ_ref + (1 − α)·θ          (`rl.anchor: ema`; `frozen`: never, the initial policy)

LoRA (t1.models.lora): the policy is the frozen base W plus adapters, W x + s·B A x on the
target projections. Only A and B move, so the anchor is the same base with its own adapters:

    π_ref = base ⊕ (A_ref, B_ref),       (A_ref, B_ref) ← α·(A_ref, B_ref) + (1 − α)·(A, B)

the EMA applied to A and B as parameters, as the full-weight anchor averages every parameter
(so B_ref A_ref is not the EMA of the products B A). A frozen anchor keeps the initial adapters,
B = 0: π_ref is then the base model itself. No second model exists: the EMA adapters are float32
tensors shaped (and, under FSDP2, sharded) like the policy's adapters, and π_ref's forward is
the policy's own, with the EMA adapters copied into the adapter parameters for it and the
policy's copied back after (`reference`), shard by shard, bitwise. The anchor then costs
4 bytes per adapter parameter instead of 4 bytes per model parameter
(tests/train/test_lora.py counts both from learner.json).

    anchor = make_rl_anchor(policy, cfg, info)        None, a module, or an AdapterAnchor
    with reference(anchor, policy) as ref_model: ...  π_ref's forward
    update_anchor_(anchor, policy, alpha)             the EMA step
    anchor_tensors(anchor) / load_anchor_(anchor, d)  checkpoints (`anchor/`)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from t1.algo import ema_update_
from t1.models.dcp import load_model_tensors, load_tensors, model_tensors
from t1.models.lora import has_adapters, trained_names
from t1.models.sharded import local, local_shards, reshard, settle
from t1.train.distributed import DistInfo
from t1.train.sharding import make_anchor


class AdapterAnchor:
    """The EMA of a LoRA policy's adapters (module docstring): π_ref = base ⊕ EMA(adapters)."""

    def __init__(self, policy: torch.nn.Module) -> None:
        reshard(policy)
        keep = trained_names(policy)
        named = [(n, p) for n, p in policy.named_parameters() if n in keep]
        self.policy = policy
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        # float32 masters like the policy's adapters; a DTensor's clone keeps its sharding
        self.weights = [p.detach().clone() for p in self.params]

    def tensors(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.weights))

    def nbytes(self) -> int:
        """Bytes this rank holds."""
        return sum(local(w).numel() * w.element_size() for w in self.weights)

    @torch.no_grad()
    def _swap(self) -> None:
        reshard(self.policy)  # the parameters' local shards are what the forward gathers
        for p, w in zip(self.params, self.weights):
            mine, theirs = local(p.detach()), local(w)
            kept = mine.clone()
            mine.copy_(theirs)
            theirs.copy_(kept)

    @contextmanager
    def swapped(self) -> Iterator[torch.nn.Module]:
        """The policy with the EMA adapters in place, in eval mode (no adapter dropout)."""
        training = self.policy.training
        self._swap()
        self.policy.eval()
        try:
            yield self.policy
        finally:
            settle(self.policy)
            self._swap()
            self.policy.train(training)

    @torch.no_grad()
    def update_(self, alpha: float) -> None:
        reshard(self.policy)
        mine = [local(p.detach()) for p in self.params]
        ema_update_([local(w) for w in self.weights], mine, alpha)


def make_rl_anchor(policy: torch.nn.Module, cfg: Any, info: DistInfo) -> Any:
    """`rl.anchor`'s reference: None (no KL term), the EMA adapters of a LoRA policy, or a
    full copy of the policy (t1.train.sharding.make_anchor)."""
    if cfg.rl.anchor == "none":
        return None
    if has_adapters(policy):
        return AdapterAnchor(policy)
    return make_anchor(policy, cfg.train, cfg.model.dtype, info)


@contextmanager
def reference(anchor: Any, policy: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The module whose forward is π_ref while inside; settled (resharded) on exit."""
    if isinstance(anchor, AdapterAnchor):
        with anchor.swapped() as model:
            yield model
        return
    try:
        yield anchor
    finally:
        settle(anchor)


def update_anchor_(anchor: Any, policy: torch.nn.Module, alpha: float) -> None:
    """θ_ref ← α·θ_ref + (1 − α)·θ, float32 masters, shard by shard."""
    if isinstance(anchor, AdapterAnchor):
        anchor.update_(alpha)
    else:
        ema_update_(local_shards(anchor), local_shards(policy), alpha)


def anchor_tensors(anchor: Any) -> dict[str, torch.Tensor]:
    """What a checkpoint's `anchor/` holds (sharded entries stay sharded)."""
    if isinstance(anchor, AdapterAnchor):
        return anchor.tensors()
    return model_tensors(anchor)


def load_anchor_(anchor: Any, folder: Path) -> None:
    if isinstance(anchor, AdapterAnchor):
        load_tensors(folder, anchor.tensors())
    else:
        load_model_tensors(anchor, folder)


def anchor_bytes(anchor: Any) -> int:
    """Bytes of the anchor's weights on this rank (0: no anchor)."""
    if anchor is None:
        return 0
    if isinstance(anchor, AdapterAnchor):
        return anchor.nbytes()
    return sum(t.numel() * t.element_size() for t in local_shards(anchor))
