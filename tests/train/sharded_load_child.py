"""Child of test_sharded_load.py: two gloo ranks load each model folder of CASES twice, by the
bounded path (`load_learner`: meta device, FSDP2, slices read from the files) and by the full
path (`load_model` whole on CPU, then `prepare_learner`), and write what they hold.

    python -m torch.distributed.run --nproc_per_node=2 sharded_load_child.py CASES.json OUT

CASES.json: a list of {"name", "path", "dtype", "overrides"}. OUT/NAME-rank-R.safetensors holds
each path's local slices ("bounded.*", "full.*") and buffers; OUT/NAME-rank-R.json the
parameter names, whether each path was the one expected, and the generation config's eos ids.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import t1.train.sharded_load as sharded_load
from t1.config import ModelConfig, TrainConfig
from t1.models import load_model
from t1.models.sharded import is_sharded, local_shards
from t1.train.distributed import close_distributed, init_distributed
from t1.train.sharding import prepare_learner


def tensors(model: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    names = [n for n, _ in model.named_parameters()]
    out = {f"{prefix}.{n}": t.detach().clone() for n, t in zip(names, local_shards(model))}
    out.update({f"{prefix}.buffer.{n}": b.detach().clone() for n, b in model.named_buffers()})
    return out


def main(cases_file: Path, out: Path) -> None:
    info = init_distributed("cpu")
    train = TrainConfig()
    for case in json.loads(cases_file.read_text()):
        model_cfg = ModelConfig(path=case["path"], dtype=case["dtype"], device="cpu")
        for key, value in case.get("overrides", {}).items():
            setattr(train, key, value)
        bounded_took = sharded_load.load_sharded(model_cfg, train, info) is not None
        bounded, _ = sharded_load.load_learner(model_cfg, train, info)
        bounded = prepare_learner(bounded, train, case["dtype"], info)  # as `t1 rl` does
        full, _ = load_model(model_cfg)
        full = prepare_learner(full, train, case["dtype"], info)
        record = {
            "bounded_path": bounded_took,
            "sharded": is_sharded(bounded) and is_sharded(full),
            "names": [n for n, _ in bounded.named_parameters()],
            "full_names": [n for n, _ in full.named_parameters()],
            "dtypes": sorted({str(p.dtype) for p in bounded.parameters()}),
            "eos": [bounded.generation_config.eos_token_id, full.generation_config.eos_token_id],
            "tied": bounded.lm_head.weight is bounded.model.embed_tokens.weight,
            "full_tied": full.lm_head.weight is full.model.embed_tokens.weight,
        }
        stem = f"{case['name']}-rank-{info.rank}"
        (out / f"{stem}.json").write_text(json.dumps(record))
        save_file({**tensors(bounded, "bounded"), **tensors(full, "full")}, out / f"{stem}.st")
        train = TrainConfig()
    close_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
