"""Tolerances for tests that compare two float32 computations of one quantity, derived from the
arithmetic rather than from what one machine printed.

Two code paths (packed or padded rows, fused or separate projections, one process or two), two
SIMD widths (AVX2, AVX-512) and two thread counts add the same terms in different orders, and
each order rounds differently. One float32 rounding moves a value by at most EPS32/2 of its
size, so a result reached through n roundings of intermediates no larger than m is within
n·(EPS32/2)·m of the exact value, and two evaluations of it differ by at most

    bound(n, m) = n · EPS32 · m.

Every comparing test says what its n and m are. For a causal LM:

- a log-prob (or logit): n counts the terms of every sum on its path (`logprob_terms`) and m is
  the largest magnitude met on the path (`path_magnitude`). The RMS norms rescale errors with
  their values, so no layer amplifies a relative error.
- a gradient entry: the backward pass retraces that path and then sums one term per position
  of the batch (`grad_terms`); m is the tensor's largest entry times CANCEL (the terms of an
  entry have both signs, so their absolute values add up to more than the entry).

The bounds take every rounding at its largest and in one direction, so they hold on any
machine; measured differences are typically 100-10000x smaller. For a real model that worst
case says nothing (SmolLM2-135M: 193 k terms per log-prob, activations up to 25 000, a bound
of hundreds of nats); there `probable_bound` takes the roundings as independent, as they are in
practice. A result that divides by a
rounded value is not compared: Adam's first step, lr·g/(|g| + eps), turns a rounding of a g
near eps into a change of ~lr. Tests give Adam an eps above every |g| instead, so its step
moves by at most lr/eps·(1 + max|g|/eps)·|Δg| (`adam_step_tolerance`).

bfloat16 compute rounds to 8 significant bits (unit roundoff 2^-8), so the worst case of every
rounding at once in one direction allows more than the gradient itself: `bf16_grad_tolerance`
takes those roundings as independent too.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

# 2^-23: the spacing of float32 numbers in [1, 2); one rounding errs by at most half of it
EPS32 = torch.finfo(torch.float32).eps
EPS64 = torch.finfo(torch.float64).eps  # 2^-52, the same for float64

# The absolute terms of a gradient entry (per position, or per row at unit advantage) add up to
# 4.5-7.5x the tensor's largest entry on the RL batches of these tests (autograd hooks, per-row
# passes): a property of the data and weights, the same on any machine. Twice that, and
# test_rounding.py checks it on one batch.
CANCEL = 16.0

# The root of the sum of the squared per-position terms of a gradient entry is 0.32-0.74x the
# tensor's largest entry on the same batches: twice that (test_rounding.py checks it). A sum of
# terms that each carry an independent relative error moves like a random walk at this scale.
RANDOM_WALK = 1.5

# bfloat16's unit roundoff (8 significant bits): one rounding errs by at most 2^-8 of its value
U_BF16 = torch.finfo(torch.bfloat16).eps / 2
# bfloat16 roundings on the path of one term of a gradient entry under bf16 compute, counted
# for these 2-layer tiny Llamas: per layer <= 12 forward (the normed input's cast, the q/k/v
# outputs, rope's product and sum, attention's scores, softmax and mix, o's output, the MLP
# input's cast, gate/up outputs, SiLU, the gate product, down's output), 2 at the head (input
# cast, logits), as many backward: 2·(2·12 + 2) = 52 <= 64
BF16_PATH_ROUNDINGS = 64


def bound(n: int, m: float, eps: float = EPS32) -> float:
    """Largest difference of two evaluations that each round n times at magnitude <= m (float32;
    float64 with eps=EPS64)."""
    return n * eps * float(m)


def probable_bound(n: int, m: float, lam: float = 8.0) -> float:
    """Difference of two float32 evaluations that each round n times, by independent roundings of
    relative size <= EPS32/2, at magnitude <= m: their errors add up like a random walk, within
    lam·sqrt(n)·(EPS32/2)·m each with probability >= 1 − 2n·exp(−lam²/2) (Higham and Mary, "A
    New Approach to Probabilistic Rounding Error Analysis", SISC 2019, Theorem 3.1); lam = 8
    fails with probability < 1e-7 for n < 10^6."""
    return lam * n**0.5 * EPS32 * float(m)


def logprob_terms(config, positions: int) -> int:
    """Terms summed on the path to one log-prob of a Llama-style model over `positions` tokens.

    Per layer: two RMS norms, the q/k/v, o and gate/up projections (hidden terms each), the
    attention scores (head_dim), the softmax normaliser and the mix of values (positions each),
    the down projection (intermediate) and 8 elementwise steps (rope, residual adds, SiLU gate,
    scalings); then the final norm and the head (hidden each) and the log-softmax's normaliser
    (vocabulary).
    """
    h, layers = config.hidden_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or h // config.num_attention_heads
    per_layer = 5 * h + head_dim + 2 * positions + config.intermediate_size + 8
    return layers * per_layer + 2 * h + config.vocab_size


def grad_terms(config, positions: int, batch_positions: int) -> int:
    """Roundings behind one gradient entry: a log-prob's path forward and back, then a sum over
    the `batch_positions` positions of the batch (rows of up to `positions` tokens)."""
    return 2 * logprob_terms(config, positions) + batch_positions


def path_magnitude(model: torch.nn.Module, input_ids: torch.Tensor) -> float:
    """Largest magnitude on the path of a forward pass: every module's output and, for each
    linear layer, sum_j |w_kj|·|x_j| (which bounds its partial sums)."""
    largest = [0.0]

    def record(module, args, out) -> None:
        out = out[0] if isinstance(out, tuple) else out
        if isinstance(module, torch.nn.Linear):
            x = args[0].abs().reshape(-1, module.in_features)
            largest[0] = max(largest[0], float((x @ module.weight.abs().T).max()))
        if torch.is_tensor(out) and out.is_floating_point() and out.numel():
            largest[0] = max(largest[0], float(out.abs().max()))

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    try:
        with torch.no_grad():
            model(input_ids=input_ids)
    finally:
        for hook in hooks:
            hook.remove()
    return largest[0]


def head_magnitude(model: torch.nn.Module, input_ids: torch.Tensor) -> float:
    """The largest logit or sum_j |w_kj|·|x_j| of the output layer: the magnitude at which a
    logit's relative error becomes an absolute one (the RMS norms before it pass relative errors
    on, whatever the size of the activations upstream)."""
    head = model.get_output_embeddings()
    largest = [0.0]

    def record(module, args, out) -> None:
        x = args[0].abs().reshape(-1, module.in_features)
        largest[0] = max(float((x @ module.weight.abs().T).max()), float(out.abs().max()))

    hook = head.register_forward_hook(record)
    try:
        with torch.no_grad():
            model(input_ids=input_ids)
    finally:
        hook.remove()
    return largest[0]


def logprob_tolerance(
    model: torch.nn.Module, input_ids: torch.Tensor, temperature: float = 1.0
) -> float:
    """bound(n, m) for one log-prob of log softmax(logits / T) of `model` on rows like
    `input_ids`: n from `logprob_terms`, m from `path_magnitude` (over T when T < 1)."""
    n = logprob_terms(model.config, input_ids.shape[-1])
    return bound(n, path_magnitude(model, input_ids) / min(temperature, 1.0))


def largest_logprob(model: torch.nn.Module, input_ids: torch.Tensor, temperature: float) -> float:
    """The largest |log softmax(logits / T)| over every position and token: the size L of the
    log-probs that sums of log-probs (KL, entropy, loss) add up."""
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits.float()
    return float((logits / temperature).log_softmax(-1).abs().max())


def entropy_tolerance(d: float, L: float, vocab: int) -> float:
    """How far two entropies −Σ_v p_v·log p_v may differ when every log p_v agrees within d:
    each moves by <= Σ_v p_v·|1 + log p_v|·d <= (1 + L)·d, L the largest |log p_v|; the sum over
    the vocabulary rounds at magnitude <= L."""
    return (1 + L) * d + bound(vocab, L)


def grad_tolerance(a: torch.Tensor, b: torch.Tensor, n: int, weight_change: float = 0.0) -> float:
    """How far two gradients of one tensor may differ entrywise: bound(n, CANCEL·largest entry);
    loss weights (advantages) that differ by up to `weight_change` add
    weight_change·CANCEL·largest entry (the gradient is linear in them)."""
    m = CANCEL * max(float(a.abs().max()), float(b.abs().max()))
    return bound(n, m) + weight_change * m


def assert_grads_close(
    actual: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    n: int,
    weight_change: float = 0.0,
) -> None:
    """Each gradient entrywise within `grad_tolerance`."""
    assert actual.keys() == expected.keys() and expected
    for name, want in expected.items():
        got = actual[name]
        torch.testing.assert_close(
            got,
            want,
            rtol=0,
            atol=grad_tolerance(got, want, n, weight_change),
            msg=lambda text, name=name: f"gradient of {name}: {text}",
        )


def adam_step_tolerance(grad_tol: float, lr: float, eps: float, g: float, w: float) -> float:
    """How far two Adam(W) steps from the same weights and optimizer state may land, for
    gradients within grad_tol, g the largest |g| of this and the earlier steps.

    The update is lr·m̂/(√v̂ + eps) with m̂ = (β1·m + (1 − β1)·g)/(1 − β1^t) and v̂ likewise from
    g²: a gradient change Δ moves m̂ by <= Δ and √v̂ by <= Δ (|√a − √b| = |a − b|/(√a + √b)),
    so the update by <= lr/eps·Δ·(1 + |m̂|/eps), |m̂| <= g (an average of the gradients). Its own
    ~8 roundings (moments, bias corrections, square root, division) are at magnitude
    <= lr·g/eps; the decay w·(1 − lr·wd) and w + update round twice at the largest |w| = w.
    """
    return lr / eps * (1 + g / eps) * grad_tol + bound(8, lr * g / eps) + bound(2, w)


def norm_tolerance(grads: Mapping[str, torch.Tensor], tols: Mapping[str, float]) -> float:
    """How far two gradient norms ‖g‖₂ over every tensor may differ when each entry of tensor k
    agrees within tols[k]: ‖Δg‖₂ <= sqrt(Σ_k numel_k·tols[k]²); the norm's own sum of squares
    rounds once per entry and per tensor at magnitude <= ‖g‖², which moves ‖g‖ by half of that
    relative error."""
    moved = sum(g.numel() * tols[k] ** 2 for k, g in grads.items()) ** 0.5
    norm = float(torch.stack([g.double().norm() for g in grads.values()]).norm())
    n = sum(g.numel() for g in grads.values()) + 2 * len(grads)
    return moved + bound(n, norm)


def bf16_grad_tolerance(g: torch.Tensor) -> float:
    """How far a gradient computed in bfloat16 (float32 masters, bf16 matmuls) may lie from the
    float32 one, entrywise: each per-position term of an entry carries the relative errors of
    BF16_PATH_ROUNDINGS roundings of size <= U_BF16; taken as independent (distinct values
    rounded), they add like a random walk (Higham and Mary, as `probable_bound`, lam = 8) at
    the scale of the terms' root sum of squares, <= RANDOM_WALK x the largest entry. The
    float32 reference's own error (`bound`) is far below."""
    lam = 8.0
    return lam * BF16_PATH_ROUNDINGS**0.5 * U_BF16 * RANDOM_WALK * float(g.abs().max())
