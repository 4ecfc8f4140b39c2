"""One learner update of the T1 RL step, wired from `t1.algo` (no maths of its own).

    old / ref log-probs  ->  T1 advantages  ->  selection  ->  loss with entropy bonus  ->  grads

The loss of the selected samples is

    L = L_pg(logp, old_logp, A, agg) − γ · H̄,     H̄ = token-mean entropy of π_θ on responses

computed in micro-batches whose partial losses are weighted by their share of the *global*
batch (all micro-batches on all ranks), so the gradient equals that of one pass over the whole
batch: micro-batching and data parallelism change nothing but memory and speed. Rows whose
term is exactly 0 (advantage 0, no entropy bonus) are not run at all (`contributing_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from t1.algo import (
    ADVANTAGES,
    informative_groups,
    policy_loss,
    rloo_advantages,
    select_samples,
    t1_advantages,
)
from t1.models.sharded import root_forward
from t1.rollout import Batch, compute_logprobs
from t1.train.distributed import DistInfo, all_sum, max_count

# config name -> t1.algo family name
_ADVANTAGE_NAMES = {"rloo": "rloo", "grpo": "grpo", "drgrpo": "dr_grpo"}


def compute_advantages(
    rewards: torch.Tensor, seq_kl: torch.Tensor | None, beta: float, kind: str = "rloo"
) -> torch.Tensor:
    """(B, K) advantages: the chosen baseline minus β·(leave-one-out-normalised sequence KL)."""
    if kind == "rloo":
        if seq_kl is None or beta == 0:
            return rloo_advantages(rewards)
        return t1_advantages(rewards, seq_kl, beta)
    adv = ADVANTAGES[_ADVANTAGE_NAMES[kind]](rewards)
    if seq_kl is not None and beta != 0:
        adv = adv - beta * rloo_advantages(seq_kl.detach())
    return adv


def choose_rows(
    rewards: torch.Tensor,
    train_k: int | None,
    strategy: str,
    drop_equal: bool,
    generator: torch.Generator,
) -> torch.Tensor:
    """Flat row indices (into the B·K responses) that the gradient sees."""
    B, K = rewards.shape
    idx = select_samples(rewards, train_k, strategy, generator)  # (B, k)
    rows = idx + torch.arange(B).unsqueeze(1) * K  # (B, k)
    if drop_equal:
        rows = rows[informative_groups(rewards)]
    return rows.reshape(-1)


def slice_batch(batch: Batch, rows: torch.Tensor) -> Batch:
    """The rows `rows` of a batch, trimmed to the longest response among them."""
    mask = batch.response_mask[rows]
    width = int(mask.sum(1).max().item()) if len(rows) else 0
    keep = batch.prompt_len + width
    return Batch(
        input_ids=batch.input_ids[rows, :keep],
        attention_mask=batch.attention_mask[rows, :keep],
        position_ids=batch.position_ids[rows, :keep],
        prompt_len=batch.prompt_len,
        response_mask=mask[:, :width],
    )


@dataclass
class LossSpec:
    agg: str
    clip_eps: float | None
    entropy_coef: float
    temperature: float
    micro_batch_size: int
    # the generation limit: Dr. GRPO's constant normaliser is rows x this
    max_new_tokens: int
    # skip the rows whose loss term is exactly 0 (`contributing_rows`)
    skip_zero_advantage: bool = True
    # the model is sharded (FSDP2): equal forward counts on every rank (module docstring)
    sharded: bool = False


def logprobs(
    model: torch.nn.Module,
    batch: Batch,
    temperature: float,
    micro_batch_size: int,
    with_entropy: bool = False,
    sharded: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """`compute_logprobs`, run as the FSDP root's forward (`t1.models.sharded.root_forward`:
    the output head may be used outside the model's own forward) and, sharded, without prompt
    sharing (one forward per micro-batch on every rank)."""

    def run() -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return compute_logprobs(
            model, batch, temperature, micro_batch_size, with_entropy, share_prompts=not sharded
        )

    return root_forward(model, run)


def with_response_column(batch: Batch) -> Batch:
    """`batch`, given one padding column when it has no response token at all, so that its
    log-prob pass runs a forward like every other rank's (sharded models)."""
    if batch.response_mask.shape[1] > 0:
        return batch
    n = len(batch)
    zeros = torch.zeros((n, 1), dtype=torch.long)
    return Batch(
        input_ids=torch.cat([batch.input_ids, zeros], dim=1),
        attention_mask=torch.cat([batch.attention_mask, zeros], dim=1),
        position_ids=torch.cat([batch.position_ids, zeros], dim=1),
        prompt_len=batch.prompt_len,
        response_mask=torch.zeros((n, 1)),
    )


def _empty_pass(model: torch.nn.Module, spec: LossSpec) -> None:
    """A forward and backward whose gradient is exactly 0: one token of prompt, one masked
    response position (keeps a sharded model's collectives in step across ranks)."""
    ids = torch.zeros((1, 2), dtype=torch.long)
    dummy = Batch(ids, torch.ones_like(ids), torch.arange(2)[None], 1, torch.zeros((1, 1)))
    out = logprobs(model, dummy, spec.temperature, 1, spec.entropy_coef > 0, sharded=True)
    parts = out if isinstance(out, tuple) else (out,)
    (sum(p.sum() for p in parts) * 0.0).backward()


def _weight(agg: str, mask: torch.Tensor, totals: torch.Tensor) -> float:
    """Share of the global batch one micro-batch's aggregated loss stands for."""
    tokens, rows = totals.tolist()
    if agg == "token-mean":
        return float(mask.sum()) / max(tokens, 1.0)
    if agg == "constant":
        return 1.0
    return float((mask.sum(1) > 0).sum()) / max(rows, 1.0)  # seq-mean-*: mean over responses


def contributing_rows(adv: torch.Tensor, mask: torch.Tensor, spec: LossSpec) -> torch.Tensor:
    """Indices of the rows the learner must run: all, or those whose loss term can be nonzero.

    Without an entropy bonus a row's term is A · (a function of its log-probs), the KL entering
    through A; at A = 0 it and its gradient are exactly 0 (the padding is zeroed before any
    arithmetic), so skipping the row changes nothing. One row is kept when no row has a
    nonzero A: its zero gradient gives every parameter the full pass reaches a gradient, so
    the optimiser (AdamW's momentum and decay) steps exactly as after the full pass.
    """
    everything = torch.arange(len(mask))
    if not spec.skip_zero_advantage or spec.entropy_coef != 0 or len(mask) == 0:
        return everything
    nonzero = adv != 0 if adv.dim() == 1 else (adv != 0).any(dim=1)
    lengths = mask.sum(1)
    rows = (nonzero & (lengths > 0)).nonzero().squeeze(-1)
    if len(rows) == 0:
        rows = lengths.masked_fill(lengths == 0, mask.shape[1] + 1).argmin().view(1)
    return rows


def accumulate_gradients(
    model: torch.nn.Module,
    batch: Batch,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    spec: LossSpec,
    info: DistInfo,
    weight: torch.Tensor | None = None,
) -> dict[str, float]:
    """Backpropagate the loss of `batch` (this rank's rows) in micro-batches; returns stats.

    `weight (N, T)`: per-token factors of the policy-gradient terms (truncated importance
    sampling, `t1.train.rl_logp`), or None.
    """
    mask = batch.response_mask
    local = torch.tensor([float(mask.sum()), float((mask.sum(1) > 0).sum())], dtype=torch.float64)
    totals = all_sum(local, info)  # global (tokens, responses)
    normalizer = max(float(totals[1]), 1.0) * spec.max_new_tokens
    sums = {"loss": 0.0, "pg_loss": 0.0, "entropy": 0.0, "clip_frac": 0.0, "ratio_max": 1.0}
    device = next(model.parameters()).device
    run = contributing_rows(adv, mask, spec)
    micro = [run[s : s + spec.micro_batch_size] for s in range(0, len(run), spec.micro_batch_size)]
    micro = [(rows, mb) for rows in micro if (mb := slice_batch(batch, rows)).response_mask.numel()]
    # agreed before any pass: a collective must not meet another rank's forward
    empty = max_count(len(micro), info) - len(micro) if spec.sharded else 0
    for rows, mb in micro:
        m = mb.response_mask.to(device)
        width = m.shape[1]
        out = logprobs(
            model, mb, spec.temperature, spec.micro_batch_size, spec.entropy_coef > 0, spec.sharded
        )
        logp, ent = out if spec.entropy_coef > 0 else (out, None)
        pg, diag = policy_loss(
            logp,
            old_logp[rows, :width].to(device),
            adv[rows].to(device),
            m,
            spec.clip_eps,
            spec.agg,
            normalizer if spec.agg == "constant" else None,
            weight[rows, :width].to(device) if weight is not None else None,
        )
        w = _weight(spec.agg, m, totals)
        loss = pg * w
        tok_share = float(m.sum()) / max(float(totals[0]), 1.0)
        if ent is not None:
            ent_mean = (ent * m).sum() / m.sum().clamp_min(1)
            loss = loss - spec.entropy_coef * ent_mean * tok_share
            sums["entropy"] += float(ent_mean.detach()) * tok_share
        loss.backward()
        sums["loss"] += float(loss.detach())
        sums["pg_loss"] += float(pg.detach()) * w
        sums["clip_frac"] += float(diag["clip_frac"]) * tok_share
        sums["ratio_max"] = max(sums["ratio_max"], float(diag["ratio_max"]))
    for _ in range(empty):
        _empty_pass(model, spec)
    # the sums above are this rank's shares of global means: add the other ranks' shares
    keys = ["loss", "pg_loss", "entropy", "clip_frac"]
    reduced = all_sum(torch.tensor([sums[k] for k in keys], dtype=torch.float64), info)
    return {**dict(zip(keys, reduced.tolist())), "ratio_max": sums["ratio_max"]}
