"""The learner's weights, one full tensor at a time, for an inference engine to load.

    for name, tensor in iter_full_weights(model, dtype=torch.bfloat16):
        ...  # a Hugging Face parameter name and its whole (unsharded) value

The learner may be a plain module or one sharded with FSDP2 (`fully_shard`), whose parameters
are `DTensor`s each rank holds a slice of. A sharded parameter is gathered with
`DTensor.full_tensor()` when the iterator reaches it, so only one parameter is whole at a time:
the peak extra memory is the largest parameter, never the model. That gather is a collective:
**every rank of the learner's mesh must run the iterator to the end, in step**; since each rank
walks `named_parameters()` of the same module tree, the order is the same everywhere.

The order is the module's own, layer after layer, which is what vLLM's layer-wise reload wants
("weights should be loaded in order", vLLM docs/training/layerwise.md); FSDP2 keeps the
parameters' names, so they are the Hugging Face checkpoint names once the wrappers' own segments
(activation checkpointing, `torch.compile`) are removed. Tied parameters (an lm_head sharing the
embedding) come once, as `named_parameters()` gives them; buffers are not sent (a causal LM's are
non-persistent, e.g. rotary tables, which an engine builds itself).

The same gather-per-parameter idea is in TRL (trl/generation/vllm_generation.py,
`_sync_fsdp2_params_to_vllm`) and verl (verl/workers/fsdp_workers.py, `update_weights` over
`full_tensor()`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from t1.models.lora import has_adapters, merged_entries
from t1.models.sharded import gather

# path segments that wrappers insert into parameter names; the checkpoint names lack them
WRAPPER_SEGMENTS = ("_checkpoint_wrapped_module.", "_orig_mod.", "_fsdp_wrapped_module.")


def checkpoint_name(name: str) -> str:
    """`name` without the segments wrappers add (`layers.0._checkpoint_wrapped_module.mlp` ...)."""
    for segment in WRAPPER_SEGMENTS:
        name = name.replace(segment, "")
    return name


def iter_full_weights(
    model: torch.nn.Module, dtype: torch.dtype | None = None
) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, full tensor) for each parameter of `model`, gathered one at a time when sharded.

    `dtype` casts before the gather (a bf16 gather moves half the bytes of an fp32 one). The
    tensors are detached; a plain module's may share storage with its parameters (no copy is
    made when no cast is needed), so a consumer must copy, not keep, what it receives. A model
    with LoRA adapters yields its merged weights under the base names, W + (alpha/r)·B A, and
    no adapter (`t1.models.lora.merged_entries`): what an engine without LoRA support loads.
    """
    entries = ((name, param.detach()) for name, param in model.named_parameters())
    if has_adapters(model):
        entries = merged_entries(model, entries, dtype, gather)
    else:
        entries = ((name, gather(tensor, dtype)) for name, tensor in entries)
    for name, tensor in entries:  # collective per sharded tensor: all ranks in step
        yield checkpoint_name(name), tensor
