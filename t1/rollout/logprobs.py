"""The learner's log-prob pass over a `Batch`: the same tempered distribution the sampler used.

For response token y_t with logits z_t (the position before it) and temperature T:

    logp_t = z_t[y_t] / T - logsumexp(z_t / T)                          (log softmax(z_t / T)[y_t])
    H_t    = logsumexp(z_t / T) - sum_v softmax(z_t / T)_v * z_t,v / T  (full-vocabulary entropy)

Only the R + 1 last positions' logits are computed (`logits_to_keep`), one micro-batch at a time,
so the largest float32 tensor is (micro_batch, R, V); the entropy is `t1.algo.token_entropy`
(chunked; its backward recomputes the softmax instead of keeping it). Autograd is kept when grad
is enabled: the learner backpropagates through `logp` (and `entropy` for the entropy bonus).
Padded response positions get logp = 0 and entropy = 0.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from t1.algo import token_entropy
from t1.rollout.batch import Batch

# positions per chunk of the entropy computation (memory: a few chunk x V float32 buffers)
ENTROPY_CHUNK = 512


def supports_logits_to_keep(model: Any) -> bool:
    """Whether `model.forward` can skip the lm_head on positions whose logits nobody reads."""
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def response_logits(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    R: int,
) -> torch.Tensor:
    """(b, R, V) logits predicting the R response tokens (columns P-1 .. P+R-2)."""
    kwargs = {"logits_to_keep": R + 1} if supports_logits_to_keep(model) else {}
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
        **kwargs,
    )
    logits = out.logits[:, -(R + 1) :]  # (b, R + 1, V)
    return logits[:, :-1]


def tempered_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log softmax(logits / T)[targets] and, optionally, the entropy of softmax(logits / T)."""
    z = logits.float() / temperature  # (b, R, V)
    lse = torch.logsumexp(z, dim=-1)  # (b, R)
    logp = z.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - lse
    if not with_entropy:
        return logp, None
    # chunked, with a backward that keeps only z: no extra (b, R, V) tensors held for autograd
    return logp, token_entropy(z, chunk_size=ENTROPY_CHUNK)


def compute_logprobs(
    model: Any,
    batch: Batch,
    temperature: float = 1.0,
    micro_batch_size: int = 16,
    with_entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """(N, R) log-probs of the response tokens (and (N, R) entropies when `with_entropy`)."""
    if temperature <= 0:
        raise ValueError(f"compute_logprobs needs a temperature > 0, got {temperature}")
    if micro_batch_size < 1:
        raise ValueError(f"micro_batch_size must be >= 1, got {micro_batch_size}")
    device = next(model.parameters()).device
    N, R = batch.response_mask.shape
    P = batch.prompt_len
    if R == 0:
        empty = torch.zeros((N, 0), device=device)
        return (empty, empty.clone()) if with_entropy else empty
    logps, ents = [], []
    for s in range(0, N, micro_batch_size):
        e = min(N, s + micro_batch_size)
        ids = batch.input_ids[s:e].to(device)
        logits = response_logits(
            model,
            ids,
            batch.attention_mask[s:e].to(device),
            batch.position_ids[s:e].to(device),
            R,
        )
        mask = batch.response_mask[s:e].to(device)
        logp, ent = tempered_logprobs(logits, ids[:, P:], temperature, with_entropy)
        logps.append(logp * mask)
        if with_entropy:
            ents.append(ent * mask)
    logp = torch.cat(logps)
    return (logp, torch.cat(ents)) if with_entropy else logp
