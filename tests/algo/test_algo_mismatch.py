"""Sampler/learner mismatch and truncated importance-sampling weights, against hand computation.

Log-probs are dyadic fractions (sums of powers of two), so every difference, sum and mean below
is exact in float32 and compared with `==`; only exp() is rounded (see its tolerance).
"""

from __future__ import annotations

import math

import pytest
import torch

from t1.algo import logp_mismatch, policy_loss, truncated_is_weights

NAN, INF = float("nan"), float("inf")

# two responses: three real tokens, then one real token and two padding positions
SAMPLER = torch.tensor([[-1.0, -2.0, -0.5], [-0.25, 0.0, 0.0]])
LEARNER = torch.tensor([[-1.5, -1.0, -0.5], [-0.125, INF, NAN]])
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


def test_mismatch_is_mean_and_max_absolute_difference_over_real_tokens():
    out = logp_mismatch(SAMPLER, LEARNER, MASK)
    # |−1 − (−1.5)| = 0.5, |−2 − (−1)| = 1, |−0.5 − (−0.5)| = 0, |−0.25 − (−0.125)| = 0.125
    assert out["abs_sum"].item() == 1.625  # 0.5 + 1 + 0 + 0.125
    assert out["tokens"].item() == 4
    assert out["abs_mean"].item() == 0.40625  # 1.625 / 4
    assert out["abs_max"].item() == 1.0  # the inf and nan on padding are ignored


def test_mismatch_of_identical_log_probs_is_zero_and_empty_mask_is_zero():
    same = logp_mismatch(SAMPLER, SAMPLER, MASK)
    assert same["abs_mean"].item() == 0.0 and same["abs_max"].item() == 0.0
    empty = logp_mismatch(SAMPLER, LEARNER, torch.zeros_like(MASK))
    assert empty["abs_mean"].item() == 0.0 and empty["tokens"].item() == 0


def test_truncated_weights_are_capped_ratios_and_zero_on_padding():
    w = truncated_is_weights(LEARNER, SAMPLER, MASK, cap=2.0)
    # ℓ = learner − sampler = −0.5, +1, 0, +0.125; w = min(e^ℓ, 2)
    expected = [[math.exp(-0.5), 2.0, 1.0], [math.exp(0.125), 0.0, 0.0]]
    # float32 exp is within 1 ulp (2^-23 relative) of the true value, and the double reference
    # rounds to float32 within half an ulp: 2 ulps (2^-22 ≈ 2.4e-7) bound the difference
    torch.testing.assert_close(w, torch.tensor(expected), rtol=2**-22, atol=0)
    assert w[0, 1].item() == 2.0  # e^1 = 2.718… capped exactly at C
    assert w[0, 2].item() == 1.0  # equal log-probs: weight exactly 1


def test_truncated_weights_survive_overflow_and_reject_a_bad_cap():
    w = truncated_is_weights(torch.tensor([[0.0]]), torch.tensor([[-200.0]]), torch.ones(1, 1), 3.0)
    assert w.item() == 3.0  # e^200 overflows float32 to inf; the cap still gives C
    with pytest.raises(ValueError, match="cap must be > 0"):
        truncated_is_weights(LEARNER, SAMPLER, MASK, cap=0.0)
    with pytest.raises(ValueError, match="shapes must match"):
        truncated_is_weights(LEARNER, SAMPLER[:, :2], MASK, cap=2.0)


def test_weights_multiply_each_tokens_term_and_gradient():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    weight = torch.tensor([[0.5, 2.0]])
    loss, _ = policy_loss(logp, logp.detach(), torch.tensor([2.0]), torch.ones(1, 2), weight=weight)
    # ℓ_t = −A·w_t·log π: −2·0.5·(−1) = 1, −2·2·(−2) = 8; token mean 4.5
    assert loss.item() == 4.5
    loss.backward()
    # ∂/∂log π_t = −A·w_t / 2 tokens = −0.5, −2
    assert logp.grad.tolist() == [[-0.5, -2.0]]


def test_ppo_form_with_weights_has_the_reinforce_gradient_on_policy():
    grads = []
    for clip in (None, 0.2):
        logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
        loss, _ = policy_loss(
            logp,
            logp.detach(),
            torch.tensor([2.0]),
            torch.ones(1, 2),
            clip_eps=clip,
            weight=torch.tensor([[0.5, 2.0]]),
        )
        loss.backward()
        grads.append(logp.grad.tolist())
    # ρ = 1 on-policy and ∇ρ = ρ·∇log π: the same −A·w_t/2 per token, exactly
    assert grads[0] == grads[1] == [[-0.5, -2.0]]


def test_weight_on_padding_changes_nothing():
    logp = torch.tensor([[-1.0, -2.0]])
    mask = torch.tensor([[1, 0]])
    plain, _ = policy_loss(logp, logp, torch.tensor([1.0]), mask)
    weighted, _ = policy_loss(
        logp, logp, torch.tensor([1.0]), mask, weight=torch.tensor([[1.0, NAN]])
    )
    assert plain.item() == weighted.item() == 1.0  # −1·(−1) over one real token
