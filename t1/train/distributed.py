"""Data parallelism under `torchrun`: `gloo` on CPU, `nccl` on GPUs.

Each rank samples its share of the prompts and computes its share of the loss, normalised by
the *global* token (or sequence) count; gradients are then summed over ranks, so every rank
holds exactly the gradient of the global-batch loss. That makes an N-process update equal the
1-process update on the same global batch (a test checks it), whatever the ranks' token counts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group that `torchrun` describes in the environment (or run alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if world == 1:
        return DistInfo(device=torch.device("cuda" if use_cuda else "cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        local_rank=local_rank,
        device=torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"),
    )


def close_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (a copy; the input is untouched)."""
    out = values.detach().clone()
    if info.world > 1:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def sum_gradients_(model: torch.nn.Module, info: DistInfo) -> None:
    """In place, every parameter's gradient becomes its sum over ranks (missing grads: zeros)."""
    if info.world == 1:
        return
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


def broadcast_parameters_(model: torch.nn.Module, info: DistInfo) -> None:
    """Start every rank from rank 0's weights."""
    if info.world == 1:
        return
    with torch.no_grad():
        for p in model.parameters():
            dist.broadcast(p.data, src=0)
