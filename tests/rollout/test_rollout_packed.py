"""The learner's packed response pass: the same log-probs, entropies and gradients as the model's
own full forward (Llama and Qwen2, fused and unfused, ragged rows, wrapped projections)."""

from __future__ import annotations

import pytest
import torch
from controlled_lm import Doubled
from rounding import (
    assert_grads_close,
    entropy_tolerance,
    grad_terms,
    largest_logprob,
    logprob_tolerance,
)

import t1.rollout.fastpath as fastpath
import t1.rollout.logprobs as logprobs
from t1.config import TinyModelConfig
from t1.models import build_tiny_model
from t1.rollout import Rollout, collate_rollouts, compute_logprobs
from t1.rollout.fastpath import supports_packed_learner

SMALL = dict(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64)


def ragged_batch(pad_id: int, k: int = 3):
    """Three prompts of different lengths (left padding) x k responses of lengths 0 .. 9."""
    gen = torch.Generator().manual_seed(4)
    rows, lengths = [], iter([9, 1, 5, 0, 9, 2, 7, 3, 9, 4, 6, 8])
    for i, p in enumerate((3, 6, 1)):
        prompt = torch.randint(6, 90, (p,), generator=gen).tolist()
        for _ in range(k):
            n = next(lengths)
            response = torch.randint(6, 90, (n,), generator=gen).tolist()
            rows.append(Rollout(i, prompt, response, [0.0] * n, "stop", ""))
    return collate_rollouts(rows, pad_id)


def model_for(tokenizer, arch: str):
    model = build_tiny_model(tokenizer, TinyModelConfig(arch=arch, **SMALL), seed=1)
    if arch == "qwen2":  # give the q/k/v biases Qwen2 has (zero at init) a value
        for block in model.model.layers:
            torch.nn.init.normal_(block.self_attn.q_proj.bias, std=0.5)
            torch.nn.init.normal_(block.self_attn.k_proj.bias, std=0.5)
    return model.train()


T = 1.3


def logprobs_and_grads(model, batch, micro_batch_size: int, share: bool):
    model.zero_grad(set_to_none=True)
    logp, ent = compute_logprobs(model, batch, T, micro_batch_size, True, share_prompts=share)
    (logp.sum() - 0.1 * ent.sum()).backward()
    return logp.detach(), ent.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


def assert_same(model, batch, a, b):
    """Two passes' log-probs, entropies and gradients within the float32 bounds of
    tests/rounding.py: n roundings at magnitude m differ by <= n·EPS32·m."""
    d = logprob_tolerance(model, batch.input_ids, T)  # n: logprob_terms, m: path_magnitude
    L, V = largest_logprob(model, batch.input_ids, T), model.config.vocab_size
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=d)
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=entropy_tolerance(d, L, V))
    # gradient entries of Σ log p − 0.1·Σ H: a path forward and back, the entropy's sum over the
    # vocabulary, then a sum over the N·P positions of the batch
    N, P = batch.input_ids.shape
    assert_grads_close(a[2], b[2], grad_terms(model.config, P, N * P) + V)


@pytest.mark.numerics
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("micro_batch_size", [4, 9])
def test_packed_equals_full_pass(tiny_tokenizer, arch, fused, micro_batch_size, monkeypatch):
    model = model_for(tiny_tokenizer, arch)
    if not fused:
        monkeypatch.setattr(fastpath, "FUSE_MAX_PARAMS", 0)
    batch = ragged_batch(tiny_tokenizer.pad_token_id)
    assert supports_packed_learner(model)
    calls = []
    packed = logprobs.packed_response_hidden
    monkeypatch.setattr(
        logprobs, "packed_response_hidden", lambda *a: calls.append(1) or packed(*a)
    )
    full = logprobs_and_grads(model, batch, micro_batch_size, share=False)
    assert not calls
    # micro-batches of 4 hold rows of two prompts, one of them once: packed all the same
    assert_same(model, batch, logprobs_and_grads(model, batch, micro_batch_size, share=True), full)
    assert len(calls) == -(-len(batch) // micro_batch_size)


@pytest.mark.numerics
def test_packed_hidden_states_are_the_decoders_at_the_response_tokens(tiny_tokenizer):
    model = model_for(tiny_tokenizer, "llama")
    batch = ragged_batch(tiny_tokenizer.pad_token_id)
    args = (batch.input_ids, batch.attention_mask, batch.position_ids, batch.prompt_len)
    R = batch.response_mask.shape[1]
    with torch.no_grad():
        packed, where = logprobs.shared_prompt_hidden(model, *args, R, batch.response_mask)
        dense, index = logprobs.response_hidden(model, *args, R, batch.response_mask)
    # every response token once (rows with no response, padding: none), in another order
    assert (
        sorted(where.tolist())
        == index.tolist()
        == batch.response_mask.flatten().nonzero()[:, 0].tolist()
    )
    order = where.argsort()
    # two paths to a hidden state: within a log-prob's bound (tests/rounding.py), which counts
    # the same terms and the head's besides
    atol = logprob_tolerance(model, batch.input_ids)
    torch.testing.assert_close(packed[order], dense, rtol=0, atol=atol)


@pytest.mark.numerics
def test_wrapped_projections_get_their_gradients(tiny_tokenizer):
    model = model_for(tiny_tokenizer, "llama")
    for block in model.model.layers:
        block.self_attn.v_proj = Doubled(block.self_attn.v_proj)
        block.mlp.gate_proj = Doubled(block.mlp.gate_proj)
    batch = ragged_batch(tiny_tokenizer.pad_token_id)
    full = logprobs_and_grads(model, batch, 9, share=False)
    assert_same(model, batch, logprobs_and_grads(model, batch, 9, share=True), full)


def test_attention_dropout_in_training_takes_the_models_forward(tiny_tokenizer):
    model = model_for(tiny_tokenizer, "llama")
    model.config.attention_dropout = 0.1
    assert not supports_packed_learner(model)  # the lean pass has no dropout
    assert supports_packed_learner(model.eval())  # no dropout at evaluation
    assert not supports_packed_learner(torch.nn.Linear(2, 2))


@pytest.mark.numerics
def test_bfloat16_packed_pass_is_as_close_to_float32_as_the_full_pass(tiny_tokenizer):
    ref_model = model_for(tiny_tokenizer, "llama")
    batch = ragged_batch(tiny_tokenizer.pad_token_id)
    ref = logprobs_and_grads(ref_model, batch, 9, share=False)
    model = model_for(tiny_tokenizer, "llama").to(torch.bfloat16)
    model.load_state_dict({k: v.to(torch.bfloat16) for k, v in ref_model.state_dict().items()})

    def error(share: bool) -> float:  # worst relative gradient error over the parameters
        grads = logprobs_and_grads(model, batch, 9, share)[2]
        return max(((grads[k].float() - r).norm() / r.norm()).item() for k, r in ref[2].items())

    full, packed = error(False), error(True)
    # bfloat16 keeps 8 significant bits: one rounding errs by <= 2^-8 = 0.4 %; the full pass's
    # gradients are within 0.1 = 25 such roundings' worth (it measured ~1 %). A pass that rounds
    # to bfloat16 where the full pass does has an error of the same size: each is a norm over
    # thousands of entries, so the two vary by a few percent between paths, SIMD widths and
    # thread counts, not 50 %. One that rounds more (say, sums in bfloat16) is larger.
    assert 0 < full < 0.1 and packed < 1.5 * full
