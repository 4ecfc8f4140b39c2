"""compute_logprobs with shared prompts: same log-probs, entropies and gradients as the full pass."""

from __future__ import annotations

import pytest
import torch
from controlled_lm import fixed_logits_model
from rounding import (
    assert_grads_close,
    entropy_tolerance,
    grad_terms,
    largest_logprob,
    logprob_tolerance,
)

from t1.rollout import HFEngine, Rollout, SamplingParams, collate_rollouts, compute_logprobs
from t1.rollout.logprobs import shared_prompt_logits, supports_shared_prompts

# mixed lengths: the batch has left padding; K = 4 rows per prompt, some stop early
PROMPTS = ["<user>1+1=?<assistant>", "<user>123*45=?<assistant>", "<user>7<assistant>"]


def rl_batch(model, tokenizer, k: int = 4, max_new_tokens: int = 12):
    sp = SamplingParams(temperature=1.2, max_new_tokens=max_new_tokens, seed=3)
    rollouts = HFEngine(model, tokenizer).generate(PROMPTS, k, sp)
    return collate_rollouts(rollouts, tokenizer.pad_token_id)


@pytest.mark.numerics
@pytest.mark.parametrize("micro_batch_size", [5, 16])
def test_shared_equals_full_pass(tiny_model, tiny_tokenizer, micro_batch_size):
    batch = rl_batch(tiny_model, tiny_tokenizer)
    assert (batch.attention_mask[:, 0] == 0).any()  # the test needs left padding
    tiny_model.train()
    outs, grads = {}, {}
    for share in (False, True):
        tiny_model.zero_grad(set_to_none=True)
        logp, ent = compute_logprobs(
            tiny_model, batch, 1.2, micro_batch_size, with_entropy=True, share_prompts=share
        )
        (logp.sum() - 0.1 * ent.sum()).backward()
        outs[share] = (logp.detach(), ent.detach())
        grads[share] = {k: p.grad.clone() for k, p in tiny_model.named_parameters()}
    # float32 bounds of tests/rounding.py (n roundings at magnitude m differ by <= n·EPS32·m):
    # a log-prob (n: logprob_terms, m: path_magnitude), an entropy, and gradient entries (a path
    # forward and back, the entropy's sum over the vocabulary, a sum over the N·P positions)
    d = logprob_tolerance(tiny_model, batch.input_ids, 1.2)
    L, V = largest_logprob(tiny_model, batch.input_ids, 1.2), tiny_model.config.vocab_size
    torch.testing.assert_close(outs[True][0], outs[False][0], rtol=0, atol=d)
    torch.testing.assert_close(
        outs[True][1], outs[False][1], rtol=0, atol=entropy_tolerance(d, L, V)
    )
    N, P = batch.input_ids.shape
    assert_grads_close(grads[True], grads[False], grad_terms(tiny_model.config, P, N * P) + V)


@pytest.mark.numerics
def test_shared_path_is_taken_and_skipped_when_nothing_repeats(tiny_model, tiny_tokenizer):
    batch = rl_batch(tiny_model, tiny_tokenizer, k=2, max_new_tokens=1)  # R = 1: prompt pass only
    args = (batch.input_ids, batch.attention_mask, batch.position_ids, batch.prompt_len)
    with torch.no_grad():
        logits = shared_prompt_logits(tiny_model, *args, batch.response_mask.shape[1])
        assert logits is not None and logits.shape[:2] == batch.response_mask.shape
        one_of_each = [0, 2, 4]  # rows of three different prompts
        picked = [a[one_of_each] if torch.is_tensor(a) else a for a in args]
        assert shared_prompt_logits(tiny_model, *picked, 1) is None
        full = compute_logprobs(tiny_model, batch, 1.0, share_prompts=False)
        shared = compute_logprobs(tiny_model, batch, 1.0)
    # two paths to a log-prob: tests/rounding.py's bound (n: logprob_terms, m: path_magnitude)
    atol = logprob_tolerance(tiny_model, batch.input_ids)
    torch.testing.assert_close(full, shared, rtol=0, atol=atol)


def test_models_without_a_usable_cache_take_the_full_pass(tiny_model, tiny_tokenizer):
    assert supports_shared_prompts(tiny_model)
    enable = getattr(tiny_model, "activation_checkpointing_enable", None)
    (enable or tiny_model.gradient_checkpointing_enable)()
    assert not supports_shared_prompts(tiny_model)  # checkpointed layers drop the cache
    # a stand-in that ignores its cache: the shared pass notices the empty cache and falls back
    model = fixed_logits_model(tiny_tokenizer, {"a": 1.0, "b": 0.0})
    a = tiny_tokenizer.convert_tokens_to_ids("a")
    rows = [Rollout(0, [a, a], [a, a, a], [0.0] * 3, "stop", "") for _ in range(3)]
    logp = compute_logprobs(model, collate_rollouts(rows, 0), 1.0)
    # log(e / (e + 1)) = −0.313262 to 6 digits; 1e-4 covers the 4-digit hand value
    assert logp.shape == (3, 3) and torch.allclose(logp, torch.full((3, 3), -0.3133), atol=1e-4)
