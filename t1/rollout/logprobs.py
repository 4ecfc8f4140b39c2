"""The learner's log-prob pass over a `Batch`: the same tempered distribution the sampler used.

For response token y_t with logits z_t (the position before it) and temperature T:

    logp_t = z_t[y_t] / T - logsumexp(z_t / T)                          (log softmax(z_t / T)[y_t])
    H_t    = logsumexp(z_t / T) - sum_v softmax(z_t / T)_v * z_t,v / T  (full-vocabulary entropy)

Only the R + 1 last positions' logits are computed (`logits_to_keep`), one micro-batch at a time,
so the largest float32 tensor is (micro_batch, R, V); the entropy is `t1.algo.token_entropy`
(chunked; its backward recomputes the softmax instead of keeping it). Autograd is kept when grad
is enabled: the learner backpropagates through `logp` (and `entropy` for the entropy bonus).
Padded response positions get logp = 0 and entropy = 0.

Shared prompts. An RL batch holds K responses to each prompt, and the prompt's hidden states are
the same in all K rows. So each distinct prompt of a micro-batch is run once, its KV cache (with
autograd) is copied to its rows, and the responses are run on top of it:

    [prompt_u] -> cache_u, z_{P-1}          once per distinct prompt u         (U, P) tokens
    cache_u -> rows of u;  [y_0 .. y_{R-2}] -> z_P .. z_{P+R-2}   per row       (b, R-1) tokens

instead of (b, P+R) tokens: the same maths (log-probs equal to float rounding; the gradient sums
the K rows' contributions to the prompt, as the full pass does), with (b-U)·P fewer positions
through the model. On the tiny model, P ~ 24, R = 32, K = 8, it cuts the learner's forward and
backward by about a quarter. Models whose cache would not hold the prompt take the full pass:
gradient checkpointing (which drops the cache), sliding-window or non-attention layers, stand-ins.

Packed responses. On Llama/Qwen2 models the response pass skips padding: only the positions whose
next token is a response token run (`t1.rollout.fastpath.packed_response_logits`), the others'
logits are 0 (their log-probs are masked out below either way); the prompt pass is the same lean
pass over the prompts' real tokens (`t1.rollout.fastpath.prefill_logits`).
"""

from __future__ import annotations

from typing import Any

import torch

from t1.algo import token_entropy
from t1.rollout.batch import Batch
from t1.rollout.cache import cache_kwargs, supports_logits_to_keep
from t1.rollout.fastpath import (
    DecodePlan,
    packed_response_logits,
    prefill_logits,
    supports_packed_learner,
)

# positions per chunk of the entropy computation (memory: a few chunk x V float32 buffers)
ENTROPY_CHUNK = 512


def supports_shared_prompts(model: Any) -> bool:
    """Whether a `DynamicCache` of the prompt, run with autograd, can feed the response pass."""
    checkpointing = getattr(model, "is_activation_checkpointing", None)  # transformers >= 5.2x
    if checkpointing is None:
        checkpointing = getattr(model, "is_gradient_checkpointing", False)
    if checkpointing:
        return False  # checkpointed layers drop the cache
    if not cache_kwargs(model, None):
        return False
    config = getattr(model, "config", None)
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    return all(t == "full_attention" for t in layer_types)


def shared_prompt_logits(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    P: int,
    R: int,
    response_mask: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """(b, R, V) like `response_logits`, each distinct prompt run once (module docstring).

    With `response_mask` ((b, R), 1 on response tokens) and a model `t1.rollout.fastpath`
    supports, the responses run packed (no work on padding) and the logits are 0 where the
    mask is. None when the model left its cache empty, or when no prompt repeats in the
    micro-batch and the responses cannot run packed (then one full pass costs less).
    """
    from transformers import DynamicCache

    head = torch.cat([input_ids[:, :P], attention_mask[:, :P]], dim=1)  # (b, 2P)
    uniq, inverse = torch.unique(head, dim=0, return_inverse=True)  # (U, 2P), (b,)
    b, U = input_ids.shape[0], uniq.shape[0]
    packed = response_mask is not None and supports_packed_learner(model)
    if U == b and not packed:
        return None
    rows = torch.arange(b, device=input_ids.device)
    first = torch.full((U,), b, device=input_ids.device).scatter_reduce(0, inverse, rows, "amin")
    cache = DynamicCache(config=model.config)
    prompt = (input_ids[first, :P], position_ids[first, :P], attention_mask[first, :P])
    plan = DecodePlan(model, trainable=True) if packed else None
    if plan is not None:
        last = prefill_logits(plan, cache, *prompt)  # (U, V)
    else:
        kwargs = {"logits_to_keep": 1} if supports_logits_to_keep(model) else {}
        out = model(
            input_ids=prompt[0],
            attention_mask=prompt[2],
            position_ids=prompt[1],
            use_cache=True,
            **cache_kwargs(model, cache),
            **kwargs,
        )
        if cache.get_seq_length() != P:
            return None
        last = out.logits[:, -1]
    last = last[inverse, None]  # (b, 1, V): predicts response token 0
    if R == 1:
        return last
    cache.batch_select_indices(inverse)  # (U, ...) -> (b, ...); backward sums the rows
    if plan is not None:
        rest = packed_response_logits(
            plan,
            cache,
            input_ids[:, P : P + R - 1],
            position_ids[:, P : P + R - 1],
            attention_mask[:, :P],
            response_mask[:, 1:].bool(),  # input y_t is needed when y_{t+1} is a response token
        )
        return torch.cat([last, rest], dim=1)
    out = model(
        input_ids=input_ids[:, P : P + R - 1],
        attention_mask=attention_mask[:, : P + R - 1],
        position_ids=position_ids[:, P : P + R - 1],
        use_cache=True,
        **cache_kwargs(model, cache),
    )
    return torch.cat([last, out.logits[:, -(R - 1) :]], dim=1)  # (b, R, V)


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
    share_prompts: bool = True,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """(N, R) log-probs of the response tokens (and (N, R) entropies when `with_entropy`).

    `share_prompts`: run each distinct prompt of a micro-batch once (module docstring); the
    result is the same either way, to float rounding.
    """
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
    share = share_prompts and supports_shared_prompts(model)
    logps, ents = [], []
    for s in range(0, N, micro_batch_size):
        e = min(N, s + micro_batch_size)
        ids = batch.input_ids[s:e].to(device)
        am = batch.attention_mask[s:e].to(device)
        pos = batch.position_ids[s:e].to(device)
        mask = batch.response_mask[s:e].to(device)
        logits = shared_prompt_logits(model, ids, am, pos, P, R, mask) if share else None
        if logits is None:
            logits = response_logits(model, ids, am, pos, R)
        logp, ent = tempered_logprobs(logits, ids[:, P:], temperature, with_entropy)
        logps.append(logp * mask)
        if with_entropy:
            ents.append(ent * mask)
    logp = torch.cat(logps)
    return (logp, torch.cat(ents)) if with_entropy else logp
