"""vLLM on a GPU: sampling log-probs after a weight update equal the learner's; RL runs end to end.

Marked `gpu`: deselected by default and skipped, saying why, where CUDA or vLLM is missing.
    python -m pytest -m gpu tests/rollout/test_vllm_gpu.py
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vllm installed"),
]


def _model(tok):
    from t1.config import TinyModelConfig
    from t1.models import build_tiny_model

    cfg = TinyModelConfig(
        hidden_size=256,
        num_layers=4,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=512,
        max_position=512,
    )
    return build_tiny_model(tok, cfg, seed=0).cuda()


def test_logprobs_match_after_weight_update(tiny_tokenizer):
    from t1.config import RolloutConfig
    from t1.rollout import SamplingParams, collate_rollouts, compute_logprobs
    from t1.rollout.vllm import VLLMEngine

    model = _model(tiny_tokenizer)
    engine = VLLMEngine(
        RolloutConfig(engine="vllm", gpu_memory_utilization=0.3), model, tiny_tokenizer
    )
    with torch.no_grad():  # a learner step: weights the engine was not built with
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    engine.update_weights(model)
    sampling = SamplingParams(temperature=1.2, max_new_tokens=48, seed=0)
    rollouts = engine.generate(["<user>12+7=?<assistant>", "<user>hello<assistant>"], 8, sampling)
    batch = collate_rollouts(rollouts, tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        learner = compute_logprobs(model, batch.to("cuda"), temperature=1.2).cpu()
    R = batch.response_mask.shape[1]
    sampler = torch.tensor([r.logprobs + [0.0] * (R - len(r.logprobs)) for r in rollouts])
    m = batch.response_mask.bool()
    diff = (learner - sampler)[m].abs()
    # a stale engine (weights not synced) differs by ~0.1-1 nats per token
    assert diff.mean() < 0.01 and diff.max() < 0.1, (diff.mean(), diff.max())


def test_rl_steps_end_to_end_with_vllm(tmp_path, tiny_tokenizer):
    sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
    from rl_toy import toy_config, toy_problems

    from t1.train.rl import RLTrainer

    cfg = toy_config(
        str(tmp_path / "run"),
        "rollout.engine=vllm",
        "trainer.steps=3",
        "rollout.gpu_memory_utilization=0.3",
    )
    model = _model(tiny_tokenizer)
    trainer = RLTrainer(cfg, model, tiny_tokenizer, toy_problems(8))
    last = trainer.train()
    assert trainer.step == 3
    assert all(k in last for k in ("time/generate", "time/update", "reward/mean"))
