"""Child of test_rollout_weights.py: `iter_full_weights` on an FSDP2-sharded tiny Llama.

Run by `torch.distributed.run --nproc_per_node=2` (gloo, CPU): every rank shards the same
seeded model with `fully_shard` (each decoder layer, then the root, as DESIGN.md's learner),
runs the iterator in float32 and in bfloat16, and saves what it received to OUT/rank-R.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from t1.config import TinyModelConfig
from t1.models import build_char_tokenizer, build_tiny_model
from t1.rollout.weights import iter_full_weights
from t1.train.distributed import close_distributed

# odd sizes: 3 kv heads x 12 and a 50-row MLP do not split evenly over 2 ranks (FSDP2 pads)
SHARDED = TinyModelConfig(
    hidden_size=36, num_layers=2, num_heads=3, num_kv_heads=3, intermediate_size=50
)


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model = build_tiny_model(build_char_tokenizer(SHARDED.alphabet), SHARDED, seed=0)
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    sharded = [n for n, p in model.named_parameters() if isinstance(p, DTensor)]
    full = [(n, t.clone()) for n, t in iter_full_weights(model)]
    half = [(n, t.clone()) for n, t in iter_full_weights(model, dtype=torch.bfloat16)]
    torch.save({"sharded": sharded, "full": full, "bf16": half}, out / f"rank-{rank}.pt")
    close_distributed()  # a barrier first: no rank closes while the other still gathers


if __name__ == "__main__":
    main(Path(sys.argv[1]))
