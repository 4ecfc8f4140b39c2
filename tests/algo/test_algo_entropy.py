"""Chunked token entropy: hand values, agreement with the naive formula, gradients, dtypes."""

from __future__ import annotations

import math

import pytest
import torch

from t1.algo import token_entropy


def _naive(logits: torch.Tensor) -> torch.Tensor:
    x = logits.float() if logits.dtype != torch.float64 else logits
    return -(torch.softmax(x, -1) * torch.log_softmax(x, -1)).sum(-1)


def test_hand_computed() -> None:
    logits = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],  # uniform over 4: ln 4 = 1.3862944
            [0.0, math.log(3.0), -math.inf, -math.inf],  # p = [1/4, 3/4, 0, 0]
            [5.0, -math.inf, -math.inf, -math.inf],  # one certain token: 0
        ]
    )
    # −(¼ ln ¼ + ¾ ln ¾) = 0.3465736 + 0.2157616 = 0.5623351
    expected = torch.tensor([math.log(4.0), 0.5623351, 0.0])
    torch.testing.assert_close(token_entropy(logits), expected)


@pytest.mark.parametrize("chunk_size", [1, 3, 5, 512])
def test_matches_naive_for_any_chunking(chunk_size: int) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 11, generator=g) * 3  # 14 rows: chunks that don't divide evenly
    out = token_entropy(logits, chunk_size=chunk_size)
    assert out.shape == (2, 7)
    torch.testing.assert_close(out, _naive(logits))


def test_gradient_matches_naive_and_gradcheck() -> None:
    g = torch.Generator().manual_seed(1)
    base = torch.randn(3, 4, 9, generator=g, dtype=torch.float64)
    weights = torch.rand(3, 4, generator=g, dtype=torch.float64)
    a = base.clone().requires_grad_()
    b = base.clone().requires_grad_()
    (token_entropy(a, chunk_size=5) * weights).sum().backward()
    (_naive(b) * weights).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
    assert torch.autograd.gradcheck(
        lambda x: token_entropy(x, chunk_size=2), (base[0].clone().requires_grad_(),)
    )


def test_masked_vocabulary_gives_finite_gradient() -> None:
    logits = torch.tensor([[0.0, 1.0, -math.inf], [2.0, -math.inf, -math.inf]], requires_grad=True)
    token_entropy(logits).sum().backward()
    assert torch.isfinite(logits.grad).all()
    # a certain token (row 1) has zero entropy gradient; so does every −inf entry
    torch.testing.assert_close(logits.grad[1], torch.zeros(3))
    assert logits.grad[0, 2] == 0


def test_bfloat16_logits_give_float32_entropy() -> None:
    g = torch.Generator().manual_seed(2)
    logits = (torch.randn(4, 50, generator=g) * 2).to(torch.bfloat16).requires_grad_()
    out = token_entropy(logits, chunk_size=3)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, _naive(logits.detach().float()))
    out.sum().backward()
    assert logits.grad.dtype == torch.bfloat16


def test_leading_shapes() -> None:
    v = torch.tensor([0.0, 0.0])
    # one position: 0-dim result, ln 2 = 0.6931472
    torch.testing.assert_close(token_entropy(v), torch.tensor(math.log(2.0)))
    assert token_entropy(torch.zeros(0, 5)).shape == (0,)


def test_errors() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        token_entropy(torch.zeros(2, 3), chunk_size=0)
    with pytest.raises(ValueError, match="floating point"):
        token_entropy(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="empty vocabulary"):
        token_entropy(torch.zeros(2, 0))
