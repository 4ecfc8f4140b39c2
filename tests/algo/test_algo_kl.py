"""KL estimators: hand values, the k3 gradient, unbiasedness, masking of padding."""

from __future__ import annotations

import math

import pytest
import torch

from t1.algo import KL_ESTIMATORS, kl_per_token, sequence_kl


def test_estimators_hand_computed() -> None:
    logp = torch.tensor([-1.0, -2.0, -0.7])
    ref = torch.tensor([-2.0, -1.0, -0.7])
    # log ratio ℓ = logp − ref = [1, −1, 0]
    torch.testing.assert_close(kl_per_token(logp, ref, "k1"), torch.tensor([1.0, -1.0, 0.0]))
    # ½ℓ² = [0.5, 0.5, 0]
    torch.testing.assert_close(kl_per_token(logp, ref, "k2"), torch.tensor([0.5, 0.5, 0.0]))
    # exp(ref − logp) − (ref − logp) − 1: e^−1 + 1 − 1 = 0.3678794; e^1 − 1 − 1 = 0.7182818; 0
    expected_k3 = torch.tensor([math.exp(-1), math.e - 2, 0.0])
    torch.testing.assert_close(kl_per_token(logp, ref, "k3"), expected_k3)


def test_k3_gradient_is_one_minus_ratio() -> None:
    g = torch.Generator().manual_seed(0)
    logp = (-torch.rand(5, 4, generator=g, dtype=torch.float64) * 3).requires_grad_()
    ref = -torch.rand(5, 4, generator=g, dtype=torch.float64) * 3
    kl_per_token(logp, ref, "k3").sum().backward()
    # d/dlogp [e^(ref−logp) − (ref−logp) − 1] = −e^(ref−logp) + 1
    torch.testing.assert_close(logp.grad, 1 - torch.exp(ref - logp.detach()))
    assert torch.autograd.gradcheck(
        lambda x: kl_per_token(x, ref, "k3"), (logp.detach().clone().requires_grad_(),)
    )


def test_k1_and_k3_are_unbiased_for_kl() -> None:
    # tokens sampled from p; E_p[k1] = E_p[k3] = KL(p‖q) = Σ p log(p/q)
    p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    q = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=torch.float64)
    exact = (p * (p / q).log()).sum()  # ≈ 0.2442
    g = torch.Generator().manual_seed(0)
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=g)
    logp, ref = p.log()[tokens], q.log()[tokens]
    for kind in ("k1", "k3"):
        estimate = kl_per_token(logp, ref, kind).mean()
        # a mean of 200 000 draws: standard error sd/sqrt(200 000) = 0.60/447 = 1.3e-3 (k1),
        # 0.50/447 = 1.1e-3 (k3); 5e-3 is > 3.7 of them
        torch.testing.assert_close(estimate, exact, atol=5e-3, rtol=0)
    assert (kl_per_token(logp, ref, "k3") >= 0).all()


def test_sequence_kl_matches_loop() -> None:
    g = torch.Generator().manual_seed(1)
    logp = -torch.rand(4, 6, generator=g, dtype=torch.float64)
    ref = -torch.rand(4, 6, generator=g, dtype=torch.float64)
    mask = torch.rand(4, 6, generator=g) > 0.3
    for kind, fn in KL_ESTIMATORS.items():
        expected = torch.zeros(4, dtype=torch.float64)
        for i in range(4):
            for t in range(6):
                if mask[i, t]:
                    expected[i] += fn(logp[i, t], ref[i, t])
        torch.testing.assert_close(sequence_kl(logp, ref, mask, kind), expected)
        # a float mask behaves as the bool one
        torch.testing.assert_close(sequence_kl(logp, ref, mask.float(), kind), expected)


def test_sequence_kl_hand_computed() -> None:
    logp = torch.tensor([[-1.0, -2.0, -5.0]])
    ref = torch.tensor([[-2.0, -1.0, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    # k1: (−1 − −2) + (−2 − −1) = 1 − 1 = 0 (third token is padding)
    torch.testing.assert_close(sequence_kl(logp, ref, mask, "k1"), torch.tensor([0.0]))
    # k3: 0.3678794 + 0.7182818 = 1.0861613
    torch.testing.assert_close(
        sequence_kl(logp, ref, mask, "k3"), torch.tensor([math.exp(-1) + math.e - 2])
    )


@pytest.mark.parametrize("kind", ["k1", "k2", "k3"])
def test_padding_changes_nothing(kind: str) -> None:
    g = torch.Generator().manual_seed(2)
    logp = -torch.rand(3, 5, generator=g)
    ref = -torch.rand(3, 5, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    clean = logp.clone().requires_grad_()
    dirty_vals = torch.where(mask, logp, torch.tensor(float("nan")))
    dirty_vals[0, 3] = float("inf")
    dirty = dirty_vals.clone().requires_grad_()
    dirty_ref = torch.where(mask, ref, torch.tensor(-float("inf")))
    a = sequence_kl(clean, ref, mask, kind)
    b = sequence_kl(dirty, dirty_ref, mask, kind)
    torch.testing.assert_close(a, b)
    a.sum().backward()
    b.sum().backward()
    torch.testing.assert_close(clean.grad, dirty.grad)
    assert (dirty.grad[~mask] == 0).all()


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown KL estimator 'k4'.*'k1', 'k2', 'k3'"):
        kl_per_token(torch.zeros(2), torch.zeros(2), "k4")
    with pytest.raises(ValueError, match="shapes must match"):
        kl_per_token(torch.zeros(2, 3), torch.zeros(3, 2), "k1")
    with pytest.raises(ValueError, match="shapes must match"):
        sequence_kl(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 4), "k1")
    with pytest.raises(ValueError, match="2-D"):
        sequence_kl(torch.zeros(6), torch.zeros(6), torch.ones(6), "k1")
