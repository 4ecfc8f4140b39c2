"""The EMA anchor update: hand values, repeated steps, autograd and dtype handling."""

from __future__ import annotations

import pytest
import torch

from t1.algo import ema_update_


def test_hand_computed() -> None:
    ref = [torch.tensor([1.0, 2.0])]
    new = [torch.tensor([3.0, 6.0])]
    ema_update_(ref, new, alpha=0.75)
    # 0.75·1 + 0.25·3 = 1.5; 0.75·2 + 0.25·6 = 3.0
    torch.testing.assert_close(ref[0], torch.tensor([1.5, 3.0]))
    torch.testing.assert_close(new[0], torch.tensor([3.0, 6.0]))


def test_repeated_steps_converge_geometrically() -> None:
    ref = [torch.zeros(3, dtype=torch.float64)]
    new = [torch.ones(3, dtype=torch.float64)]
    for _ in range(3):
        ema_update_(ref, new, alpha=0.5)
    # ref_n = p + αⁿ (ref_0 − p) = 1 − 0.5³ = 0.875
    torch.testing.assert_close(ref[0], torch.full((3,), 0.875, dtype=torch.float64))


def test_alpha_bounds_freeze_and_copy() -> None:
    ref = [torch.tensor([1.0])]
    ema_update_(ref, [torch.tensor([5.0])], alpha=1.0)
    assert ref[0].item() == 1.0  # frozen anchor
    ema_update_(ref, [torch.tensor([5.0])], alpha=0.0)
    assert ref[0].item() == 5.0  # copy of the policy


def test_modules_without_autograd_and_across_dtypes() -> None:
    torch.manual_seed(0)
    policy = torch.nn.Linear(3, 2)
    anchor = torch.nn.Linear(3, 2).to(torch.float64)
    for p in anchor.parameters():
        p.requires_grad_(False)
    before = [p.detach().clone() for p in anchor.parameters()]
    ema_update_(anchor.parameters(), policy.parameters(), alpha=0.9)
    for old, new, p in zip(before, anchor.parameters(), policy.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * p.detach().double())
        assert new.dtype == torch.float64 and new.grad_fn is None
    # anchor params that require grad are updated in place without an autograd error
    anchor2 = torch.nn.Linear(3, 2)
    ema_update_(anchor2.parameters(), policy.parameters(), alpha=0.0)
    torch.testing.assert_close(anchor2.weight, policy.weight)
    assert anchor2.weight.grad_fn is None


def test_errors() -> None:
    with pytest.raises(ValueError, match="alpha"):
        ema_update_([torch.zeros(1)], [torch.zeros(1)], alpha=1.5)
    with pytest.raises(ValueError, match="1 tensors but params has 2"):
        ema_update_([torch.zeros(1)], [torch.zeros(1), torch.zeros(1)], alpha=0.5)
    with pytest.raises(ValueError, match="parameter 0"):
        ema_update_([torch.zeros(2)], [torch.zeros(3)], alpha=0.5)
