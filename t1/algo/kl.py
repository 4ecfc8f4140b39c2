"""KL estimators between the policy and the anchor model (T1, arXiv 2501.11651, §3).

Per token, with the sampled token y_t ~ π_θ and the log ratio ℓ = log π_θ(y_t) − log π_ref(y_t):

    k1 = ℓ                                 unbiased for KL(π_θ‖π_ref), high variance, can be < 0
    k2 = ½ · ℓ²                            biased, low variance, ≥ 0
    k3 = exp(−ℓ) − (−ℓ) − 1                unbiased, low variance, ≥ 0 (Schulman, "Approximating
                                           KL divergence", 2020)

(k3 written with the issue's variables: `exp(ref − logp) − (ref − logp) − 1`.)

Per response (rows of `(N, T)` tensors, N = B·K), summed over response tokens only:

    KL_i = Σ_t mask_{i,t} · k(ℓ_{i,t})

T1 uses KL_i with k1, `Σ_t (log π_θ − log π_ref)`, as the default here. Padding positions are
zeroed before any arithmetic, so whatever values they hold (even inf or nan) change nothing,
neither in the value nor in the gradient.

`KL_ESTIMATORS` maps "k1" | "k2" | "k3" to `f(logp, ref_logp) -> per-token tensor`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._checks import as_bool_mask, check_2d, check_same_shape, pick


def k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """`log π_θ − log π_ref`: the plain log ratio."""
    return logp - ref_logp


def k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """`½ (log π_θ − log π_ref)²`."""
    return 0.5 * (logp - ref_logp).square()


def k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """`exp(ref − logp) − (ref − logp) − 1`, never negative since e^x ≥ 1 + x."""
    log_ratio = ref_logp - logp
    return torch.expm1(log_ratio) - log_ratio


KL_ESTIMATORS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "k1": k1,
    "k2": k2,
    "k3": k3,
}


def kl_per_token(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Elementwise KL estimate of `kind` ("k1" | "k2" | "k3") for tensors of one shape."""
    check_same_shape(logp=logp, ref_logp=ref_logp)
    return pick(KL_ESTIMATORS, kind, "KL estimator")(logp, ref_logp)


def sequence_kl(
    logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, kind: str = "k1"
) -> torch.Tensor:
    """`(N, T)` → `(N,)`: the per-token KL estimate summed over each row's response tokens."""
    check_2d("logp", logp)
    check_same_shape(logp=logp, ref_logp=ref_logp, mask=mask)
    estimator = pick(KL_ESTIMATORS, kind, "KL estimator")
    m = as_bool_mask(mask)
    # zero the padding first, so garbage there (inf, nan) never reaches exp() or the gradient
    logp = torch.where(m, logp, 0.0)
    ref_logp = torch.where(m, ref_logp, 0.0)
    per_token = estimator(logp, ref_logp)  # (N, T), exactly 0 on padding
    return per_token.sum(dim=1)
