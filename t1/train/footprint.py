"""What the learner holds, reported when a run starts: printed and written to `RUN/learner.json`.

    parameters, trainable      counts over the whole model (a sharded parameter counted whole)
    bytes (this rank's):
      weights                  every parameter's local shard (a LoRA base in the compute dtype)
      trainable                the trained parameters' shards (all of them, or the adapters)
      gradients                one per trained parameter, in its dtype
      optimizer                AdamW: exp_avg and exp_avg_sq shaped like each trained
                               parameter's shard, and a 4-byte step count per parameter
      anchor                   the EMA anchor: a full copy's shards, or the EMA adapters

The optimizer's states are created at its first step; `optimizer_bytes` measures them then
(tests check that the figure reported at the start is what AdamW allocates).
"""

from __future__ import annotations

from typing import Any

import torch

from t1.models.lora import spec_of
from t1.models.sharded import local
from t1.train.anchor import anchor_bytes

MIB = 2**20


def _bytes(t: torch.Tensor) -> int:
    return local(t).numel() * t.element_size()


def learner_footprint(model: torch.nn.Module, anchor: Any = None) -> dict[str, Any]:
    """Counts and this rank's bytes (module docstring), JSON-ready."""
    params = list(model.parameters())
    trained = [p for p in params if p.requires_grad]
    total, n_trained = sum(p.numel() for p in params), sum(p.numel() for p in trained)
    spec = spec_of(model)
    return {
        "parameters": total,
        "trainable": n_trained,
        "trainable_share": n_trained / max(total, 1),
        "lora": {"rank": spec.rank, "alpha": spec.alpha, "target_modules": spec.target_modules}
        if spec
        else None,
        "bytes_per_rank": {
            "weights": sum(_bytes(p) for p in params),
            "trainable": sum(_bytes(p) for p in trained),
            "gradients": sum(_bytes(p) for p in trained),
            "optimizer": sum(2 * _bytes(p) + 4 for p in trained),
            "anchor": anchor_bytes(anchor),
        },
    }


def optimizer_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the optimizer's state tensors on this rank (0 before its first step)."""
    return sum(
        _bytes(v)
        for state in optimizer.state.values()
        for v in state.values()
        if torch.is_tensor(v)
    )


def describe(footprint: dict[str, Any]) -> str:
    """One line: trainable share and this rank's bytes in MiB."""
    b = footprint["bytes_per_rank"]
    lora = footprint["lora"]
    what = f"LoRA rank {lora['rank']}" if lora else "full weights"
    return (
        f"{what}: {footprint['trainable']:,} trainable of {footprint['parameters']:,} "
        f"parameters ({100 * footprint['trainable_share']:.2f} %); per rank: weights "
        f"{b['weights'] / MIB:.1f} MiB, gradients {b['gradients'] / MIB:.1f} MiB, AdamW states "
        f"{b['optimizer'] / MIB:.1f} MiB, anchor {b['anchor'] / MIB:.1f} MiB"
    )
