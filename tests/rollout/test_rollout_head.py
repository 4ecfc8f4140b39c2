"""head_logprobs: the chunked output head gives the full pass's log-probs, entropies and gradients
(hidden states, weight, bias), keeps no (N, V) tensor for backward, and checks its inputs."""

from __future__ import annotations

import math

import pytest
import torch
from rounding import bound, entropy_tolerance

from t1.rollout.head import head_chunk_size, head_logprobs

N, H, V, T = 13, 16, 50, 0.7

# Tolerances, float32 against a float64 reference computed from the same float32 inputs (its
# own error, ~1e-16 relative, is negligible), from the inputs' own magnitudes (`tolerances`,
# with tests/rounding.py's bound(n, m) = n·EPS32·m for n roundings at magnitude <= m):
# - a log-prob z_y − logsumexp(z): a logit is a dot product of H terms plus the bias, at
#   magnitude m = max_v (Σ_k |h_k W_vk| + |b_v|) / T; the log-sum-exp subtracts the max, sums V
#   exponentials and takes a log; then the subtraction: n = H + 1 + V + 4 at magnitude
#   max(m, L), L the largest |log q|;
# - an entropy Σ_v q_v (lse − z_v): `entropy_tolerance` of that;
# - a gradient entry sums K <= max(N, V) terms: d/dlogits times W (hidden), times h (weight), or
#   alone (bias). With q = softmax(z), the d/dlogits entry is g (onehot − q) − e q (log q + H): q
#   carries the relative error expm1(d) of a log-prob error d, log q + H an absolute error
#   <= d + (the entropy's), and the sum rounds by bound(K, 1) relatively; so each term errs by
#   <= RHO times its magnitude bound m = |g| (onehot + q) + |e| q (|log q| + H + 1) (>= 1 in
#   the last factor), and the entry by <= RHO times the sum of |m| |factor| over its terms
#   (`grad_bounds`).


def tolerances(h, w, b) -> tuple[float, float, float]:
    """(log-prob, entropy, RHO) tolerances of head passes on these inputs (above)."""
    h, w = h.detach().double(), w.detach().double()
    b = None if b is None else b.detach().double()
    m = float((h.abs() @ w.abs().T + (0 if b is None else b.abs())).max()) / T
    L = float(full_pass_logits(h, w, b, T).log_softmax(-1).abs().max())
    d = bound(H + 1 + V + 4, max(m, L))
    ent = entropy_tolerance(d, L, V)
    return d, ent, math.expm1(d) + d + ent + bound(max(N, V), 1.0)


def inputs(seed: int = 0, bias: bool = True, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(N, H, generator=gen)
    w = torch.randn(V, H, generator=gen) / 4  # logits of std ~ sqrt(16) / 4 / T = 1.4
    b = torch.randn(V, generator=gen) / 4 if bias else None
    y = torch.randint(0, V, (N,), generator=gen)
    g = torch.randn(N, generator=gen)  # incoming gradient of logp
    e = torch.randn(N, generator=gen)  # incoming gradient of the entropy
    cast = [t.to(dtype) if t is not None else None for t in (h, w, b)]
    return *cast, y, g, e


def full_pass_logits(h, w, b, T):
    return torch.nn.functional.linear(h, w, b).to(torch.promote_types(h.dtype, torch.float32)) / T


def full_pass(h, w, b, y, T, with_entropy):
    """The reference: all N x V logits at once, the formulas of `tempered_logprobs`."""
    logq = full_pass_logits(h, w, b, T).log_softmax(-1)
    logp = logq.gather(-1, y[:, None]).squeeze(-1)
    return logp, (-(logq.exp() * logq).sum(-1) if with_entropy else None)


def grad_bounds(h, w, b, y, g, e, with_entropy: bool) -> list[torch.Tensor]:
    """RHO x (sum over terms of |m| |factor|) for the hidden, weight and bias gradients."""
    rho = tolerances(h, w, b)[2]
    h, w = h.detach().double(), w.detach().double()
    logq = full_pass_logits(h, w, None if b is None else b.double(), T).log_softmax(-1)
    q, ent = logq.exp(), -(logq.exp() * logq).sum(-1, keepdim=True)
    m = q * g.abs()[:, None].double()
    m.scatter_add_(1, y[:, None], g.abs()[:, None].double())
    if with_entropy:
        m = m + q * e.abs()[:, None].double() * (logq.abs() + ent + 1)
    m = m / T
    bounds = [rho * (m @ w.abs()), rho * (m.t() @ h.abs())]
    return bounds + ([rho * m.sum(0)] if b is not None else [])


def assert_within(got: list[torch.Tensor], want: list[torch.Tensor], bounds: list[torch.Tensor]):
    for a, r, limit in zip(got, want, bounds):
        assert torch.all((a.double() - r).abs() <= limit)


def values_and_grads(fn, h, w, b, y, g, e, with_entropy):
    leaves = [t.detach().clone().requires_grad_() for t in (h, w, b) if t is not None]
    hh, ww, bb = leaves[0], leaves[1], (leaves[2] if b is not None else None)
    logp, ent = fn(hh, ww, bb, y, T, with_entropy)
    loss = (g.to(logp.dtype) * logp).sum()
    if with_entropy:
        loss = loss + (e.to(ent.dtype) * ent).sum()
    loss.backward()
    out = [logp.detach()] + ([ent.detach()] if with_entropy else [])
    return out, [t.grad for t in leaves]


@pytest.mark.numerics
@pytest.mark.parametrize("with_entropy", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 4, 5, 13, 20, None])
def test_values_and_gradients_equal_the_full_pass(chunk_size, with_entropy):
    h, w, b, y, g, e = inputs()

    def chunked(*args):
        return head_logprobs(*args, chunk_size=chunk_size)

    got, got_grads = values_and_grads(chunked, h, w, b, y, g, e, with_entropy)
    args64 = [t.double() if t is not None else None for t in (h, w, b)]
    want, want_grads = values_and_grads(full_pass, *args64, y, g, e, with_entropy)
    for a, r, tol in zip(got, want, tolerances(h, w, b)):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), r, atol=tol, rtol=0)
    assert_within(got_grads, want_grads, grad_bounds(h, w, b, y, g, e, with_entropy))


@pytest.mark.numerics
def test_float64_is_exact_to_float64_rounding():
    h, w, b, y, g, e = (t.double() if t.is_floating_point() else t for t in inputs(1))
    got, got_grads = values_and_grads(
        lambda *a: head_logprobs(*a, chunk_size=3), h, w, b, y, g, e, True
    )
    want, want_grads = values_and_grads(full_pass, h, w, b, y, g, e, True)
    # the same bounds as above with u = 2^-53 = 1.1e-16 instead of 6e-8: ~1e-13
    for a, r in zip(got + got_grads, want + want_grads):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, r, atol=1e-12, rtol=0)


@pytest.mark.numerics
def test_masked_rows_contribute_nothing():
    # padding: rows whose log-probs the learner multiplies by 0 change no gradient
    h, w, b, y, g, e = inputs(2, bias=False)
    keep = torch.tensor([1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0], dtype=torch.bool)

    def chunked(*args):
        return head_logprobs(*args, chunk_size=4)

    masked = values_and_grads(chunked, h, w, None, y, g * keep, e * keep, True)
    only = values_and_grads(chunked, h[keep], w, None, y[keep], g[keep], e[keep], True)
    # the same rows' maths, two float32 evaluations: within the log-prob bound (`tolerances`)
    d = tolerances(h, w, None)[0]
    torch.testing.assert_close(masked[0][0][keep], only[0][0], atol=d, rtol=0)
    assert torch.all(masked[1][0][~keep] == 0)  # no gradient reaches the padded rows
    # the weight's gradient is the kept rows' alone: within the bound of that sum
    h64, w64 = h[keep].double(), w.double()
    want = values_and_grads(full_pass, h64, w64, None, y[keep], g[keep], e[keep], True)
    bound = grad_bounds(h[keep], w, None, y[keep], g[keep], e[keep], True)[1]
    assert_within([masked[1][1]], [want[1][1]], [bound])


@pytest.mark.numerics
def test_tied_weight_gets_both_gradients():
    # an embedding and the head share one matrix, as with tie_word_embeddings
    h, w, _, y, g, e = inputs(3, bias=False)
    tokens = torch.randint(0, V, (N,), generator=torch.Generator().manual_seed(5))

    def run(fn, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        weight = w.to(dtype).clone().requires_grad_()
        hidden = torch.tanh(weight[tokens] + h.to(dtype))  # the embedding use
        logp, ent = fn(hidden, weight, None, y, T, True)
        ((g.to(logp.dtype) * logp).sum() + (e.to(ent.dtype) * ent).sum()).backward()
        return weight.grad, hidden.detach()

    chunked, hidden = run(lambda *a: head_logprobs(*a, chunk_size=6), torch.float32)
    full = run(full_pass, torch.float64)[0]
    # the head's bound, plus the hidden gradient's bound carried through tanh' <= 1 into the
    # embedding rows of `tokens` (float32 rounding of tanh itself: ~u, far below)
    bound_h, bound_w = grad_bounds(hidden, w, None, y, g, e, True)
    bound = bound_w + torch.zeros_like(bound_w).index_add_(0, tokens, bound_h)
    assert_within([chunked], [full], [bound])


@pytest.mark.numerics
def test_bfloat16_is_as_close_to_float32_as_the_full_pass():
    h, w, b, y, g, e = inputs(4)
    ref = values_and_grads(full_pass, h, w, b, y, g, e, True)
    low = [t.bfloat16() for t in (h, w, b)]
    chunked = values_and_grads(lambda *a: head_logprobs(*a, chunk_size=4), *low, y, g, e, True)
    full = values_and_grads(full_pass, *low, y, g, e, True)

    def errors(run) -> list[float]:  # relative error of each output and gradient
        pairs = zip(run[0] + run[1], ref[0] + ref[1])
        return [((a.float() - r).norm() / r.norm()).item() for a, r in pairs]

    # the logits are rounded to bfloat16 (2^-9 relative) in both passes, then the same float32
    # maths; the chunked weight gradient sums per-chunk bfloat16 products in float32, the full
    # pass rounds one product: each error is bfloat16-sized (< 2^-4 here, 2^-9 per rounding on
    # values of size ~1 through a few steps) and the chunked one at most 1.5 x the full one's
    for c, f in zip(errors(chunked), errors(full)):
        assert c < 2**-4 and c <= 1.5 * f + 2**-9


def test_no_n_by_v_tensor_is_saved_for_backward():
    h, w, b, y, _, _ = inputs(5)
    big = torch.randn(400, H)  # N = 400 > V = 50: an (N, V) tensor is the largest shape
    targets = torch.randint(0, V, (400,))
    saved: list[torch.Size] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.shape)
        return t

    hw = [big.requires_grad_(), w.requires_grad_(), b.requires_grad_()]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logp, ent = head_logprobs(*hw, targets, T, True, chunk_size=16)
    assert saved and max(s.numel() for s in saved) <= max(400 * H, V * H)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        saved.clear()
        full_pass(*hw, targets, T, True)
    assert max(s.numel() for s in saved) >= 400 * V  # the full pass does keep one


def test_chunk_size_default_bounds_the_buffer():
    assert head_chunk_size(152_064) == (1 << 25) // 152_064 == 220
    assert head_chunk_size(1 << 30) == 1 and head_chunk_size(99) > 300_000


def test_bad_inputs_are_errors():
    h, w, b, y, _, _ = inputs(6)
    with pytest.raises(ValueError, match="hidden"):
        head_logprobs(h[:, :3], w, b, y)
    with pytest.raises(ValueError, match="bfloat16"):
        head_logprobs(h.bfloat16(), w, b, y)
    with pytest.raises(ValueError, match="bias"):
        head_logprobs(h, w, b[:3], y)
    with pytest.raises(ValueError, match="targets"):
        head_logprobs(h, w, b, y[:3])
    with pytest.raises(ValueError, match="temperature"):
        head_logprobs(h, w, b, y, temperature=0.0)
    with pytest.raises(ValueError, match="chunk_size"):
        head_logprobs(h, w, b, y, chunk_size=0)
