"""The learner update skips rows whose loss term is exactly 0 and nothing else changes."""

from __future__ import annotations

import pytest
import torch

from t1.models import build_char_tokenizer, build_tiny_model
from t1.rollout import HFEngine, SamplingParams, collate_rollouts
from t1.train.distributed import DistInfo
from t1.train.rl_update import LossSpec, accumulate_gradients, contributing_rows

ALPHABET = "0123456789abcdefghij ?"


def _spec(skip: bool = True, entropy_coef: float = 0.0, agg: str = "token-mean") -> LossSpec:
    return LossSpec(agg, None, entropy_coef, 1.0, 4, 6, skip_zero_advantage=skip)


def test_contributing_rows_by_hand():
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]])
    adv = torch.tensor([0.5, 0.0, 0.7, -0.2])
    # row 1 has A = 0, row 2 has no response tokens
    assert contributing_rows(adv, mask, _spec()).tolist() == [0, 3]
    # an entropy bonus has a gradient on every row; the switch turns skipping off
    assert contributing_rows(adv, mask, _spec(entropy_coef=0.01)).tolist() == [0, 1, 2, 3]
    assert contributing_rows(adv, mask, _spec(skip=False)).tolist() == [0, 1, 2, 3]
    # per-token advantages: a row runs when any of its tokens has A != 0
    per_token = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.3, 0.0], [0.0, 0.0, 0.0], [0.0] * 3])
    assert contributing_rows(per_token, mask, _spec()).tolist() == [1]
    # nothing to learn from: the shortest non-empty row still runs (zero gradients)
    assert contributing_rows(torch.zeros(4), mask, _spec()).tolist() == [1]
    assert contributing_rows(torch.zeros(0), mask[:0], _spec()).tolist() == []


@pytest.fixture(scope="module")
def rollout_batch():
    tok = build_char_tokenizer(ALPHABET)
    model = build_tiny_model(tok, seed=3)
    sp = SamplingParams(temperature=1.0, max_new_tokens=6, seed=5)
    rollouts = HFEngine(model, tok).generate(["12?", "ab", "3 4"], 4, sp)
    return model, collate_rollouts(rollouts, tok.pad_token_id)


def _grads(model, batch, adv, spec):
    model.zero_grad(set_to_none=True)
    old = torch.zeros_like(batch.response_mask, dtype=torch.float32)
    stats = accumulate_gradients(model, batch, old, adv, spec, DistInfo())
    return stats, {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "constant"])
def test_skipping_zero_advantages_leaves_the_gradient_unchanged(rollout_batch, agg, monkeypatch):
    import t1.train.rl_update as rl_update

    model, batch = rollout_batch
    # 3 prompts x 4 samples: the middle group's rewards were all equal (A = 0)
    adv = torch.tensor([0.5, -0.5, 0.25, -0.25, 0, 0, 0, 0, -0.75, 0.25, 0.25, 0.25])
    seen: list[int] = []
    real = rl_update.compute_logprobs

    def counting(model, mb, *args, **kwargs):
        seen.append(len(mb))
        return real(model, mb, *args, **kwargs)

    monkeypatch.setattr(rl_update, "compute_logprobs", counting)
    full_stats, full = _grads(model, batch, adv, _spec(skip=False, agg=agg))
    rows_full, seen[:] = sum(seen), []
    skip_stats, skipped = _grads(model, batch, adv, _spec(skip=True, agg=agg))
    assert rows_full == 12 and sum(seen) == 8  # the 4 rows with A = 0 never ran
    # bitwise by construction: with micro-batches of 4, both passes run rows 0-3 and 8-11 as
    # the same two micro-batches (same shapes, same thread count), and the full pass's third
    # one (rows 4-7, A = 0) adds exact zeros to the gradients and the loss
    assert full.keys() == skipped.keys()
    assert all(torch.equal(skipped[name], full[name]) for name in full)
    assert skip_stats["loss"] == full_stats["loss"]


def test_an_all_zero_batch_still_steps_the_optimiser_as_the_full_pass(rollout_batch):
    # AdamW moves the weights on a zero gradient (momentum, decay): every parameter the full
    # pass reaches must get its zero gradient, so the step is the same as after the full pass
    model, batch = rollout_batch
    signal, nothing = torch.linspace(-1, 1, len(batch)), torch.zeros(len(batch))
    weights = {}
    for skip in (False, True):
        m = build_tiny_model(build_char_tokenizer(ALPHABET), seed=3)
        m.load_state_dict(model.state_dict())
        opt = torch.optim.AdamW(m.parameters(), lr=0.1, weight_decay=0.1)
        _grads(m, batch, signal, _spec(skip=skip))  # a real step first: momentum
        opt.step()
        _, grads = _grads(m, batch, nothing, _spec(skip=skip))
        assert all(g is not None and float(g.abs().max()) == 0.0 for g in grads.values())
        opt.step()
        weights[skip] = {n: p.detach().clone() for n, p in m.named_parameters()}
    moved = {n: p for n, p in model.named_parameters()}
    assert any(not torch.equal(w, moved[n]) for n, w in weights[True].items())
    # bitwise by construction: no advantage of the first step is 0, so both runs take the same
    # first pass; the second step's gradients are exact zeros in both (asserted above). Equal
    # inputs, so AdamW's division by sqrt(v) + eps has no rounding difference to amplify.
    assert all(torch.equal(weights[True][name], w) for name, w in weights[False].items())
