"""Lean passes for Llama/Qwen2 models: transformers' maths without its per-call machinery.

Three of them: the sampler's decode step (`decode_step`), the packed pass over many tokens
per row that serves the learner's responses (`packed_response_hidden`) and prompts
(`prefill_hidden`) and the sampler's prefill (`prefill_logits`).

The decode step: one new token per row, given the KV cache of everything before it:

    h = embed(y);  cos, sin = rotary(h, position)
    each layer:  x = norm_1(h);  q, k, v = proj(x);  q, k = rope(q), rope(k)
                 K, V = cache.update(k, v)
                 h = h + o_proj(softmax(q K^T * scale + mask) V)      (grouped-query heads)
                 h = h + down(silu(gate(norm_2(h))) * up(norm_2(h)))
    logits = lm_head(norm(h))

For a small model the step costs what its ~45 tensor ops a layer cost to dispatch, not what they
compute, so `DecodePlan` does the same maths in fewer ops:
- the projections that read the same input run as one matmul (q|k|v, gate|up) when they are
  plain `nn.Linear` (anything else, a LoRA-wrapped projection say, runs as its own module);
  this copies those weights, so it is done only for models under `FUSE_MAX_PARAMS`; the copy
  of the query rows carries the attention scale (rope is linear: rope(s·q) = s·rope(q));
- RMSNorm is `F.rms_norm`, the same formula as Llama's and Qwen2's modules, in one op;
- rope runs once on q and k together, with rotate_half(x) = roll(x, D/2) * [-1 .. -1, 1 .. 1];
  its cos and sin (the sign folded in) are rows of a table the model's rotary module computes
  once per generation, looked up per step for every layer;
- a residual add and the bias-free projection before it are one `addmm`;
- float32 attention on CPU is two batched matmuls with the query heads of a key/value head
  stacked as rows ((B·Hk, G, D) @ (B·Hk, D, S)), where SDPA's flash kernel pays a per-call
  overhead larger than the work at one query position; elsewhere SDPA.
Everything else is the model's own modules (embedding, o_proj, lm_head). Models that are not
plain Llama/Qwen2 with full attention (sliding windows, other attention backends, other classes)
use their own forward. The tests check this path against the model's forward, with and without
padding, fused and unfused. Figures: `benchmarks/rollout.py` (fast path against the model's
forward in the same engine) and benchmarks/README.md.

The packed pass. The learner runs, with autograd, each distinct prompt once and then the
response tokens y_0 .. y_{R-2} of every row over its prompt's KV cache (`t1.rollout.logprobs`).
Rows end at different lengths, so a dense (b, R - 1) pass spends a share of its work on padding
(a fifth of the positions in a typical RL batch of 32 new tokens). `packed_response_hidden` runs
only the positions whose next token is a response token: every per-token op (norms, projections,
rope, MLP) on the (N, hidden) packed rows, whose final hidden states go to the learner's chunked
output head (`t1.rollout.head`); the attention alone on the padded
(b, Hq, R - 1, D) layout, scattered in and gathered out per layer (on CPU in float32 as two
batched matmuls, (b·Hk, G·T, D) @ (b·Hk, D, S), cheaper forward and backward than SDPA's flash
kernel at these sizes). Same maths, padding-invariant as the model's forward is;
the fused projections concatenate the weights inside the graph each call, so the gradient
reaches the parameters. `prefill_hidden` is the same pass over left-padded prompts with an
empty cache, for the learner's prompt pass and (through the head, `prefill_logits`) the
sampler's prefill. Figures:
`benchmarks/learner.py` (packed against dense) and benchmarks/README.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

SUPPORTED = ("LlamaForCausalLM", "Qwen2ForCausalLM")
# RMSNorm modules whose forward is exactly F.rms_norm(x, weight, variance_epsilon)
PLAIN_NORMS = ("LlamaRMSNorm", "Qwen2RMSNorm")
SILU = ("SiLU", "SiLUActivation")
# fusing projections copies their weights: worth it (and cheap) only for small models
FUSE_MAX_PARAMS = 50_000_000

Op = Callable[[torch.Tensor], torch.Tensor]


def supports_fast_decode(model: Any) -> bool:
    """Whether `decode_step` reproduces `model`'s forward exactly (same maths, same modules)."""
    return not model.training and _plain_model(model)


def supports_packed_learner(model: Any) -> bool:
    """Whether `packed_response_hidden` reproduces `model`'s forward, in train mode included."""
    if not _plain_model(model):
        return False
    dropout = getattr(model.config, "attention_dropout", 0.0) or 0.0
    return not (model.training and dropout > 0)  # the lean passes have no attention dropout


def _plain_model(model: Any) -> bool:
    """A Llama/Qwen2 causal LM with full attention and the modules the lean passes read."""
    if type(model).__name__ not in SUPPORTED:
        return False
    config = model.config
    if getattr(config, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        return False
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    if any(t != "full_attention" for t in layer_types):
        return False
    inner = getattr(model, "model", None)
    return all(hasattr(inner, name) for name in ("embed_tokens", "layers", "norm", "rotary_emb"))


def _norm(module: Any) -> Op:
    if type(module).__name__ in PLAIN_NORMS:
        shape, weight, eps = module.weight.shape, module.weight, module.variance_epsilon
        return lambda x: F.rms_norm(x, shape, weight, eps)
    return module


def _fusable(modules: list[Any], fuse: bool) -> bool:
    return fuse and all(type(m) is torch.nn.Linear for m in modules)


def _linear(modules: list[Any], fuse: bool, live: bool, scale_first: float = 1.0) -> Op:
    """The outputs of several projections of one input, concatenated on the last dim.

    `live`: concatenate the weights at each call, inside the autograd graph (for training);
    otherwise once, now (a copy: the weights must not change while the op is in use), with the
    first module's output rows multiplied by `scale_first`.
    """
    if not _fusable(modules, fuse):
        return lambda x: torch.cat([m(x) for m in modules], dim=-1)

    def fused() -> tuple[torch.Tensor, torch.Tensor | None]:
        weight = torch.cat([m.weight for m in modules])
        if all(m.bias is None for m in modules):
            return weight, None
        zeros = [torch.zeros_like(m.weight[:, 0]) for m in modules]
        bias = torch.cat([m.bias if m.bias is not None else z for m, z in zip(modules, zeros)])
        return weight, bias

    if live:
        return lambda x: F.linear(x, *fused())
    weight, bias = fused()
    if scale_first != 1.0:
        n = modules[0].weight.shape[0]
        weight[:n] *= scale_first
        if bias is not None:
            bias[:n] *= scale_first
    return lambda x: F.linear(x, weight, bias)


Residual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _residual(module: Any) -> Residual:
    """h + module(x); one `addmm` when the module is a plain bias-free `nn.Linear`."""
    if type(module) is torch.nn.Linear and module.bias is None:
        weight = module.weight
        return lambda h, x: torch.addmm(h, x, weight.t())
    return lambda h, x: h + module(x)


@dataclass
class _Layer:
    norm_1: Op
    qkv: Op  # (B, hidden) -> (B, (Hq + 2 Hk) * D)
    o_proj: Residual  # h, attention output -> h + o_proj(attention output)
    norm_2: Op
    gate_up: Op  # (B, hidden) -> (B, 2 I)
    down: Residual  # h, act(gate) * up -> h + down(act(gate) * up)
    act: Op


class DecodePlan:
    """The lean passes' view of a model's weights.

    For decoding it is built once per generation (weights fixed), inside `torch.no_grad()`: the
    fused weights are copies, not views, with the attention scale folded into the query rows
    (rope is linear, so scaling q before it is the same maths). `trainable=True` (the learner)
    fuses at each call instead, so gradients reach the parameters. `max_position`: the decode
    steps' positions stay below it, so rope's cos and sin are looked up in a table computed once
    by the model's own rotary module (rope types whose frequencies depend on the sequence
    length, "dynamic" and "longrope", call the module at each step).
    """

    def __init__(
        self, model: Any, trainable: bool = False, max_position: int | None = None
    ) -> None:
        inner, config = model.model, model.config
        fuse = sum(p.numel() for p in model.parameters()) <= FUSE_MAX_PARAMS
        self.model, self.inner = model, inner
        attn = inner.layers[0].self_attn
        self.D = attn.head_dim
        self.Hq = config.num_attention_heads
        self.Hk = getattr(config, "num_key_value_heads", None) or self.Hq
        self.scale = attn.scaling
        fold = not trainable and all(
            _fusable([b.self_attn.q_proj, b.self_attn.k_proj, b.self_attn.v_proj], fuse)
            for b in inner.layers
        )
        # the scale the attention still applies to q . k (1 where the weights carry it)
        self.attn_scale = 1.0 if fold else self.scale
        self.layers = []
        for block in inner.layers:
            attn, mlp = block.self_attn, block.mlp
            act = F.silu if type(mlp.act_fn).__name__ in SILU else mlp.act_fn
            qkv = [attn.q_proj, attn.k_proj, attn.v_proj]
            self.layers.append(
                _Layer(
                    norm_1=_norm(block.input_layernorm),
                    qkv=_linear(qkv, fuse, trainable, self.scale if fold else 1.0),
                    o_proj=_residual(attn.o_proj),
                    norm_2=_norm(block.post_attention_layernorm),
                    gate_up=_linear([mlp.gate_proj, mlp.up_proj], fuse, trainable),
                    down=_residual(mlp.down_proj),
                    act=act,
                )
            )
        self.norm = _norm(inner.norm)
        p = next(model.parameters())
        half = torch.ones(self.D // 2, dtype=p.dtype, device=p.device)
        self.sign = torch.cat([-half, half])  # rotate_half's signs, after the roll
        # two batched matmuls beat SDPA's per-call overhead at one query position on CPU
        self.bmm_attention = p.device.type == "cpu" and p.dtype == torch.float32
        self.rope_table: tuple[torch.Tensor, torch.Tensor] | None = None
        rope_type = str(getattr(inner.rotary_emb, "rope_type", "default"))
        if max_position and "dynamic" not in rope_type and rope_type != "longrope":
            where = torch.arange(max_position, device=p.device)[None]
            cos, sin = inner.rotary_emb(p.new_empty(1, max_position, 1), where)  # (1, L, D)
            self.rope_table = (cos[0], sin[0] * self.sign)

    def rope(self, h: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, D) cos and signed sin at (B,) `positions`, for `_rope`."""
        if self.rope_table is not None:
            cos, sin = self.rope_table
            return cos[positions][:, None], sin[positions][:, None]
        cos, sin = self.inner.rotary_emb(h[:, None], positions[:, None])  # (B, 1, D)
        return cos, sin * self.sign


def _rope(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """x·cos + rotate_half(x)·sin, with rotate_half(x) = roll(x, D/2)·sign (sign in sin_signed)."""
    return x * cos + torch.roll(x, x.shape[-1] // 2, dims=-1) * sin_signed


def _attend(
    plan: DecodePlan, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: Any
) -> torch.Tensor:
    """(B, Hq·D) attention output of (B, Hq, D) queries over (B, Hk, S, D) keys and values.

    `mask`: None, or what `_mask` built for the path the plan takes.
    """
    B, Hk, S, D = keys.shape
    if plan.bmm_attention:
        G = plan.Hq // Hk
        if plan.attn_scale != 1.0:
            q = q * plan.attn_scale
        qg = q.reshape(B * Hk, G, D)  # the G query heads of one kv head as rows
        kt = keys.reshape(B * Hk, S, D).transpose(1, 2)  # (B·Hk, D, S)
        scores = torch.bmm(qg, kt) if mask is None else torch.baddbmm(mask, qg, kt)
        out = torch.bmm(scores.softmax(-1), values.reshape(B * Hk, S, D))  # (B·Hk, G, D)
        return out.reshape(B, plan.Hq * D)
    out = F.scaled_dot_product_attention(
        q[:, :, None], keys, values, attn_mask=mask, scale=plan.attn_scale, enable_gqa=plan.Hq != Hk
    )  # (B, Hq, 1, D)
    return out.reshape(B, plan.Hq * D)


def _mask(plan: DecodePlan, attention_mask: torch.Tensor | None) -> Any:
    """The (B, S) 0/1 mask as the attention takes it: additive (B·Hk, G, S) for the batched
    matmuls, boolean (B, 1, 1, S) for SDPA; None when no row has padding."""
    if attention_mask is None:
        return None
    if not plan.bmm_attention:
        return attention_mask.bool()[:, None, None, :]
    (B, S), G = attention_mask.shape, plan.Hq // plan.Hk
    bias = torch.zeros((B, S), dtype=plan.sign.dtype, device=plan.sign.device)
    bias.masked_fill_(attention_mask == 0, float("-inf"))
    return bias[:, None, None].expand(B, plan.Hk, G, S).reshape(B * plan.Hk, G, S)


def decode_step(
    plan: DecodePlan,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    cache: Any,
    attention_mask: torch.Tensor | None,
) -> torch.Tensor:
    """(B, V) next-token logits for (B,) `tokens` at (B,) `positions`.

    `attention_mask` is the (B, S) 0/1 mask over the cached positions plus the new one, or None
    when no row has padding.
    """
    B, Hq, Hk, D = tokens.shape[0], plan.Hq, plan.Hk, plan.D
    h = plan.inner.embed_tokens(tokens)  # (B, hidden)
    cos, sin = plan.rope(h, positions)  # (B, 1, D), broadcast over heads
    mask = _mask(plan, attention_mask)
    for i, layer in enumerate(plan.layers):
        heads = layer.qkv(layer.norm_1(h)).view(B, Hq + 2 * Hk, D)
        qk = _rope(heads[:, : Hq + Hk], cos, sin)  # (B, Hq + Hk, D)
        keys, values = cache.layers[i].update(qk[:, Hq:, None], heads[:, Hq + Hk :, None])
        h = layer.o_proj(h, _attend(plan, qk[:, :Hq], keys, values, mask))
        gate, up = layer.gate_up(layer.norm_2(h)).chunk(2, dim=-1)
        h = layer.down(h, layer.act(gate) * up)
    return plan.model.lm_head(plan.norm(h))  # (B, V)


def prefill_logits(
    plan: DecodePlan, cache: Any, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """(U, V) next-token logits after left-padded (U, L) prompts; fills the empty `cache`."""
    return plan.model.lm_head(prefill_hidden(plan, cache, tokens, positions, mask))


def prefill_hidden(
    plan: DecodePlan, cache: Any, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """(U, hidden) final normed hidden states after left-padded (U, L) prompts; fills `cache`.

    The packed pass over the real tokens (`mask` 1); the cache holds zeros at the padding,
    which the decode steps' attention mask hides.
    """
    U, L = tokens.shape
    empty = mask.new_zeros((U, 0))
    rows, h = packed_response_hidden(plan, cache, tokens, positions, empty, mask.bool())
    return h.new_zeros(U * L, h.shape[-1]).index_put((rows,), h).view(U, L, -1)[:, -1]


def packed_response_hidden(
    plan: DecodePlan,
    cache: Any,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    prompt_mask: torch.Tensor,
    need: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `need`ed positions' indices into the flattened (b·T) tokens, (N,), and their final
    normed hidden states, (N, hidden), to which the output head applies (module docstring);
    appends the T positions' keys and values to `cache`.

    `cache`: each row's prompt KV, P positions; `tokens`, `positions`: (b, T) the response
    tokens y_0 .. y_{T-1} and their positions; `prompt_mask`: (b, P) 0/1 over the prompt block;
    `need`: (b, T) bool, the positions whose outputs are wanted, a prefix of each row.
    """
    (b, T), P = tokens.shape, prompt_mask.shape[1]
    Hq, Hk, D = plan.Hq, plan.Hk, plan.D
    rows = need.reshape(-1).nonzero().squeeze(-1)  # (N,) into the flattened (b·T) positions
    N = rows.shape[0]
    h = plan.inner.embed_tokens(tokens.reshape(-1)[rows])  # (N, hidden)
    cos, sin = plan.inner.rotary_emb(h[None], positions.reshape(-1)[rows][None])  # (1, N, D)
    cos, sin = cos[0, :, None], (sin[0] * plan.sign)[:, None]  # (N, 1, D)
    # query t sees the real prompt tokens and the needed tokens 0 .. t; a position that is
    # not needed also sees itself, so that no row of the softmax is empty
    seen = torch.cat([prompt_mask.bool(), need], dim=1)  # (b, P + T)
    causal = torch.ones(T, P + T, dtype=torch.bool, device=tokens.device).tril(P)
    mask = causal[None] & seen[:, None]
    t = torch.arange(T, device=tokens.device)
    mask[:, t, P + t] = True
    mask = _block_mask(plan, mask, b, T, P)
    for i, layer in enumerate(plan.layers):
        heads = layer.qkv(layer.norm_1(h)).view(N, Hq + 2 * Hk, D)
        heads = torch.cat([_rope(heads[:, : Hq + Hk], cos, sin), heads[:, Hq + Hk :]], dim=1)
        dense = heads.new_zeros(b * T, Hq + 2 * Hk, D).index_put((rows,), heads)
        dense = dense.view(b, T, Hq + 2 * Hk, D).transpose(1, 2)  # (b, Hq + 2 Hk, T, D)
        keys, values = cache.layers[i].update(dense[:, Hq : Hq + Hk], dense[:, Hq + Hk :])
        out = _attend_block(plan, dense[:, :Hq], keys, values, mask)  # (b, Hq, T, D)
        h = layer.o_proj(h, out.transpose(1, 2).reshape(b * T, Hq * D)[rows])
        gate, up = layer.gate_up(layer.norm_2(h)).chunk(2, dim=-1)
        h = layer.down(h, layer.act(gate) * up)
    return rows, plan.norm(h)


def _block_mask(plan: DecodePlan, seen: torch.Tensor, b: int, T: int, P: int) -> torch.Tensor:
    """The (b, T, P + T) boolean mask as `_attend_block` takes it: additive (b·Hk, G·T, P + T)
    for the batched matmuls, boolean (b, 1, T, P + T) for SDPA."""
    if not plan.bmm_attention:
        return seen[:, None]
    G = plan.Hq // plan.Hk
    bias = torch.zeros(seen.shape, dtype=plan.sign.dtype, device=seen.device)
    bias.masked_fill_(~seen, float("-inf"))
    return bias[:, None, None].expand(b, plan.Hk, G, T, P + T).reshape(b * plan.Hk, G * T, P + T)


def _attend_block(
    plan: DecodePlan, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """(b, Hq, T, D) attention of T queries per row over (b, Hk, S, D) keys and values."""
    b, Hq, T, D = q.shape
    if not plan.bmm_attention:
        return F.scaled_dot_product_attention(
            q, keys, values, attn_mask=mask, scale=plan.attn_scale, enable_gqa=Hq != plan.Hk
        )
    Hk, S = plan.Hk, keys.shape[2]
    if plan.attn_scale != 1.0:
        q = q * plan.attn_scale
    qg = q.reshape(b * Hk, (Hq // Hk) * T, D)  # a kv head's query heads as rows
    scores = torch.baddbmm(mask, qg, keys.reshape(b * Hk, S, D).transpose(1, 2))
    return torch.bmm(scores.softmax(-1), values.reshape(b * Hk, S, D)).view(b, Hq, T, D)
