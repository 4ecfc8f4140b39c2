"""Advantage estimators: hand-computed groups, loop references, the T1 KL term's detachment."""

from __future__ import annotations

import statistics

import pytest
import torch

from t1.algo import (
    ADVANTAGES,
    group_advantages,
    mean_baseline_advantages,
    rloo_advantages,
    t1_advantages,
)


def _rloo_loop(rewards: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(rewards)
    b, k = rewards.shape
    for i in range(b):
        for j in range(k):
            others = [rewards[i, m].item() for m in range(k) if m != j]
            out[i, j] = rewards[i, j] - sum(others) / len(others)
    return out


def test_rloo_hand_computed() -> None:
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 1.0, 0.0, 0.5]])
    # row 0: 1 − (0+0+1)/3 = 2/3; 0 − (1+0+1)/3 = −2/3
    # row 1: 0.5 − (1+0+0.5)/3 = 0; 1 − (0.5+0+0.5)/3 = 2/3; 0 − (0.5+1+0.5)/3 = −2/3
    expected = torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3], [0.0, 2 / 3, -2 / 3, 0.0]])
    torch.testing.assert_close(rloo_advantages(rewards), expected)


def test_rloo_matches_loop_and_scaled_mean_form() -> None:
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(6, 5, generator=g, dtype=torch.float64)
    adv = rloo_advantages(rewards)
    torch.testing.assert_close(adv, _rloo_loop(rewards))
    # identity: r_i − mean_{j≠i} r_j = K/(K−1)·(r_i − mean_j r_j); K = 5
    torch.testing.assert_close(adv, 5 / 4 * (rewards - rewards.mean(1, keepdim=True)))
    torch.testing.assert_close(adv.sum(1), torch.zeros(6, dtype=torch.float64))


def test_group_advantages_hand_computed() -> None:
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    # mean 0.5; unbiased std = sqrt(4·0.25/3) = sqrt(1/3) = 0.5773503; 0.5/0.5773503 = 0.8660254
    expected = torch.tensor([[0.8660254, -0.8660254, -0.8660254, 0.8660254]])
    # 7-digit hand values (<= 5e-8 off); mean, std and quotient: ~12 float32 roundings at
    # magnitude <= 1 (<= 1.4e-6)
    torch.testing.assert_close(group_advantages(rewards), expected, atol=1e-5, rtol=0)
    # Dr. GRPO: r − mean = ±0.5
    torch.testing.assert_close(
        group_advantages(rewards, scale=False), torch.tensor([[0.5, -0.5, -0.5, 0.5]])
    )
    torch.testing.assert_close(mean_baseline_advantages(rewards), rewards - 0.5)


def test_group_advantages_match_loop() -> None:
    g = torch.Generator().manual_seed(1)
    rewards = torch.rand(4, 6, generator=g, dtype=torch.float64)
    expected = torch.empty_like(rewards)
    for i, row in enumerate(rewards.tolist()):
        mu, sd = statistics.mean(row), statistics.stdev(row)
        expected[i] = torch.tensor([(r - mu) / (sd + 1e-6) for r in row])
    torch.testing.assert_close(group_advantages(rewards), expected)


def test_uniform_group_gives_zero_advantage() -> None:
    # all-equal rewards: std 0, so (r − mean)/(0 + eps) = 0/eps = 0, never nan
    rewards = torch.ones(2, 4)
    for fn in ADVANTAGES.values():
        torch.testing.assert_close(fn(rewards), torch.zeros(2, 4))


def test_t1_advantages_hand_computed() -> None:
    rewards = torch.tensor([[1.0, 0.0, 0.0]])
    seq_kl = torch.tensor([[0.3, 0.0, 0.6]])
    # RLOO rewards: 1 − 0 = 1; 0 − (1+0)/2 = −0.5; −0.5
    # RLOO KL: 0.3 − (0+0.6)/2 = 0; 0 − (0.3+0.6)/2 = −0.45; 0.6 − (0.3+0)/2 = 0.45
    # beta 0.5: [1 − 0, −0.5 + 0.225, −0.5 − 0.225]
    expected = torch.tensor([[1.0, -0.275, -0.725]])
    torch.testing.assert_close(t1_advantages(rewards, seq_kl, beta=0.5), expected)


def test_t1_advantages_carry_no_gradient_through_kl() -> None:
    seq_kl = torch.tensor([[0.3, 0.0, 0.6], [1.0, 2.0, 4.0]], requires_grad=True)
    rewards = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    adv = t1_advantages(rewards, seq_kl, beta=0.1)
    assert not adv.requires_grad
    # beta = 0 reduces to RLOO
    torch.testing.assert_close(t1_advantages(rewards, seq_kl, 0.0), rloo_advantages(rewards))


@pytest.mark.parametrize("fn", [rloo_advantages, group_advantages])
def test_group_of_one_is_rejected(fn) -> None:
    with pytest.raises(ValueError, match="K >= 2"):
        fn(torch.ones(3, 1))


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="2-D"):
        rloo_advantages(torch.ones(4))
    with pytest.raises(ValueError, match="shapes must match"):
        t1_advantages(torch.ones(2, 3), torch.ones(3, 2), beta=0.1)
    # Dr. GRPO has no std, so a single sample per prompt is allowed (advantage 0)
    torch.testing.assert_close(group_advantages(torch.ones(2, 1), scale=False), torch.zeros(2, 1))
