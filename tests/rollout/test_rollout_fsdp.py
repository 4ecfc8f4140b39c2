"""compute_logprobs on a model sharded with FSDP2 (`fully_shard` per decoder layer, then the
root; 2 processes, gloo): the chunked head's log-probs, entropies and gradients equal the
unsharded model's, through the model's own module calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_rollout_logprobs_head import ATOL, outputs, rms_norm_in_input_dtype
from test_rollout_packed import model_for, ragged_batch
from transformers.models.llama.modeling_llama import LlamaRMSNorm

import t1.rollout.logprobs as logprobs
from t1.config import TinyModelConfig
from t1.models import build_char_tokenizer
from t1.train.distributed import close_distributed

WORLD = 2
N_PARAMS = 2 * 9 + 2  # 9 tensors a layer (q, k, v, o, gate, up, down, 2 norms), embeddings, norm


def worker(rank: int, out: str) -> None:
    """Both ranks run the same batch, so FSDP2's averaged gradient is the one-process one."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(1)
    LlamaRMSNorm.forward = rms_norm_in_input_dtype  # float64 throughout (see that test)
    store = f"file://{Path(out, 'store')}"  # rendezvous through a file: no port to pick
    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=WORLD)
    try:
        tokenizer = build_char_tokenizer(TinyModelConfig().alphabet)
        batch = ragged_batch(tokenizer.pad_token_id)
        reference = model_for(tokenizer, "llama").double()
        sharded = model_for(tokenizer, "llama").double()  # the same seed: the same weights
        want = outputs(reference, batch, 4, share_prompts=False, chunked_head=False)
        mesh = init_device_mesh("cpu", (WORLD,))
        for layer in sharded.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(sharded, mesh=mesh)
        calls = []
        real = logprobs.head_logprobs
        logprobs.head_logprobs = lambda *a: calls.append(1) or real(*a)
        gaps = {}
        for share in (False, True):  # sharded: no lean packed pass, the cache pass with share
            logp, ent, _ = outputs(sharded, batch, 4, share_prompts=share)
            grads = [p.grad.full_tensor() for p in sharded.parameters()]
            gaps[f"share={share}"] = [
                (a - b).abs().max().item()
                for a, b in zip([logp, ent, *grads], [*want[:2], *want[2]])
            ]
        Path(out, f"{rank}.json").write_text(
            json.dumps({"gaps": gaps, "calls": len(calls), "class": type(sharded).__name__})
        )
    except BaseException:
        close_distributed(failed=True)
        raise
    close_distributed()  # a barrier first: no rank closes while the other still gathers


@pytest.mark.numerics
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built here")
def test_fsdp2_sharded_model_gives_the_unsharded_results(tmp_path):
    mp.spawn(worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        result = json.loads((tmp_path / f"{rank}.json").read_text())
        assert result["class"] == "FSDPLlamaForCausalLM"
        assert result["calls"] == 2 * 3  # the chunked head: 3 micro-batches, twice
        for gaps in result["gaps"].values():  # log-probs, entropies, every parameter's gradient
            assert len(gaps) == 2 + N_PARAMS
            # float64, ATOL derived in test_rollout_logprobs_head; FSDP2 averages the two ranks'
            # identical gradients: (g + g) / 2 = g exactly
            assert max(gaps) <= ATOL
