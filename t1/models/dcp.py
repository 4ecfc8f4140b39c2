"""Tensor state in checkpoints: `torch.distributed.checkpoint` (DCP) into safetensors files.

    save_tensors(folder, tensors)     every rank writes its own slices, in parallel
    load_tensors(folder, tensors)     in place; any number of ranks, any sharding

Each rank writes `shard-0000R-model-00001-of-00001.safetensors` holding the slices it owns of
each tensor (a replicated tensor is written once, by one rank), with their offsets in the file's
JSON header (`DCP_SHARDING_INFO`): DCP's `HuggingFaceStorageWriter(save_distributed=True)` and
`HuggingFaceStorageReader`, torch/distributed/checkpoint/hf_storage.py. Reading assembles the
slices a target needs from whatever slices were saved, so a checkpoint written by N ranks loads
on M ranks, sharded or whole, or in a process without a process group. Nothing is pickled:
DCP's default writer keeps its metadata in a pickle, this one only safetensors and JSON.

The state dicts come from `torch.distributed.checkpoint.state_dict` (`get_model_state_dict`,
`get_optimizer_state_dict`, `set_*`), which name every tensor by its parameter's name on plain and
FSDP2 modules alike. Tied weights (an lm_head sharing the embedding) are stored once: safetensors
refuses two names for one storage.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import HuggingFaceStorageReader, HuggingFaceStorageWriter
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from t1.models.sharded import local, reshard

# optimizer state keys: "state.<parameter name>.<state name>" (exp_avg, exp_avg_sq, step)
STATE_PREFIX = "state."


def _grouped() -> bool:
    """Whether a process group exists (else DCP runs in this process alone)."""
    return dist.is_available() and dist.is_initialized()


@contextmanager
def _alone_quietly() -> Iterator[None]:
    """Without a process group DCP warns at every call that it runs in one process: intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is .*single process")
        yield


def _os_error(e: CheckpointException) -> BaseException:
    """The first OSError a rank hit (a full disk names itself), else the DCP exception."""
    for exc, _trace in e.failures.values():
        if isinstance(exc, OSError):
            return exc
    return e


def save_tensors(folder: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write `tensors` (plain or DTensor) into `folder` (collective when a group exists)."""
    writer = HuggingFaceStorageWriter(str(folder), save_distributed=True)
    try:
        with _alone_quietly():
            dcp.save(tensors, storage_writer=writer, no_dist=not _grouped())
    except CheckpointException as e:
        raise _os_error(e) from None


def load_tensors(folder: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Fill `tensors` in place from `folder` (each target reads only the slices it needs)."""
    try:
        reader = HuggingFaceStorageReader(str(folder))
        with _alone_quietly():
            dcp.load(tensors, storage_reader=reader, no_dist=not _grouped())
    except CheckpointException as e:
        raise _os_error(e) from None


def read_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of `folder`, whole, in this process (tests, tools; small checkpoints)."""
    meta = HuggingFaceStorageReader(str(folder)).read_metadata()
    out = {
        name: torch.empty(md.size, dtype=md.properties.dtype)
        for name, md in meta.state_dict_metadata.items()
    }
    load_tensors(folder, out)
    return out


def _untied(state: dict[str, Any]) -> dict[str, Any]:
    """`state` without the second and later names of one storage (tied weights)."""
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    out = {}
    for name, value in state.items():
        t = local(value)
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if t.numel() and key in seen:
            continue
        seen.add(key)
        out[name] = value
    return out


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict, tied weights once (sharded entries stay sharded)."""
    reshard(model)
    return _untied(get_model_state_dict(model))


def load_model_tensors(model: torch.nn.Module, folder: Path) -> None:
    """The weights saved by `save_tensors(folder, model_tensors(...))`, into `model`."""
    state = model_tensors(model)
    load_tensors(folder, state)
    set_model_state_dict(model, state, options=StateDictOptions(strict=False))


def optimizer_tensors(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """(tensors, param_groups): the optimizer's per-parameter states by parameter name, and its
    hyper-parameters (JSON-ready: lr, betas, eps, ... and the names of their parameters)."""
    reshard(model)  # the parameters registered must be those the optimizer holds
    state = get_optimizer_state_dict(model, optimizer)
    tensors = {
        f"{STATE_PREFIX}{name}.{key}": value
        for name, per_param in state["state"].items()
        for key, value in per_param.items()
    }
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
        for g in state["param_groups"]
    ]
    return tensors, groups


def load_optimizer(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    folder: Path,
    param_groups: list[dict[str, Any]],
) -> None:
    """Restore what `optimizer_tensors` returned (tensors from `folder`, groups from JSON).

    The target states are shaped by initialising the optimizer (DCP's own zero-lr step), then
    filled in place; betas come back as tuples.
    """
    reshard(model)
    template = get_optimizer_state_dict(model, optimizer)
    tensors = {
        f"{STATE_PREFIX}{name}.{key}": value
        for name, per_param in template["state"].items()
        for key, value in per_param.items()
    }
    load_tensors(folder, tensors)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in param_groups]
    set_optimizer_state_dict(model, optimizer, {"state": template["state"], "param_groups": groups})
