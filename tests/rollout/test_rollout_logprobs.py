"""compute_logprobs: equals the sampler's log-probs, a naive reference, and is padding-invariant."""

from __future__ import annotations

import math

import pytest
import torch
from controlled_lm import fixed_logits_model
from rounding import entropy_tolerance, largest_logprob, logprob_tolerance

from t1.rollout import HFEngine, Rollout, SamplingParams, collate_rollouts, compute_logprobs

PROMPTS = ["<user>1+1=?<assistant>", "<user>123*45=?<assistant>", "<user>7<assistant>"]


def engine_logps(rollouts: list[Rollout], R: int) -> torch.Tensor:
    out = torch.zeros(len(rollouts), R)
    for i, r in enumerate(rollouts):
        out[i, : len(r.logprobs)] = torch.tensor(r.logprobs)
    return out


@pytest.mark.numerics
@pytest.mark.parametrize("temperature, top_p", [(1.2, 1.0), (0.7, 0.9)])
def test_engine_logprobs_equal_learner_recompute(tiny_model, tiny_tokenizer, temperature, top_p):
    # mixed prompt lengths, batch_size 5 (padding inside the engine's batches), rows that stop early
    sp = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=24, seed=1)
    rollouts = HFEngine(tiny_model, tiny_tokenizer, batch_size=5).generate(PROMPTS, 4, sp)
    batch = collate_rollouts(rollouts, tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        logp = compute_logprobs(tiny_model, batch, temperature=temperature, micro_batch_size=5)
    expected = engine_logps(rollouts, logp.shape[1])
    # the engine's decode pass and the learner's pass: two paths to a log-prob, within
    # tests/rounding.py's bound (n: logprob_terms, m: path_magnitude over T when T < 1)
    atol = logprob_tolerance(tiny_model, batch.input_ids, temperature)
    torch.testing.assert_close(logp, expected, rtol=0, atol=atol)


def naive_logps(model, prompt: list[int], response: list[int], T: float) -> torch.Tensor:
    """Reference: one unpadded sequence, full forward, log softmax(logits / T)."""
    ids = torch.tensor([prompt + response])
    logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1] / T  # (R, V)
    return logits.log_softmax(-1).gather(-1, torch.tensor(response)[:, None]).squeeze(-1)


@pytest.mark.numerics
def test_padding_invariance_and_naive_reference(tiny_model, tiny_tokenizer):
    enc = [tiny_tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    responses = [[10, 11, 12], [13, 14, 15, 16, 17, 18, 19], [20]]
    rollouts = [Rollout(i, enc[i], r, [0.0] * len(r), "stop", "") for i, r in enumerate(responses)]
    batch = collate_rollouts(rollouts, 0)
    # padded or alone or naive: three paths to a log-prob, within tests/rounding.py's bound
    atol = logprob_tolerance(tiny_model, batch.input_ids, 1.3)
    with torch.no_grad():
        together = compute_logprobs(tiny_model, batch, temperature=1.3)
        for i, r in enumerate(rollouts):
            alone = compute_logprobs(tiny_model, collate_rollouts([r], 0), temperature=1.3)
            ref = naive_logps(tiny_model, enc[i], responses[i], 1.3)
            n = len(responses[i])
            torch.testing.assert_close(together[i, :n], alone[0], rtol=0, atol=atol)
            torch.testing.assert_close(alone[0], ref, rtol=0, atol=atol)
            assert together[i, n:].abs().sum() == 0  # padded positions are exactly 0


@pytest.mark.numerics
def test_micro_batch_size_does_not_change_result(tiny_model, tiny_tokenizer):
    rollouts = HFEngine(tiny_model, tiny_tokenizer).generate(
        PROMPTS, 2, SamplingParams(max_new_tokens=10, seed=0)
    )
    batch = collate_rollouts(rollouts, tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        a, ha = compute_logprobs(tiny_model, batch, micro_batch_size=1, with_entropy=True)
        b, hb = compute_logprobs(tiny_model, batch, micro_batch_size=16, with_entropy=True)
    # other batch shapes, other kernels: within tests/rounding.py's bounds
    d = logprob_tolerance(tiny_model, batch.input_ids)
    L, V = largest_logprob(tiny_model, batch.input_ids, 1.0), tiny_model.config.vocab_size
    torch.testing.assert_close(a, b, rtol=0, atol=d)
    torch.testing.assert_close(ha, hb, rtol=0, atol=entropy_tolerance(d, L, V))


def test_entropy_of_known_distribution(tiny_tokenizer):
    # logits (2, 1, 0, -1, -2) over a..e at T = 2: p = .4287 .2600 .1577 .0957 .0580
    # H = -sum p log p = .3630 + .3503 + .2912 + .2245 + .1652 = 1.3942
    model = fixed_logits_model(tiny_tokenizer, {"a": 2.0, "b": 1.0, "c": 0.0, "d": -1.0, "e": -2.0})
    a = tiny_tokenizer.convert_tokens_to_ids("a")
    batch = collate_rollouts([Rollout(0, [a, a], [a, a, a], [0.0] * 3, "stop", "")], 0)
    logp, ent = compute_logprobs(model, batch, temperature=2.0, with_entropy=True)
    # the hand values have 4 digits: H sums 5 of them (<= 2.5e-4 off), log .4287 is <= 1.2e-4 off
    assert ent[0].tolist() == pytest.approx([1.3942] * 3, abs=1e-3)
    assert logp[0].tolist() == pytest.approx([math.log(0.4287)] * 3, abs=1e-3)


def test_gradient_flows_through_logprobs_and_entropy(tiny_model, tiny_tokenizer):
    rollouts = HFEngine(tiny_model, tiny_tokenizer).generate(
        PROMPTS[:1], 2, SamplingParams(max_new_tokens=6, seed=0)
    )
    batch = collate_rollouts(rollouts, tiny_tokenizer.pad_token_id)
    logp, ent = compute_logprobs(tiny_model, batch, temperature=1.2, with_entropy=True)
    assert logp.requires_grad and ent.requires_grad
    (logp.sum() + ent.sum()).backward()
    grads = [p.grad for p in tiny_model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_bad_temperature_is_an_error(tiny_model):
    batch = collate_rollouts([Rollout(0, [1], [2], [0.0], "stop", "")], 0)
    with pytest.raises(ValueError, match="temperature"):
        compute_logprobs(tiny_model, batch, temperature=0.0)
