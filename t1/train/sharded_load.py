"""Loading a learner that FSDP2 shards, without any rank holding the whole model.

    model, tokenizer = load_learner(cfg.model, cfg.train, info)   # every rank

Bounded path, for a sharded learner (`train.fsdp`, t1.train.sharding) whose weights are
safetensors files: an HF folder (config.json and *.safetensors, as `from_pretrained` reads and
`t1 sft` writes in final/), a hub id (its snapshot's config and safetensors files), a training
checkpoint step-N/ (its model/ folder), or a run directory (the newest of those). Each rank:

  1. builds the model from its config on the meta device (no storage);
  2. shards it with FSDP2 (`shard_model`) and gives storage to its own slices only
     (`to_empty`): float32 masters on its GPU, or in host memory with `train.cpu_offload`;
  3. reads its slices straight from the files with DCP's `HuggingFaceStorageReader`
     (torch/distributed/checkpoint/hf_storage.py: safetensors' `get_slice` reads the rows a
     rank owns, one tensor at a time, and `copy_` converts them to the masters' dtype);
  4. rounds the masters through `model.dtype`, so they equal what the full path below gives
     (a model loaded in `model.dtype`, then cast up to float32);
  5. fills the non-persistent buffers (rotary tables), which no file holds, with the values
     transformers' own `_init_weights` computes for a meta-built model (what `from_pretrained`
     does for them, transformers/modeling_utils.py), computed on CPU before sharding.

A rank's host memory then holds one tensor's slice at a time beside the page cache of the reads,
instead of the whole model in `model.dtype` (benchmarks/memory.py `load` measures both).

Full path, for everything else (tiny models, GGUF files, which transformers dequantises whole,
folders of .bin weights, a model whose buffers or parameter names the bounded path cannot
reproduce, and unsharded learners): `t1.models.load_model` on CPU, every rank the whole model,
then `prepare_learner` keeps each rank's slice.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint import HuggingFaceStorageReader

from t1.errors import T1Error
from t1.models.dcp import load_model_tensors
from t1.models.loading import (
    DTYPES,
    check_tokenizer,
    is_t1_checkpoint,
    load_model,
    load_tokenizer,
    read_generation_config,
    resolve_source,
)
from t1.models.sharded import COMPUTE_DTYPE, local_shards
from t1.train.distributed import DistInfo, init_distributed
from t1.train.sharding import master_dtype, shard_model, use_fsdp

log = logging.getLogger(__name__)

# the files a hub snapshot needs for the bounded path (the tokenizer loads by its own id)
SNAPSHOT_FILES = ["*.json", "*.safetensors"]


def load_learner(model_cfg: Any, train_cfg: Any, info: DistInfo) -> tuple[Any, Any]:
    """(model, tokenizer) of `model_cfg` for training: sharded by the bounded path where it
    applies (module docstring), else loaded whole (on CPU when it is to be sharded)."""
    if use_fsdp(train_cfg, info.world):
        loaded = load_sharded(model_cfg, train_cfg, info)
        if loaded is not None:
            return loaded
        return load_model(dataclasses.replace(model_cfg, device="cpu"))
    return load_model(model_cfg)


def weights_folder(model_cfg: Any) -> tuple[Path, Path] | None:
    """(config folder, safetensors folder) of a model the bounded path reads; None otherwise."""
    if model_cfg.path == "tiny":
        return None
    source, gguf_file = resolve_source(model_cfg.path, model_cfg.gguf_file)
    if gguf_file:
        return None
    folder = Path(source)
    if not folder.is_dir():  # a hub id: the snapshot from_pretrained would read
        folder = _snapshot(source)
        if folder is None:
            return None
    if is_t1_checkpoint(str(folder)):
        return folder, folder / "model"
    if any(folder.glob("*.safetensors")):
        return folder, folder
    return None


def _snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=SNAPSHOT_FILES))
    except Exception as e:  # offline, unknown id: the full path reports it
        log.info("no snapshot of %s for a sharded load (%s)", repo_id, e)
        return None


def load_sharded(model_cfg: Any, train_cfg: Any, info: DistInfo) -> tuple[Any, Any] | None:
    """The bounded path (module docstring); None when it does not apply. Every rank calls it."""
    from transformers import AutoConfig, AutoModelForCausalLM

    found = weights_folder(model_cfg)
    if found is None:
        return None
    folder, weights = found
    master = master_dtype(train_cfg, model_cfg.dtype)
    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=master)
    stored = HuggingFaceStorageReader(str(weights)).read_metadata().state_dict_metadata
    why = _unsupported(model, stored, weights)
    if why:
        log.info("%s: loading whole before sharding (%s)", folder, why)
        return None
    compute = DTYPES[model_cfg.dtype]
    # values stored in the compute dtype are already rounded to it
    rounded = {k for k, md in stored.items() if md.properties.dtype == compute}
    buffers = fresh_buffers(model)
    assert buffers is not None  # _unsupported checked
    if not info.grouped:  # train.fsdp=true in one process: FSDP2 needs a (one-process) group
        info = init_distributed(info.device.type, group_of_one=True)
    setattr(model, COMPUTE_DTYPE, compute)
    shard_model(model, train_cfg, info, model_cfg.dtype)
    model.to_empty(device="cpu" if train_cfg.cpu_offload else info.device)
    load_model_tensors(model, weights)
    _round_through_(model, compute, master, skip=rounded)
    _set_buffers(model, buffers, info.device)
    read_generation_config(model, folder)
    model.eval()
    tokenizer = load_tokenizer(model_cfg)
    check_tokenizer(tokenizer, model, str(folder))
    return model, tokenizer


def _unsupported(model: torch.nn.Module, stored: dict[str, Any], weights: Path) -> str | None:
    """Why the bounded path cannot build this model from these files (`stored`: their tensors'
    metadata by name), or None."""
    if fresh_buffers(model) is None:
        return "transformers does not recompute its non-persistent buffers"
    for name, tensor in _state(model).items():
        if name not in stored:
            return f"no tensor {name!r} in the safetensors files"
        if tuple(stored[name].size) != tuple(tensor.shape):
            raise T1Error(
                f"{weights}: {name} has shape {tuple(stored[name].size)}, the model's config "
                f"gives {tuple(tensor.shape)}"
            )
    return None


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict, a tied parameter once (under its first name), as `model_tensors` saves."""
    seen: set[int] = set()
    out = {}
    for name, value in model.state_dict(keep_vars=True).items():
        if id(value) not in seen:
            seen.add(id(value))
            out[name] = value
    return out


def fresh_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The values of a meta-built model's non-persistent buffers, computed on CPU by its
    `_init_weights` (which recomputes rotary tables); None when a buffer is left unset."""
    init = getattr(model, "_init_weights", None)
    out: dict[str, torch.Tensor] = {}
    for prefix, module in model.named_modules():
        names = [
            n
            for n, b in module._buffers.items()
            if b is not None and n in module._non_persistent_buffers_set
        ]
        if not names:
            continue
        own_params = any(True for _ in module.parameters(recurse=False))
        if init is None or own_params:  # _init_weights would also redraw the parameters
            return None
        # a copy of the module with CPU storage; the model itself stays on the meta device
        probe = _cpu_copy(module, names)
        init(probe)
        for n in names:
            value = probe._buffers[n]
            if not value.is_floating_point() or torch.isnan(value).any():
                return None
            out[f"{prefix}.{n}" if prefix else n] = value
    return out


def _cpu_copy(module: torch.nn.Module, names: list[str]) -> torch.nn.Module:
    """`module` (no parameters of its own) with its buffers `names` as NaN-filled CPU tensors."""
    import copy

    probe = copy.copy(module)  # shallow: its own dict of buffers below
    probe._buffers = dict(module._buffers)
    for n in names:
        meta = module._buffers[n]
        probe._buffers[n] = torch.full(meta.shape, math.nan, dtype=meta.dtype)
    return probe


def _set_buffers(model: torch.nn.Module, buffers: dict[str, torch.Tensor], device: Any) -> None:
    """The computed buffers in place of the empty ones, on the compute device (FSDP2 leaves
    buffers there, offload or not)."""
    for name, value in buffers.items():
        owner, _, attr = name.rpartition(".")
        model.get_submodule(owner)._buffers[attr] = value.to(device)


@torch.no_grad()
def _round_through_(
    model: torch.nn.Module, compute: torch.dtype, master: torch.dtype, skip: set[str]
) -> None:
    """Each master slice := its value rounded to `compute` (no-op when they are one dtype),
    except the parameters named in `skip` and the modules transformers keeps in float32."""
    if compute == master:
        return
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    for (name, _), shard in zip(model.named_parameters(), local_shards(model)):
        if name in skip or not shard.is_floating_point() or any(k in name for k in keep):
            continue
        shard.copy_(shard.to(compute).to(master))
