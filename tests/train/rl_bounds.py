"""Tolerances of one RL step of the toy task (rl_toy.py) taken twice from the same state on two
paths (one process or several, sharded or replicated, other micro-batches): the metrics, the
gradients and the Adam update, each a bound of tests/rounding.py (n float32 roundings at
magnitude m differ by <= n·EPS32·m).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from rl_toy import ScriptedEngine, toy_problems
from rounding import (
    adam_step_tolerance,
    bound,
    entropy_tolerance,
    grad_terms,
    largest_logprob,
    logprob_tolerance,
)

from t1.models.prompts import build_prompt
from t1.rollout import Batch, collate_rollouts, compute_logprobs, sampling_params


def scripted_batch(cfg: Any, tok: Any, n_problems: int) -> Batch:
    """The rows the scripted engine gives the first n problems' prompts (K each): every row a
    step can draw, so bounds taken over them hold for any step's batch."""
    prompts = [build_prompt(tok, p.prompt_input, cfg.data) for p in toy_problems(n_problems)]
    rollouts = ScriptedEngine(tok).generate(prompts, cfg.rl.k, sampling_params(cfg.sampling, 0))
    return collate_rollouts(rollouts, tok.pad_token_id)


def max_row_kl(policy: Any, anchor: Any, batch: Batch, T: float) -> float:
    """The largest |Σ_t (log π − log π_ref)| of a row (k1): what bounds β·RLOO(kl) in A."""
    with torch.no_grad():
        diff = compute_logprobs(policy, batch, T) - compute_logprobs(anchor, batch, T)
    return float((diff * batch.response_mask).sum(1).abs().max())


@dataclass
class StepBounds:
    # roundings behind one gradient entry (m: CANCEL x the tensor's largest entry)
    grad_terms: int
    kl: float
    entropy: float
    loss: float


def step_bounds(cfg: Any, policy: Any, anchor: Any, batch: Batch, ranks: int = 1) -> StepBounds:
    """The bounds of one step of `cfg` (k1 KL, RLOO, token-mean loss with an entropy bonus)
    from `policy` and `anchor` on rows like `batch`, its gradients summed over `ranks`."""
    P, R = batch.input_ids.shape[1], batch.response_mask.shape[1]  # positions, response tokens
    rows, V = cfg.rl.prompts_per_step * cfg.rl.k, policy.config.vocab_size
    T = cfg.sampling.temperature
    d_pol = logprob_tolerance(policy, batch.input_ids, T)  # one log-prob of the policy
    d_anc = logprob_tolerance(anchor, batch.input_ids, T)  # and of the anchor
    L = max(largest_logprob(m, batch.input_ids, T) for m in (policy, anchor))  # size of one
    # kl: per row Σ_t (old − ref) over <= R tokens (k1): moves by <= R·(d_pol + d_anc); the
    # sums over R tokens and the mean over the rows round at magnitude <= 2·R·L
    kl = R * (d_pol + d_anc) + bound(R + rows, 2 * R * L)
    # entropy: each token's within entropy_tolerance; the mean over the tokens rounds at <= L
    entropy = entropy_tolerance(d_pol, L, V) + bound(rows * R, L)
    # loss: token mean of −A·log p, minus γ·entropy. A = RLOO(r) − β·RLOO(kl) with r in
    # {0, 1}: |A| <= 1 + 2β·max|kl of a row|; RLOO moves by <= twice its inputs' change.
    # −A·log p moves by <= |A|·d_pol + L·ΔA, and the mean rounds at magnitude <= |A|·L
    beta, gamma = cfg.rl.beta, cfg.rl.entropy_coef
    a_max = 1 + 2 * beta * max_row_kl(policy, anchor, batch, T)
    d_adv = 2 * beta * (R * (d_pol + d_anc) + bound(R + cfg.rl.k, 2 * R * L))
    loss = a_max * d_pol + L * d_adv + gamma * entropy + bound(rows * R, a_max * L)
    # a gradient entry: a log-prob's path forward and back, the sum over the rows' positions,
    # then the sum over ranks (ranks − 1 additions)
    n = grad_terms(policy.config, P, rows * P) + ranks - 1
    return StepBounds(n, kl, entropy, loss)


def assert_metrics_close(mine: dict, theirs: dict, b: StepBounds, grad_norm: float) -> None:
    """One step's metrics row of two runs: the reward mean exact, the rest within `b`."""
    # rewards are 0 or 1: a mean of 32 (or a sum of means of 16) is an exact binary fraction
    assert theirs["reward/mean"] == mine["reward/mean"]
    for key, tol in (("kl", b.kl), ("entropy", b.entropy), ("loss", b.loss)):
        assert theirs[key] == pytest.approx(mine[key], rel=0, abs=tol), key
    assert theirs["grad_norm"] == pytest.approx(mine["grad_norm"], rel=0, abs=grad_norm)


def update_tolerances(
    after: dict, grad_tols: dict, g_max: dict, lr: float, eps: float
) -> dict[str, float]:
    """Per tensor, how far the weights after one Adam step from the same state may land
    (`adam_step_tolerance`); g_max: each tensor's largest |g| over this and the earlier steps."""
    return {
        k: adam_step_tolerance(tol_g, lr, eps, g_max[k], float(after[k].abs().max()))
        for k, tol_g in grad_tols.items()
    }


def assert_within(a: dict, b: dict, tols: dict[str, float], what: str = "") -> None:
    """Each tensor of `tols` entrywise within its tolerance."""
    assert tols and tols.keys() <= a.keys() and tols.keys() <= b.keys()
    for k, tol in tols.items():
        torch.testing.assert_close(
            b[k], a[k], rtol=0, atol=tol, msg=lambda t, k=k: f"{what}{k}: {t}"
        )


def anchor_tolerances(anchor: dict, weights: dict, tols: dict, alpha: float) -> dict[str, float]:
    """The EMA anchor α·ref + (1 − α)·θ from the same ref: moves by (1 − α) x the weights'
    tolerance, plus its three roundings at the larger of |ref| and |θ|."""
    return {
        k: (1 - alpha) * tol
        + bound(3, max(float(anchor[k].abs().max()), float(weights[k].abs().max())))
        for k, tol in tols.items()
    }
