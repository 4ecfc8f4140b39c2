"""The vLLM engine (its double, vllm_double.py) fed by a LoRA policy: it receives the merged
weights under the names its model has, and samples the adapted policy's distribution."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
import vllm_double  # noqa: E402
from rounding import bound, logprob_terms, path_magnitude  # noqa: E402

from t1.config import LoraConfig, ModelConfig, RolloutConfig  # noqa: E402
from t1.models.lora import add_adapters  # noqa: E402
from t1.rollout import SamplingParams, collate_rollouts, compute_logprobs, make_engine  # noqa: E402

pytest.importorskip("peft", reason="LoRA needs the `lora` extra (peft); CI installs it")

PROMPTS = ["<user>12+7=?<assistant>", "<user>hello<assistant>"]
RANK = 4


@pytest.fixture
def double(monkeypatch):
    with vllm_double.without_launcher_env():
        yield vllm_double.install(monkeypatch)


def test_vllm_receives_merged_weights_and_samples_the_adapted_policy(
    double, tiny_model, tiny_tokenizer
):
    model = add_adapters(tiny_model, LoraConfig(rank=RANK, alpha=8.0), ModelConfig(), seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # trained adapters: B away from 0
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the double warns about any weight it did not receive
        engine = make_engine(RolloutConfig(engine="vllm"), model, tiny_tokenizer)
    worker = vllm_double.state(vllm_double.state(engine.llm).worker)
    assert worker.loaded == [n for n, _ in worker.model.named_parameters()]  # every base name
    sampling = SamplingParams(temperature=1.2, max_new_tokens=12, seed=5)
    rollouts = engine.generate(PROMPTS, 3, sampling)
    batch = collate_rollouts(rollouts, tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        learner = compute_logprobs(model, batch, 1.2)
    R, m = batch.response_mask.shape[1], batch.response_mask.bool()
    sampler = torch.tensor([r.logprobs + [0.0] * (R - len(r.logprobs)) for r in rollouts])
    # two float32 evaluations (tests/rounding.py): the model's terms over the longest row, and
    # per adapted projection the adapter's A x, B (A x), scaling and add (and the merged
    # weight's r-term sums); at the adapted model's largest magnitude, over T = 1.2 > 1
    c = model.config
    n = logprob_terms(c, batch.input_ids.shape[1])
    n += c.num_hidden_layers * 7 * (c.hidden_size + c.intermediate_size + 2 * RANK + 3)
    atol = bound(n, path_magnitude(model, batch.input_ids))
    assert float((learner - sampler)[m].abs().max()) <= atol
    engine.close()
