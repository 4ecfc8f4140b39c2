"""Policy-gradient losses and their aggregations (T1, arXiv 2501.11651, §3).

Rows are responses (N = B·K), columns response tokens (T); `mask (N, T)` marks real tokens;
`adv` is per response `(N,)` or per token `(N, T)`. The per-token loss is

    REINFORCE (clip_eps is None):  ℓ_t = −A · log π_θ(y_t)
    PPO (clip_eps = ε):            ℓ_t = max(−A·ρ_t, −A·clip(ρ_t, 1−ε, 1+ε)),
                                   ρ_t = exp(log π_θ(y_t) − log π_old(y_t))

and, with per-token weights `weight` (e.g. truncated importance-sampling weights w_t, see
`t1.algo.mismatch`), ℓ_t ← w_t · ℓ_t, a constant factor on each token's term and gradient.

Without weights the REINFORCE gradient is exactly −A·∇log π_θ per token, whatever `old_logp`
holds; there `old_logp` only feeds the ratio diagnostics (a learner/sampler mismatch shows up
as ratio ≠ 1).
Since ∇ρ = ρ·∇log π_θ, the PPO form equals REINFORCE on-policy (ρ = 1, nothing clipped).

Aggregations of ℓ (masked positions excluded; `n_i = Σ_t mask_{i,t}`; rows with n_i = 0, which
carry no gradient, are left out of the seq-mean averages):

    "token-mean"            Σ_{i,t} ℓ_{i,t} / Σ_i n_i                     (every token equal)
    "seq-mean-token-mean"   mean_i ( Σ_t ℓ_{i,t} / n_i )                  (every response equal)
    "seq-mean-token-sum"    mean_i   Σ_t ℓ_{i,t}
    "constant"              Σ_{i,t} ℓ_{i,t} / C,   C = `normalizer`, default N·T (Dr. GRPO)

The "constant" form (Dr. GRPO) divides by a number that does not depend on response lengths, so
long wrong answers are not penalised less per token than short ones; by default C is the mask's
rows × columns (N · max length), and a trainer that splits a batch into micro-batches should pass
one C for all of them (e.g. total rows × generation limit).

`LOSS_AGGREGATIONS` maps each name to `f(values (N, T), bool mask (N, T), normalizer) -> scalar`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._checks import as_bool_mask, check_2d, check_same_shape, pick

Aggregation = Callable[[torch.Tensor, torch.Tensor, float | None], torch.Tensor]


def _token_mean(values: torch.Tensor, m: torch.Tensor, normalizer: float | None) -> torch.Tensor:
    return values.sum() / m.sum().clamp_min(1)


def _seq_mean(row_values: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean of `row_values (N,)` over rows holding at least one token."""
    has_tokens = m.any(dim=1)  # (N,)
    return (row_values * has_tokens).sum() / has_tokens.sum().clamp_min(1)


def _seq_mean_token_mean(
    values: torch.Tensor, m: torch.Tensor, normalizer: float | None
) -> torch.Tensor:
    per_row = values.sum(dim=1) / m.sum(dim=1).clamp_min(1)  # (N,)
    return _seq_mean(per_row, m)


def _seq_mean_token_sum(
    values: torch.Tensor, m: torch.Tensor, normalizer: float | None
) -> torch.Tensor:
    return _seq_mean(values.sum(dim=1), m)


def _constant(values: torch.Tensor, m: torch.Tensor, normalizer: float | None) -> torch.Tensor:
    c = float(m.numel()) if normalizer is None else float(normalizer)
    if not c > 0:
        raise ValueError(f"normalizer must be > 0, got {normalizer!r}")
    return values.sum() / c


LOSS_AGGREGATIONS: dict[str, Aggregation] = {
    "token-mean": _token_mean,
    "seq-mean-token-mean": _seq_mean_token_mean,
    "seq-mean-token-sum": _seq_mean_token_sum,
    "constant": _constant,
}


def aggregate(
    values: torch.Tensor,
    mask: torch.Tensor,
    agg: str = "token-mean",
    normalizer: float | None = None,
) -> torch.Tensor:
    """Reduce per-token `values (N, T)` to a scalar as `agg` says, ignoring masked positions.

    Masked positions are replaced by 0 before reducing, so inf or nan there changes nothing.
    `normalizer` is only meaningful for "constant" and is rejected elsewhere.
    """
    check_2d("values", values)
    check_same_shape(values=values, mask=mask)
    fn = pick(LOSS_AGGREGATIONS, agg, "loss aggregation")
    if normalizer is not None and agg != "constant":
        raise ValueError(f"normalizer is only used by agg='constant', not {agg!r}")
    m = as_bool_mask(mask)
    return fn(torch.where(m, values, 0.0), m, normalizer)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over masked-in tokens (0 when there are none), e.g. the entropy H̄."""
    return aggregate(values, mask, "token-mean")


def _ratio_stats(ratio: torch.Tensor, m: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean, max and min of ρ over real tokens (1.0 when there are none), detached."""
    ratio = ratio.detach()
    count = m.sum()
    empty = count == 0
    one = torch.ones((), dtype=ratio.dtype, device=ratio.device)
    mean = torch.where(m, ratio, 0.0).sum() / count.clamp_min(1)
    high = torch.where(m, ratio, -torch.inf).amax() if ratio.numel() else one
    low = torch.where(m, ratio, torch.inf).amin() if ratio.numel() else one
    return {
        "ratio_mean": torch.where(empty, one, mean),
        "ratio_max": torch.where(empty, one, high),
        "ratio_min": torch.where(empty, one, low),
    }


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float | None = None,
    agg: str = "token-mean",
    normalizer: float | None = None,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The policy-gradient loss and its diagnostics (detached 0-dim tensors).

    `weight (N, T)`, when given, multiplies each token's term (detached: no gradient of its own).

    Diagnostics: `clip_frac` (share of real tokens where the clipped term is the active one;
    0 for REINFORCE), `ratio_mean`, `ratio_max`, `ratio_min` (ρ over real tokens).
    """
    check_2d("logp", logp)
    check_same_shape(logp=logp, old_logp=old_logp, mask=mask)
    if adv.dim() == 1 and adv.shape[0] == logp.shape[0]:
        adv = adv.unsqueeze(1)  # (N, 1): one advantage for every token of a response
    elif adv.shape != logp.shape:
        raise ValueError(
            f"adv must be (N,) or (N, T) = {tuple(logp.shape)}; got shape {tuple(adv.shape)}"
        )
    if clip_eps is not None and not clip_eps > 0:
        raise ValueError(f"clip_eps must be > 0 or None, got {clip_eps!r}")
    if weight is not None:
        check_same_shape(logp=logp, weight=weight)
    m = as_bool_mask(mask)
    # zero padding before any arithmetic so nothing from it (inf, nan) reaches loss or gradient
    logp = torch.where(m, logp, 0.0)
    old_logp = torch.where(m, old_logp.detach(), 0.0)
    adv = torch.where(m, adv.detach(), 0.0)  # (N, T)
    ratio = torch.exp(logp - old_logp)  # (N, T), 1 on padding
    if clip_eps is None:
        per_token = -adv * logp
        clipped = torch.zeros_like(m)
    else:
        unclipped = -adv * ratio
        clipped_loss = -adv * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)
        per_token = torch.maximum(unclipped, clipped_loss)
        clipped = (clipped_loss > unclipped) & m
    if weight is not None:
        per_token = per_token * torch.where(m, weight.detach(), 0.0)
    loss = aggregate(per_token, m, agg, normalizer)
    diag = {"clip_frac": clipped.sum() / m.sum().clamp_min(1), **_ratio_stats(ratio, m)}
    return loss, {name: value.detach().float() for name, value in diag.items()}
