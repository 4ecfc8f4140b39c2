"""A lean decode step for Llama/Qwen2 models: transformers' maths without its per-call machinery.

One new token per row, given the KV cache of everything before it:

    h = embed(y);  cos, sin = rotary(h, position)
    each layer:  x = norm_1(h);  q, k, v = proj(x);  q, k = rope(q), rope(k)
                 K, V = cache.update(k, v)
                 h = h + o_proj(softmax(q K^T * scale + mask) V)      (grouped-query heads)
                 h = h + mlp(norm_2(h))
    logits = lm_head(norm(h))

Every block is the model's own module (norms, projections, MLP, rotary embedding, so LoRA-style
wrapped projections still apply); only the orchestration is replaced: no mask construction,
output capture, kwargs plumbing or per-layer dispatch. On a 0.8 M-parameter model on CPU this
saves about 1 ms of a 8 ms step at batch 64. Models that are not plain Llama/Qwen2 with full
attention (sliding windows, other attention backends, other classes) use their own forward.
The engine's tests check this path against the model's forward (`compute_logprobs`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

SUPPORTED = ("LlamaForCausalLM", "Qwen2ForCausalLM")


def supports_fast_decode(model: Any) -> bool:
    """Whether `decode_step` reproduces `model`'s forward exactly (same maths, same modules)."""
    if type(model).__name__ not in SUPPORTED or model.training:
        return False
    config = model.config
    if getattr(config, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        return False
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    if any(t != "full_attention" for t in layer_types):
        return False
    inner = getattr(model, "model", None)
    return all(hasattr(inner, name) for name in ("embed_tokens", "layers", "norm", "rotary_emb"))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _attention(
    attn: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layer: Any, mask: Any
) -> torch.Tensor:
    """(B, 1, hidden) self-attention output of one decode position, cache updated in place."""
    B = x.shape[0]
    D = attn.head_dim
    q = attn.q_proj(x).view(B, 1, -1, D).transpose(1, 2)  # (B, Hq, 1, D)
    k = attn.k_proj(x).view(B, 1, -1, D).transpose(1, 2)  # (B, Hk, 1, D)
    v = attn.v_proj(x).view(B, 1, -1, D).transpose(1, 2)
    q = q * cos + _rotate_half(q) * sin
    k = k * cos + _rotate_half(k) * sin
    keys, values = layer.update(k, v)  # (B, Hk, S, D)
    out = F.scaled_dot_product_attention(
        q,
        keys,
        values,
        attn_mask=mask,
        scale=attn.scaling,
        enable_gqa=q.shape[1] != keys.shape[1],
    )  # (B, Hq, 1, D)
    return attn.o_proj(out.transpose(1, 2).reshape(B, 1, -1))


def decode_step(
    model: Any,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    cache: Any,
    attention_mask: torch.Tensor | None,
) -> torch.Tensor:
    """(B, V) next-token logits for (B,) `tokens` at (B,) `positions`.

    `attention_mask` is the (B, S) 0/1 mask over the cached positions plus the new one, or None
    when no row has padding.
    """
    inner = model.model
    h = inner.embed_tokens(tokens[:, None])  # (B, 1, hidden)
    cos, sin = inner.rotary_emb(h, positions[:, None])  # (B, 1, D)
    cos, sin = cos[:, None], sin[:, None]  # (B, 1, 1, D), broadcast over heads
    mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
    for i, block in enumerate(inner.layers):
        x = block.input_layernorm(h)
        h = h + _attention(block.self_attn, x, cos, sin, cache.layers[i], mask)
        h = h + block.mlp(block.post_attention_layernorm(h))
    return model.lm_head(inner.norm(h))[:, -1]  # (B, V)
