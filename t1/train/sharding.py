"""The learner's precision and FSDP2 sharding (`train.*`; DESIGN.md "Scale").

    model = prepare_learner(model, cfg.train, cfg.model.dtype, info)   # policy or SFT model
    anchor = make_anchor(model, cfg.train, cfg.model.dtype, info)       # the EMA anchor

Precision. Weights and AdamW states are float32 masters; `model.dtype` is the compute dtype:
- with FSDP2, `MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=train.reduce_dtype)`:
  each group is all-gathered in the compute dtype and its gradients are reduced in
  `reduce_dtype`, then accumulated into the float32 sharded gradients;
- without it (one process, or `train.fsdp=off`), the module keeps float32 parameters and the
  trainers run its forwards under `torch.autocast(compute dtype)` (`autocast(model)`): matmuls
  in the compute dtype, gradients and the optimiser step in float32;
- `train.pure_low_precision`: parameters and AdamW states in the compute dtype (warns).
A float32 `model.dtype` changes nothing: no cast, no autocast, the same arithmetic as before.
Parameters that do not train (the frozen base under LoRA adapters, t1.models.lora) are kept in
the compute dtype: no optimiser state, no update to lose (the anchor's stay float32 masters).

Sharding (torch/distributed/fsdp/_fully_shard/_fully_shard.py): `fully_shard` on every decoder
layer (the classes an HF model names in `_no_split_modules`), then on the root, which keeps the
embeddings, final norm and output head; layers are resharded after forward and re-gathered in
backward, the root keeps its gathered weights until backward. Gradients are *summed* over ranks
(divide factor 1 with plain SUM collectives; gloo has no PREMUL_SUM) because the losses are
already normalised by the global batch. A model given whole (loaded identically on every rank:
checked) keeps each rank's slice, each layer converted to float32 just before it is sharded, so
a rank's peak host memory is the model in its stored dtype plus one layer in float32;
`t1.train.sharded_load` instead reads each rank's slices of a safetensors model from the files
into a model sharded on the meta device.
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy
from torch.distributed.fsdp import fully_shard as fsdp_fully_shard
from torch.distributed.tensor import DTensor

from t1.errors import ConfigError
from t1.models.loading import DTYPES
from t1.models.sharded import (
    COMPUTE_DTYPE,
    RESHARD_FLAG,
    enable_root_forward,
    fsdp_modules,
    is_sharded,
)
from t1.train.distributed import DistInfo, check_same_weights, init_distributed

# the attribute holding an unsharded mixed-precision model's autocast dtype
AUTOCAST = "_t1_autocast_dtype"


def use_fsdp(train_cfg: Any, world: int) -> bool:
    """Whether the learner is sharded: `train.fsdp` true, or auto with more than one process."""
    return train_cfg.fsdp is True or (train_cfg.fsdp == "auto" and world > 1)


def check_train_config(train_cfg: Any, world: int) -> None:
    """Options that need FSDP2 fail before anything is loaded, naming the keys."""
    if use_fsdp(train_cfg, world):
        return
    for key in ("cpu_offload", "anchor_on_cpu"):
        if getattr(train_cfg, key):
            raise ConfigError(
                f"train.{key} needs FSDP2: set train.fsdp=true (also works in one process), or "
                f"leave train.fsdp=auto and start several processes with torchrun"
            )


def master_dtype(train_cfg: Any, compute: str) -> torch.dtype:
    """The dtype of the stored weights and optimiser states."""
    return DTYPES[compute] if train_cfg.pure_low_precision else torch.float32


def warn_pure_low_precision(train_cfg: Any, compute: str) -> None:
    if compute == "float16":
        warnings.warn(
            "model.dtype=float16: gradients are not loss-scaled, so small ones underflow to 0; "
            "bfloat16 (float32's exponent range) is the compute dtype t1 is tested with",
            UserWarning,
            stacklevel=3,
        )
    if train_cfg.pure_low_precision and compute != "float32":
        warnings.warn(
            f"train.pure_low_precision: weights and AdamW states are kept in {compute}; an "
            "update smaller than half a weight's rounding step is lost (at lr 5e-7, most "
            "bfloat16 weights never change); float32 masters are the default",
            UserWarning,
            stacklevel=3,
        )


def autocast(model: Any) -> AbstractContextManager:
    """The compute-dtype autocast of an unsharded mixed-precision model; else a no-op."""
    dtype = getattr(model, AUTOCAST, None)
    if dtype is None:
        return nullcontext()
    device = next(model.parameters()).device
    return torch.autocast(device.type, dtype=dtype)


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks FSDP2 shards one by one (an HF model's `_no_split_modules`)."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ConfigError(
            f"{type(model).__name__}: no decoder layers found to shard (the model names none "
            "in _no_split_modules); use train.fsdp=off"
        )
    return layers


def _cast_plain_(model: torch.nn.Module, dtype: torch.dtype, frozen: torch.dtype) -> None:
    """Floating parameters not yet sharded to `dtype` in place, those that do not train to
    `frozen` (a tied weight once)."""
    for p in model.parameters():
        want = dtype if p.requires_grad else frozen
        if p.is_floating_point() and p.dtype != want and not isinstance(p, DTensor):
            p.data = p.data.to(want)


def _cast_learner_(module: torch.nn.Module, master: torch.dtype, compute: torch.dtype) -> None:
    """`module` in the master dtype, except parameters that do not train (a LoRA base): they
    keep the compute dtype, as they have no optimiser state and no update to lose to rounding
    (half the bytes in bfloat16)."""
    if all(p.requires_grad for p in module.parameters()):
        module.to(master)
    else:
        _cast_plain_(module, master, compute)


def shard_model(
    model: torch.nn.Module,
    train_cfg: Any,
    info: DistInfo,
    compute: str,
    trainable: bool = True,
    offload: bool | None = None,
) -> torch.nn.Module:
    """FSDP2 over `model`, per decoder layer then the root (module docstring); in place.

    The root's gathered weights (embeddings, final norm, output head) stay after its forward,
    until backward or `t1.models.sharded.settle`, so a learner may apply the head to the
    decoder's hidden states after the model's own call; code that changes the shards without
    an optimiser step (the EMA anchor) reshards first (`local_shards` does). `trainable=False`
    (an anchor): no activation checkpointing. `offload`: CPU offload (default
    `train.cpu_offload`).
    """
    if is_sharded(model):
        return model
    master = master_dtype(train_cfg, compute)
    mp = MixedPrecisionPolicy(
        param_dtype=DTYPES[compute] if DTYPES[compute] != master else None,
        reduce_dtype=DTYPES[train_cfg.reduce_dtype],
    )
    use_offload = train_cfg.cpu_offload if offload is None else offload
    policy = CPUOffloadPolicy(pin_memory=torch.cuda.is_available()) if use_offload else None
    mesh = init_device_mesh(info.device.type, (info.world,))
    kwargs: dict[str, Any] = {
        "mesh": mesh,
        "mp_policy": mp,
        "offload_policy": policy or OffloadPolicy(),
    }
    if trainable and train_cfg.activation_checkpointing:
        enable_checkpointing(model)
    frozen = DTYPES[compute] if trainable else master  # an anchor keeps float32 masters
    for layer in decoder_layers(model):
        _cast_learner_(layer, master, frozen)
        fsdp_fully_shard(layer, reshard_after_forward=True, **kwargs)
        setattr(layer, RESHARD_FLAG, True)
    _cast_plain_(model, master, frozen)
    fsdp_fully_shard(model, reshard_after_forward=False, **kwargs)
    setattr(model, RESHARD_FLAG, False)
    for m in fsdp_modules(model):
        # a sum, not FSDP2's default mean: the loss already divides by the global batch
        m.set_gradient_divide_factor(1.0)
        m.set_force_sum_reduction_for_comms(True)
    enable_root_forward(model)
    return model


def enable_checkpointing(model: Any) -> None:
    """Activation checkpointing per decoder layer (non-reentrant: composes with FSDP2 hooks)."""
    if not hasattr(model, "gradient_checkpointing_enable"):
        raise ConfigError(
            f"train.activation_checkpointing: {type(model).__name__} is not a transformers "
            "model with gradient checkpointing"
        )
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def prepare_learner(
    model: torch.nn.Module, train_cfg: Any, compute: str, info: DistInfo
) -> torch.nn.Module:
    """The trainable model as `train.*` wants it: masters, compute dtype, sharding; in place.

    Idempotent (an already sharded model is returned as is). Unsharded, the model moves to
    `info.device`; a float32 model with a float32 compute dtype is left exactly as it was.
    """
    check_train_config(train_cfg, info.world)
    warn_pure_low_precision(train_cfg, compute)
    if is_sharded(model):
        return model
    setattr(model, COMPUTE_DTYPE, DTYPES[compute])
    if use_fsdp(train_cfg, info.world):
        if not info.grouped:  # fsdp=true in one process: FSDP2 needs a (one-process) group
            info = init_distributed(info.device.type, group_of_one=True)
        check_same_weights(model, info)
        return shard_model(model, train_cfg, info, compute)
    master = master_dtype(train_cfg, compute)
    _cast_learner_(model, master, DTYPES[compute])
    model.to(info.device)
    if DTYPES[compute] != master:
        setattr(model, AUTOCAST, DTYPES[compute])
    if train_cfg.activation_checkpointing:
        enable_checkpointing(model)
    return model


def make_anchor(
    policy: torch.nn.Module, train_cfg: Any, compute: str, info: DistInfo
) -> torch.nn.Module:
    """A frozen copy of the policy: its masters in the policy's dtype, sharded like it.

    Sharded, the copy is built on the meta device, sharded with the policy's mesh and
    placements (on CPU with `train.anchor_on_cpu`), and each rank copies its own slices from
    the policy's: no rank ever holds the whole anchor.
    """
    import copy

    if not is_sharded(policy):
        anchor = copy.deepcopy(policy).eval().requires_grad_(False)
        return anchor
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        anchor = AutoModelForCausalLM.from_config(policy.config)
    anchor.eval().requires_grad_(False)
    shard_model(anchor, train_cfg, info, compute, trainable=False, offload=train_cfg.anchor_on_cpu)
    anchor.to_empty(device="cpu" if train_cfg.anchor_on_cpu else info.device)
    copy_weights_(anchor, policy)
    return anchor


@torch.no_grad()
def copy_weights_(dst: torch.nn.Module, src: torch.nn.Module) -> None:
    """dst's parameters and buffers := src's, slice by slice (same architecture and sharding)."""
    from t1.models.sharded import local_shards

    for d, s in zip(local_shards(dst), local_shards(src)):
        d.copy_(s)
    for d, s in zip(dst.buffers(), src.buffers()):
        d.copy_(s)


def clip_grad_norm(params: list[torch.Tensor], max_norm: float | None) -> float:
    """The global gradient norm of `params` before clipping to `max_norm` (None: none);
    sharded, the norm over every rank's slices (the same number on each)."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm else float("inf"))
    if isinstance(norm, DTensor):
        norm = norm.full_tensor()
    return float(norm)
