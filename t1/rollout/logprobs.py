"""The learner's log-prob pass over a `Batch`: the same tempered distribution the sampler used.

For response token y_t with logits z_t (the position before it) and temperature T:

    logp_t = z_t[y_t] / T - logsumexp(z_t / T)                          (log softmax(z_t / T)[y_t])
    H_t    = logsumexp(z_t / T) - sum_v softmax(z_t / T)_v * z_t,v / T  (full-vocabulary entropy)

One micro-batch at a time. Autograd is kept when grad is enabled: the learner backpropagates
through `logp` (and `entropy` for the entropy bonus). Padded response positions get logp = 0 and
entropy = 0, exactly.

The chunked head. For the families whose logits are `lm_head(decoder(...))` (Llama, Qwen2,
Qwen3, Mistral: `t1.rollout.head`), the model runs with no logits kept (`logits_to_keep` an
empty index) and a hook reads its decoder's final hidden states: module calls throughout, in
which FSDP2 unshards the root's and each layer's parameters. Only the hidden states that
predict a response token go through the output head, `chunk` positions at a time, with a
backward that recomputes each chunk's logits (`t1.rollout.head.head_logprobs`). No
(micro_batch, R, V) tensor exists: peak extra memory is a few (chunk, V) buffers and the head
weight's gradient. Other models (stand-ins, families that cap or scale their logits) run their
own forward: their R + 1 last positions' logits (`logits_to_keep`), float32 (micro_batch, R, V),
and `t1.algo.token_entropy` (chunked, its backward recomputes the softmax).

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

LoRA. A model with peft's LoRA layers injected (t1.models.lora) keeps its class, decoder and
head, so every path above applies; its adapted projections run as their own modules in the lean
passes. A `PeftModel` wrapper is unwrapped to the causal LM it calls (`unwrap_peft`).

Packed responses. On Llama/Qwen2 models the response pass skips padding: only the positions whose
next token is a response token run (`t1.rollout.fastpath.packed_response_hidden`), and their
hidden states go to the chunked head; the prompt pass is the same lean pass over the prompts'
real tokens (`t1.rollout.fastpath.prefill_hidden`). The lean passes read the layers' weights
directly, so a model sharded by FSDP2 (whose `fully_shard` renames the class FSDP<Name>) takes
the model's module calls instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from t1.algo import token_entropy
from t1.rollout.batch import Batch
from t1.rollout.cache import cache_kwargs, supports_logits_to_keep
from t1.rollout.fastpath import (
    DecodePlan,
    packed_response_hidden,
    prefill_hidden,
    supports_packed_learner,
)
from t1.rollout.head import (
    chunked_head_unsupported,
    decoder,
    head_logprobs,
    output_head,
    unwrap_peft,
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


def _prompt_groups(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, P: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(b,) each row's distinct prompt and (U,) one row of each distinct prompt."""
    head = torch.cat([input_ids[:, :P], attention_mask[:, :P]], dim=1)  # (b, 2P)
    uniq, inverse = torch.unique(head, dim=0, return_inverse=True)  # (U, 2P), (b,)
    b, U = input_ids.shape[0], uniq.shape[0]
    rows = torch.arange(b, device=input_ids.device)
    first = torch.full((U,), b, device=input_ids.device).scatter_reduce(0, inverse, rows, "amin")
    return inverse, first


# run(input_ids, attention_mask, position_ids, cache, keep) -> (rows, positions, X): the model's
# logits (X = V) or its decoder's hidden states (X = hidden) at the `keep` last positions (0: all)
Run = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any, int], torch.Tensor]


def _run_logits(model: Any) -> Run:
    def run(ids: torch.Tensor, am: torch.Tensor, pos: torch.Tensor, cache: Any, keep: int):
        kwargs = {"logits_to_keep": keep} if keep and supports_logits_to_keep(model) else {}
        out = model(
            input_ids=ids,
            attention_mask=am,
            position_ids=pos,
            use_cache=cache is not None,
            **cache_kwargs(model, cache),
            **kwargs,
        )
        return out.logits[:, -keep:] if keep else out.logits

    return run


def _run_hidden(model: Any) -> Run:
    """The decoder's final hidden states, from a call of the whole model that computes no logits
    (`logits_to_keep` an empty index): module calls all the way down, so that hooks on the model,
    its decoder and its layers fire (FSDP2 unshards the root's and each layer's parameters in
    them, and keeps the root's, the head included, until backward)."""
    backbone = decoder(model)

    def run(ids: torch.Tensor, am: torch.Tensor, pos: torch.Tensor, cache: Any, keep: int):
        seen: list[torch.Tensor] = []
        hook = backbone.register_forward_hook(lambda m, a, out: seen.append(out.last_hidden_state))
        try:
            model(
                input_ids=ids,
                attention_mask=am,
                position_ids=pos,
                use_cache=cache is not None,
                logits_to_keep=ids.new_zeros(0),  # (b, 0, V) logits: none computed
                **cache_kwargs(model, cache),
            )
        finally:
            hook.remove()
        return seen[-1][:, -keep:] if keep else seen[-1]

    return run


def _shared_pass(
    model: Any, run: Run, ids: torch.Tensor, am: torch.Tensor, pos: torch.Tensor, P: int, R: int
) -> torch.Tensor | None:
    """(b, R, X) outputs predicting the responses, each distinct prompt run once; None when no
    prompt repeats in the micro-batch (one full pass costs less) or the model left its cache
    empty."""
    from transformers import DynamicCache

    inverse, first = _prompt_groups(ids, am, P)
    if len(first) == len(ids):
        return None
    cache = DynamicCache(config=model.config)
    last = run(ids[first, :P], am[first, :P], pos[first, :P], cache, 1)  # (U, 1, X)
    if cache.get_seq_length() != P:
        return None
    last = last[inverse]  # (b, 1, X): predicts response token 0
    if R == 1:
        return last
    cache.batch_select_indices(inverse)  # (U, ...) -> (b, ...); backward sums the rows
    rest = run(ids[:, P : P + R - 1], am[:, : P + R - 1], pos[:, P : P + R - 1], cache, 0)
    return torch.cat([last, rest], dim=1)  # (b, R, X)


def shared_prompt_logits(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    P: int,
    R: int,
) -> torch.Tensor | None:
    """(b, R, V) like `response_logits`, each distinct prompt run once (module docstring); None
    when no prompt repeats or the model left its cache empty."""
    args = (input_ids, attention_mask, position_ids, P, R)
    return _shared_pass(model, _run_logits(model), *args)


def shared_prompt_hidden(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    P: int,
    R: int,
    response_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Like `response_hidden`, each distinct prompt run once, the responses packed where
    `t1.rollout.fastpath` supports the model (module docstring); None when neither applies."""
    if not supports_packed_learner(model):
        hidden = _shared_pass(
            model, _run_hidden(model), input_ids, attention_mask, position_ids, P, R
        )
        return None if hidden is None else _at_responses(hidden.flatten(0, 1), response_mask)
    from transformers import DynamicCache

    inverse, first = _prompt_groups(input_ids, attention_mask, P)
    plan, cache = DecodePlan(model, trainable=True), DynamicCache(config=model.config)
    prompt = (input_ids[first, :P], position_ids[first, :P], attention_mask[first, :P])
    last = prefill_hidden(plan, cache, *prompt)  # (U, hidden)
    starts = response_mask[:, 0].nonzero().squeeze(1)  # rows with a response token 0
    hidden, index = [last[inverse[starts]]], [starts * R]
    if R > 1:
        cache.batch_select_indices(inverse)  # (U, ...) -> (b, ...); backward sums the rows
        rows, rest = packed_response_hidden(
            plan,
            cache,
            input_ids[:, P : P + R - 1],
            position_ids[:, P : P + R - 1],
            attention_mask[:, :P],
            response_mask[:, 1:].bool(),  # input y_t is needed when y_{t+1} is a response token
        )
        hidden.append(rest)  # rows index (b, R - 1); y_t predicts response token t + 1
        index.append(rows // (R - 1) * R + rows % (R - 1) + 1)
    return torch.cat(hidden), torch.cat(index)


def _at_responses(
    hidden: torch.Tensor, response_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (n, X) rows of (b·R, X) `hidden` at response tokens, and their (n,) indices."""
    index = response_mask.reshape(-1).nonzero().squeeze(1)
    return hidden[index], index


def response_hidden(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    P: int,
    R: int,
    response_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, hidden) the decoder's final hidden states that predict the n response tokens
    (columns P-1 .. P+R-2 where `response_mask` is 1), and their (n,) indices into the
    flattened (b·R) response block."""
    h = _run_hidden(model)(input_ids, attention_mask, position_ids, None, 0)  # (b, P + R, H)
    index = response_mask.reshape(-1).nonzero().squeeze(1)
    L = input_ids.shape[1]
    at = index // R * L + P - 1 + index % R  # the position before each response token
    return h.reshape(-1, h.shape[-1])[at], index


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
    z = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature  # (b, R, V)
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
    chunked_head: bool | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """(N, R) log-probs of the response tokens (and (N, R) entropies when `with_entropy`).

    `share_prompts`: run each distinct prompt of a micro-batch once (module docstring); the
    result is the same either way, to float rounding. `chunked_head`: apply the output head to
    the decoder's hidden states in chunks (`t1.rollout.head`) instead of taking the model's
    full logits; None chooses it wherever the model's family allows, True makes it an error
    where it does not.
    """
    model = unwrap_peft(model)  # a PeftModel's forward is its causal LM's (adapters included)
    if temperature <= 0:
        raise ValueError(f"compute_logprobs needs a temperature > 0, got {temperature}")
    if micro_batch_size < 1:
        raise ValueError(f"micro_batch_size must be >= 1, got {micro_batch_size}")
    unsupported = chunked_head_unsupported(model) if chunked_head is not False else None
    if chunked_head and unsupported:
        raise ValueError(f"chunked_head=True: {unsupported}")
    step = _logprobs_from_logits if chunked_head is False or unsupported else _logprobs_from_head
    device = next(model.parameters()).device
    N, R = batch.response_mask.shape
    if R == 0:
        empty = torch.zeros((N, 0), device=device)
        return (empty, empty.clone()) if with_entropy else empty
    share = share_prompts and supports_shared_prompts(model)
    logps, ents = [], []
    for s in range(0, N, micro_batch_size):
        rows = slice(s, min(N, s + micro_batch_size))
        mb = Batch(
            input_ids=batch.input_ids[rows].to(device),
            attention_mask=batch.attention_mask[rows].to(device),
            position_ids=batch.position_ids[rows].to(device),
            prompt_len=batch.prompt_len,
            response_mask=batch.response_mask[rows].to(device),
        )
        logp, ent = step(model, mb, temperature, with_entropy, share)
        logps.append(logp)
        ents.append(ent)
    logp = torch.cat(logps)
    return (logp, torch.cat(ents)) if with_entropy else logp


def _logprobs_from_head(
    model: Any, mb: Batch, temperature: float, with_entropy: bool, share: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One micro-batch through the decoder, then the chunked head at the response tokens only;
    exactly 0 elsewhere."""
    (b, R), P = mb.response_mask.shape, mb.prompt_len
    args = (mb.input_ids, mb.attention_mask, mb.position_ids, P, R, mb.response_mask)
    found = shared_prompt_hidden(model, *args) if share else None
    hidden, index = found if found is not None else response_hidden(model, *args)
    weight, bias = output_head(model)
    if torch.is_autocast_enabled(hidden.device.type) and weight.dtype != hidden.dtype:
        # float32 masters under autocast: the head computes in the autocast dtype, as the
        # model's own lm_head would; the cast is in the graph, so the masters get the gradient
        weight = weight.to(hidden.dtype)
        bias = bias.to(hidden.dtype) if bias is not None else None
    targets = mb.response_ids.reshape(-1)[index]
    logp, ent = head_logprobs(hidden, weight, bias, targets, temperature, with_entropy)

    def spread(values: torch.Tensor) -> torch.Tensor:  # (n,) -> (b, R)
        return values.new_zeros(b * R).index_put((index,), values).view(b, R)

    return spread(logp), (spread(ent) if with_entropy else None)


def _logprobs_from_logits(
    model: Any, mb: Batch, temperature: float, with_entropy: bool, share: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One micro-batch through the model's own forward and its (b, R, V) logits."""
    mask, R = mb.response_mask, mb.response_mask.shape[1]
    args = (mb.input_ids, mb.attention_mask, mb.position_ids)
    logits = shared_prompt_logits(model, *args, mb.prompt_len, R) if share else None
    if logits is None:
        logits = response_logits(model, *args, R)
    logp, ent = tempered_logprobs(logits, mb.response_ids, temperature, with_entropy)
    return logp * mask, (ent * mask if with_entropy else None)
