"""Data parallelism under `torchrun`: `gloo` on CPU, `nccl` on GPUs.

Each rank samples its share of the prompts and computes its share of the loss, normalised by
the *global* token (or sequence) count; gradients are then summed over ranks, so every rank
holds exactly the gradient of the global-batch loss. That makes an N-process update equal the
1-process update on the same global batch (tests check it), whatever the ranks' token counts.
With FSDP2 (`t1.train.sharding`) the sum is FSDP2's own reduce-scatter; without it,
`sum_gradients_` all-reduces each gradient.

Every collective here runs on the process group's device (`DistInfo.device`): nccl rejects CPU
tensors, so values computed on CPU are moved there and back.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# how long a rank waits in a collective for the others: work between collectives can be uneven
# (shares of the held-out evaluation of different lengths, rank 0 writing the run's files);
# nccl's default is 10 minutes
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=60)
# how long a finished rank waits for the others before the group is closed (gloo)
CLOSE_TIMEOUT = datetime.timedelta(minutes=10)


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def grouped(self) -> bool:
        """Whether collectives run (a process group exists, even of one process)."""
        return self.world > 1 or (dist.is_available() and dist.is_initialized())


def init_distributed(device: str = "auto", group_of_one: bool = False) -> DistInfo:
    """Join the process group that `torchrun` describes in the environment (or run alone).

    `group_of_one`: alone, still form a process group of one (FSDP2 needs one; `train.fsdp=on`).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if world == 1 and not group_of_one:
        return DistInfo(device=torch.device("cuda" if use_cuda else "cpu"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        if world == 1:  # no torchrun rendezvous: an in-process store is enough for one rank
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        else:
            dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    return DistInfo(
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        local_rank=local_rank,
        device=dev,
    )


def close_distributed(failed: bool = False) -> None:
    """Leave the process group.

    After a run that ended normally, every rank first waits at a barrier for the others: a rank
    that tears its connections down while another still reads its last collective's data from
    them aborts that one ("Connection closed by peer", or gloo's "terminate called without an
    active exception" at exit). After an error (`failed`), a group of several processes is left
    as it is: a rank that died never reaches the barrier, and destroying the group waits for
    any collective still pending with a live rank that will never join it (up to the group's
    timeout); the process exits with its error and torchrun stops the other ranks.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if dist.get_world_size() > 1:
        if failed:
            return
        _closing_barrier()
    dist.destroy_process_group()


def _closing_barrier() -> None:
    """Every rank here before any goes on; with gloo, an error naming the ranks that did not
    arrive within CLOSE_TIMEOUT instead of a wait as long as the group's timeout."""
    if dist.get_backend() == "gloo":
        dist.monitored_barrier(timeout=CLOSE_TIMEOUT, wait_all_ranks=True)
    elif torch.cuda.is_available():
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def _reduce(values: torch.Tensor, info: DistInfo, op: dist.ReduceOp) -> torch.Tensor:
    out = values.detach().to(info.device, copy=True)
    if info.world > 1:
        dist.all_reduce(out, op=op)
    return out.to(values.device)


def all_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (a copy on the input's device; the input is untouched)."""
    return _reduce(values, info, dist.ReduceOp.SUM)


def all_max(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Elementwise maximum over ranks (a copy on the input's device)."""
    return _reduce(values, info, dist.ReduceOp.MAX)


def max_count(n: int, info: DistInfo) -> int:
    """The largest `n` over ranks: how many collective-issuing passes every rank must run."""
    if info.world == 1:
        return n
    return int(all_max(torch.tensor([n], dtype=torch.int64), info).item())


def sum_gradients_(model: torch.nn.Module, info: DistInfo) -> None:
    """In place, every parameter's gradient becomes its sum over ranks (missing grads: zeros).

    The replicated path (`train.fsdp=off` with several processes); FSDP2 sums in its own
    reduce-scatter instead.
    """
    if info.world == 1:
        return
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


def broadcast_parameters_(model: torch.nn.Module, info: DistInfo) -> None:
    """Start every rank from rank 0's weights (replicated path; parameters on `info.device`)."""
    if info.world == 1:
        return
    with torch.no_grad():
        for p in model.parameters():
            dist.broadcast(p.data, src=0)


def check_same_weights(model: torch.nn.Module, info: DistInfo) -> None:
    """Raise unless every rank loaded the same weights (before sharding: each rank then keeps
    its slice of its own copy). Compares per-tensor float64 sums, max against min over ranks."""
    if info.world == 1:
        return
    sums = torch.stack([p.detach().double().sum() for p in model.parameters()])
    if not torch.equal(all_max(sums, info), -all_max(-sums, info)):
        raise RuntimeError("the ranks loaded different weights (model.path or model.seed differ)")
