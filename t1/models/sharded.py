"""A model whose parameters FSDP2 (`torch.distributed.fsdp.fully_shard`) has sharded.

`t1.train.sharding.shard_model` shards a learner: one FSDP2 group per decoder layer, then the
root group (embeddings, final norm, output head). Each rank holds a dim-0 slice of every
parameter (a `DTensor`); a group's full weights exist only while its module runs: they are
all-gathered by the module's pre-forward hook and freed by its post-forward hook (the root's are
kept until backward). Code that reads weights outside those hooks uses one of these:

    full_weights(model)      every group gathered for a stretch of inference (the HF engine's
                             generation); its forwards then run no collective, so ranks may run
                             different numbers of them (different prompts, different lengths)
    root_forward(model, fn)  fn() run as the root module's forward: the root group is gathered,
                             so fn may call the decoder (`model.model(...)`) and then use
                             `model.lm_head.weight` directly, a chunk of positions at a time;
                             the output's backward reduces the root group's gradients as the
                             model's own forward would
    local_shards(model)      the parameters' local slices (the fp32 master shards), for
                             arithmetic shard by shard (the EMA anchor)
    full_state(model)        (name, whole tensor) one at a time: export without a full copy

Every helper is a no-op on a plain module. The collectives inside `full_weights`, `full_state`
and the hooks are issued in module order, so every rank of the mesh must call them together.
Sources followed: torch/distributed/fsdp/_fully_shard/_fully_shard.py (`FSDPModule.unshard`,
`reshard`, `set_reshard_after_forward`, `reset_iter_state`, `register_fsdp_forward_method`) and
_fsdp_param_group.py (an unsharded group's pre-forward does not all-gather again).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.distributed.fsdp import FSDPModule, register_fsdp_forward_method
from torch.distributed.tensor import DTensor

# the name of the method `root_forward` runs its function through
ROOT_CALL = "t1_root_call"
# the reshard-after-forward flag `shard_model` gave a module (restored after `full_weights`)
RESHARD_FLAG = "_t1_reshard_after_forward"
# set on a model while `full_weights` holds it gathered (a nested call is a no-op)
GATHERED = "_t1_gathered"
# the dtype a learner computes in (`model.dtype`), set by `t1.train.sharding.prepare_learner`
COMPUTE_DTYPE = "_t1_compute_dtype"


def fsdp_modules(model: torch.nn.Module) -> list[Any]:
    """The FSDP2 modules of `model`, the root first (module order)."""
    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def is_sharded(model: Any) -> bool:
    return isinstance(model, torch.nn.Module) and bool(fsdp_modules(model))


def compute_dtype(model: Any) -> torch.dtype:
    """The dtype the model computes in: its weights' unless they are float32 masters of a
    lower-precision learner (then a rollout engine should run in the compute dtype too)."""
    return getattr(model, COMPUTE_DTYPE, None) or next(model.parameters()).dtype


def local(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's local slice (a view of its storage); a plain tensor as is."""
    return t.to_local() if isinstance(t, DTensor) else t


def enable_root_forward(model: torch.nn.Module) -> None:
    """Give the FSDP root module the method `root_forward` calls (once, after sharding)."""
    if not isinstance(model, FSDPModule) or hasattr(model, ROOT_CALL):
        return

    def call(self: Any, fn: Callable[[], Any]) -> Any:
        return fn()

    setattr(model, ROOT_CALL, types.MethodType(call, model))
    register_fsdp_forward_method(model, ROOT_CALL)


def root_forward(model: Any, fn: Callable[[], Any]) -> Any:
    """`fn()` as the root module's forward (module docstring); plain modules just call it.

    `fn` takes no arguments (close over them), so FSDP's input casting touches nothing. It may
    call `model(...)` itself: a nested root forward is a no-op for the root group.
    """
    if not isinstance(model, FSDPModule):
        return fn()
    enable_root_forward(model)
    return getattr(model, ROOT_CALL)(fn)


def reshard(model: Any) -> None:
    """Register every group's sharded parameters again (local, no collective): what the
    optimiser holds, what state dicts name. A gathered root (after a forward without
    backward) is freed."""
    for m in fsdp_modules(model):
        m.reshard()


def settle(model: Any) -> None:
    """Reshard every group and clear FSDP's per-iteration records (no gradients pending).

    Forwards outside backward (generation, log-prob passes without grad) leave entries in the
    order FSDP prefetches by in backward, and an unsharded root; this puts the model back in
    its state after an optimiser step. Local: no collective.
    """
    reshard(model)
    if is_sharded(model):
        fsdp_modules(model)[0].reset_iter_state()


@contextmanager
def full_weights(model: Any) -> Iterator[None]:
    """All groups gathered (in the compute dtype) while inside; resharded on exit.

    One all-gather per group on entry, in module order, on every rank; then forwards inside
    run no collective (a rank may even run none: e.g. only rank 0 evaluates). Re-entrant. Memory: one full copy of the weights in the compute dtype beside the
    shards, freed on exit; no second full-precision copy is made.
    """
    mods = fsdp_modules(model)
    if not mods or getattr(model, GATHERED, False):  # plain, or already inside: nothing to do
        yield
        return
    for m in mods:
        m.unshard()
    for m in mods:
        m.set_reshard_after_forward(False, recurse=False)
    setattr(model, GATHERED, True)
    try:
        yield
    finally:
        setattr(model, GATHERED, False)
        for m in mods:
            m.set_reshard_after_forward(getattr(m, RESHARD_FLAG, True), recurse=False)
        settle(model)


def local_shards(model: torch.nn.Module) -> list[torch.Tensor]:
    """The local slices of `model.parameters()` (sharded state: the masters, not the gathered
    compute copies)."""
    reshard(model)
    return [local(p.detach()) for p in model.parameters()]


def gather(tensor: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`tensor` whole: cast to `dtype` first (half the bytes for bf16), then all-gathered when it
    is a DTensor (collective: every rank of its mesh calls this together)."""
    if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def state_entries(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, detached tensor or DTensor) of `model.state_dict()`, a tied weight once."""
    seen: set[int] = set()
    for name, value in model.state_dict(keep_vars=True).items():
        if id(value) in seen:
            continue
        seen.add(id(value))
        yield name, value.detach()


def full_state(
    model: torch.nn.Module, dtype: torch.dtype | None = None
) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, whole tensor) for each entry of `model.state_dict()`, gathered one at a time.

    A tied weight (an lm_head sharing the embedding) comes once, under its first name. Floating
    tensors are cast to `dtype` before the gather (half the bytes for bf16). Collective for
    sharded entries: every rank must run the iterator to the end.
    """
    for name, tensor in state_entries(model):
        yield name, gather(tensor, dtype)
