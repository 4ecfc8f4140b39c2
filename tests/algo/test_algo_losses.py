"""Policy losses: hand values per aggregation, PPO clipping, gradients, padding invariance."""

from __future__ import annotations

import math

import pytest
import torch
from rounding import EPS64, bound

from t1.algo import LOSS_AGGREGATIONS, aggregate, masked_mean, policy_loss

AGGS = list(LOSS_AGGREGATIONS)


def _example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    logp = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    adv = torch.tensor([1.0, -2.0])
    return logp, logp.clone(), adv, mask


@pytest.mark.parametrize(
    ("agg", "expected"),
    [
        # per-token −adv·logp: row 0 [1, 2], row 1 [−1]
        ("token-mean", 2 / 3),  # (1 + 2 − 1) / 3 tokens
        ("seq-mean-token-mean", 0.25),  # (3/2 + (−1)/1) / 2 rows
        ("seq-mean-token-sum", 1.0),  # (3 + (−1)) / 2 rows
        ("constant", 1 / 3),  # (1 + 2 − 1) / (2 rows · 3 columns)
    ],
)
def test_reinforce_hand_computed(agg: str, expected: float) -> None:
    loss, diag = policy_loss(*_example(), agg=agg)
    torch.testing.assert_close(loss, torch.tensor(expected))
    assert diag["clip_frac"] == 0 and diag["ratio_mean"] == 1


def test_constant_normalizer_argument() -> None:
    loss, _ = policy_loss(*_example(), agg="constant", normalizer=4)
    torch.testing.assert_close(loss, torch.tensor(0.5))  # (1 + 2 − 1) / 4


@pytest.mark.parametrize(("sign", "expected"), [(1.0, -0.9), (-1.0, 1.1)])
def test_ppo_clip_hand_computed(sign: float, expected: float) -> None:
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.0]]))  # ratios 1.5, 0.5, 1.0
    adv = torch.tensor([sign])
    loss, diag = policy_loss(logp, old, adv, torch.ones(1, 3), clip_eps=0.2)
    # adv +1: max(−1.5, −1.2) = −1.2 (clipped), max(−0.5, −0.8) = −0.5, −1 → (−2.7)/3 = −0.9
    # adv −1: max(1.5, 1.2) = 1.5, max(0.5, 0.8) = 0.8 (clipped), 1 → 3.3/3 = 1.1
    torch.testing.assert_close(loss, torch.tensor(expected))
    torch.testing.assert_close(diag["clip_frac"], torch.tensor(1 / 3))
    torch.testing.assert_close(diag["ratio_mean"], torch.tensor(1.0))  # (1.5 + 0.5 + 1) / 3
    torch.testing.assert_close(diag["ratio_max"], torch.tensor(1.5))
    torch.testing.assert_close(diag["ratio_min"], torch.tensor(0.5))
    assert all(v.dim() == 0 and not v.requires_grad for v in diag.values())


def _random_batch(seed: int, n: int = 5, t: int = 6):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(n, t, generator=g, dtype=torch.float64) * 2
    old = logp + 0.3 * torch.randn(n, t, generator=g, dtype=torch.float64)
    adv = torch.randn(n, generator=g, dtype=torch.float64)
    mask = torch.rand(n, t, generator=g) > 0.35
    mask[0] = False  # an empty row: carries no gradient and is left out of the seq means
    mask[1, 0] = True
    return logp, old, adv, mask


def _loop_loss(logp, old, adv, mask, clip_eps, agg, absolute: bool = False) -> float:
    """The loss token by token in Python floats (`absolute`: of the tokens' absolute terms)."""
    rows = []
    for i in range(logp.shape[0]):
        tokens = []
        for t in range(logp.shape[1]):
            if not mask[i, t]:
                continue
            a, lp = adv[i].item(), logp[i, t].item()
            if clip_eps is None:
                tokens.append(-a * lp)
            else:
                r = math.exp(lp - old[i, t].item())
                rc = min(max(r, 1 - clip_eps), 1 + clip_eps)
                tokens.append(max(-a * r, -a * rc))
        rows.append([abs(x) for x in tokens] if absolute else tokens)
    every = [x for row in rows for x in row]
    full = [row for row in rows if row]
    if agg == "token-mean":
        return sum(every) / len(every)
    if agg == "seq-mean-token-mean":
        return sum(sum(row) / len(row) for row in full) / len(full)
    if agg == "seq-mean-token-sum":
        return sum(sum(row) for row in full) / len(full)
    return sum(every) / mask.numel()


@pytest.mark.parametrize("clip_eps", [None, 0.2])
@pytest.mark.parametrize("agg", AGGS)
def test_matches_loop_reference(clip_eps: float | None, agg: str) -> None:
    logp, old, adv, mask = _random_batch(3)
    loss, _ = policy_loss(logp, old, adv, mask, clip_eps=clip_eps, agg=agg)
    # float64 both ways: per token <= 4 roundings (difference, exp, clamp, product), then sums of
    # <= n tokens, all at magnitude <= the loss of the absolute terms M
    n = int(mask.sum())
    M = _loop_loss(logp, old, adv, mask, clip_eps, agg, absolute=True)
    expected = _loop_loss(logp, old, adv, mask, clip_eps, agg)
    assert loss.item() == pytest.approx(expected, rel=0, abs=bound(n + 4, M, EPS64))


def _token_weights(mask: torch.Tensor, agg: str) -> torch.Tensor:
    """How each token's −adv·∇logp is averaged by `agg` (N, T)."""
    m = mask.double()
    n_rows = mask.any(1).sum()
    if agg == "token-mean":
        return m / m.sum()
    if agg == "seq-mean-token-mean":
        return m / m.sum(1, keepdim=True).clamp_min(1) / n_rows
    if agg == "seq-mean-token-sum":
        return m / n_rows
    return m / mask.numel()


@pytest.mark.parametrize("agg", AGGS)
def test_reinforce_gradient_is_weighted_minus_adv_grad_logp(agg: str) -> None:
    # a tiny softmax policy: logp_{i,t} = log_softmax(x_{i,t} @ W)[y_{i,t}]
    g = torch.Generator().manual_seed(4)
    n, t, d, v = 4, 5, 3, 6
    x = torch.randn(n, t, d, generator=g, dtype=torch.float64)
    y = torch.randint(v, (n, t), generator=g)
    w = torch.randn(d, v, generator=g, dtype=torch.float64, requires_grad=True)
    adv = torch.randn(n, generator=g, dtype=torch.float64)
    mask = torch.rand(n, t, generator=g) > 0.3
    mask[2] = False

    def logp_of(weights: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(x @ weights, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)

    loss, _ = policy_loss(logp_of(w), logp_of(w).detach(), adv, mask, agg=agg)
    (grad,) = torch.autograd.grad(loss, w)
    expected = torch.zeros_like(w)
    weights = _token_weights(mask, agg)
    for i in range(n):
        for j in range(t):
            if mask[i, j]:
                (g_tok,) = torch.autograd.grad(logp_of(w)[i, j], w)
                expected += weights[i, j] * -adv[i] * g_tok
    torch.testing.assert_close(grad, expected)
    # on-policy (ρ = 1, nothing clipped) the PPO form has the same gradient
    ppo, _ = policy_loss(logp_of(w), logp_of(w).detach(), adv, mask, clip_eps=0.2, agg=agg)
    torch.testing.assert_close(torch.autograd.grad(ppo, w)[0], expected)


def test_clipped_tokens_get_no_gradient() -> None:
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1]])).requires_grad_()
    loss, _ = policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 3), clip_eps=0.2)
    loss.backward()
    # token 0 is clipped (ρ 1.5 > 1.2 with A > 0); tokens 1, 2: −A·ρ/3 → −0.5/3, −1.1/3
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -0.5 / 3, -1.1 / 3]]))


@pytest.mark.parametrize("clip_eps", [None, 0.2])
@pytest.mark.parametrize("agg", AGGS)
def test_padding_changes_nothing(clip_eps: float | None, agg: str) -> None:
    logp, old, adv, mask = _random_batch(5)
    normalizer = 30.0 if agg == "constant" else None
    clean = logp.clone().requires_grad_()
    ref_loss, ref_diag = policy_loss(clean, old, adv, mask, clip_eps, agg, normalizer)
    ref_loss.backward()
    # garbage at padding, two extra padding columns and an extra all-padding row
    pad_cols, pad_row = torch.full((5, 2), float("nan")), torch.full((1, 8), float("inf"))
    dirty = torch.cat([torch.cat([torch.where(mask, logp, -1e9), pad_cols], 1), pad_row])
    dirty.requires_grad_()
    old2 = torch.cat([torch.cat([torch.where(mask, old, 1e9), pad_cols], 1), pad_row])
    mask2 = torch.zeros(6, 8, dtype=torch.bool)
    mask2[:5, :6] = mask
    adv2 = torch.cat([adv, torch.tensor([float("nan")], dtype=torch.float64)])
    loss, diag = policy_loss(dirty, old2, adv2, mask2, clip_eps, agg, normalizer)
    loss.backward()
    torch.testing.assert_close(loss, ref_loss)
    for name, value in ref_diag.items():
        torch.testing.assert_close(diag[name], value)
    torch.testing.assert_close(dirty.grad[:5, :6], clean.grad)
    assert (dirty.grad[~mask2] == 0).all()


def test_masking_one_token_removes_exactly_that_token() -> None:
    logp = torch.tensor([[-1.0, -2.0, -4.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    loss, _ = policy_loss(logp, logp.detach(), torch.tensor([1.0]), mask)
    loss.backward()
    # −(−1 − 4)/2 = 2.5; gradient −A/2 on the kept tokens, 0 on the masked one
    torch.testing.assert_close(loss, torch.tensor(2.5))
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.5, 0.0, -0.5]]))


def test_per_token_advantage_equals_broadcast() -> None:
    logp, old, adv, mask = _random_batch(6)
    a, _ = policy_loss(logp, old, adv, mask, clip_eps=0.1)
    b, _ = policy_loss(logp, old, adv.unsqueeze(1).expand_as(logp), mask, clip_eps=0.1)
    torch.testing.assert_close(a, b)


def test_masked_mean_and_empty_mask() -> None:
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    # (1 + 3 + 4) / 3
    torch.testing.assert_close(
        masked_mean(values, torch.tensor([[1, 0], [1, 1]])), torch.tensor(8 / 3)
    )
    loss, diag = policy_loss(values, values, torch.ones(2), torch.zeros(2, 2), clip_eps=0.2)
    assert loss == 0 and diag["clip_frac"] == 0 and diag["ratio_max"] == 1
    for agg in AGGS:
        assert aggregate(values, torch.zeros(2, 2), agg) == 0


def test_errors() -> None:
    logp, old, adv, mask = _example()
    with pytest.raises(ValueError, match="shapes must match"):
        policy_loss(logp, old, adv, mask[:, :2])
    with pytest.raises(ValueError, match="adv must be"):
        policy_loss(logp, old, torch.ones(3), mask)
    with pytest.raises(ValueError, match="unknown loss aggregation 'mean'"):
        policy_loss(logp, old, adv, mask, agg="mean")
    with pytest.raises(ValueError, match="only used by agg='constant'"):
        policy_loss(logp, old, adv, mask, normalizer=10)
    with pytest.raises(ValueError, match="normalizer must be > 0"):
        policy_loss(logp, old, adv, mask, agg="constant", normalizer=0)
    with pytest.raises(ValueError, match="clip_eps"):
        policy_loss(logp, old, adv, mask, clip_eps=0.0)
