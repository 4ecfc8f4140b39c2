"""Log-probs and entropy through the output head, chunk by chunk: no (N, V) tensor is kept.

For hidden states h_n (n = 1 .. N, the positions that predict response tokens y_n), the head
(W, b) of shape (V, H), (V,) and the sampling temperature T:

    z_n    = (W h_n + b) / T                                       (tempered logits, float32)
    logp_n = z_n[y_n] - logsumexp(z_n)
    H_n    = -sum_v q_nv log q_nv,     q_n = softmax(z_n)

and the gradients, with g_n, e_n the incoming gradients of logp_n and H_n
(∂H/∂z_v = -q_v (log q_v + H), `t1.algo.entropy`):

    ∂L/∂z_n = g_n (onehot(y_n) - q_n) - e_n q_n (log q_n + H_n)
    ∂L/∂h_n = W^T ∂L/∂z_n / T,   ∂L/∂W = sum_n ∂L/∂z_n h_n^T / T,   ∂L/∂b = sum_n ∂L/∂z_n / T

Full logits cost N·V floats (4 096 positions × Qwen2.5's 152 064 tokens: 2.5 GB in float32, and
autograd keeps several such tensors). `head_logprobs` runs `chunk_size` positions at a time and
keeps only h, W, b, the targets and the per-position logsumexp and entropy for backward, which
recomputes each chunk's logits. Peak extra memory: a few (chunk_size, V) buffers, and in backward
the weight's gradient (V, H), accumulated in float32 over the chunks (plus one (V, H) product per
chunk when W is half precision). The logits are computed in the weights' dtype and then cast to
float32, as the model's own `lm_head(h).float()` would be; the cost is one extra (N × H × V)
matmul (the recomputation) over the full pass.

The model side, two accessors: `decoder(model)`, the backbone module (`model.model` of an HF
causal LM) whose output the learner reads, and `output_head(model)`, the head's weight and bias.
The learner calls the whole model with no logits kept (`t1.rollout.logprobs`), so that hooks on
the model, its decoder and its layers fire: FSDP2 unshards the root's parameters (embeddings,
final norm, head) there and keeps them unsharded until backward, so `output_head` then returns
the full head. Only model classes whose logits are exactly `lm_head(decoder(...))` take this
path (`HEAD_FAMILIES`); others, such as Gemma2 (which soft-caps its logits) or Cohere (which
scales them), are named with the reason by `chunked_head_unsupported`, and the learner runs
their own forward instead.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from t1.rollout.cache import supports_logits_to_keep

# causal LMs whose forward ends in `logits = self.lm_head(hidden_states)` and nothing more
# (transformers 5.x, models/<name>/modeling_<name>.py)
HEAD_FAMILIES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM")
# config keys by which other families change the logits after the head
LOGIT_MODIFIERS = ("final_logit_softcapping", "logit_scale", "logits_scaling")
# elements of one (chunk, V) float32 buffer: 128 MiB; chunk_size = this // V positions
HEAD_CHUNK_ELEMENTS = 1 << 25


def head_chunk_size(vocab_size: int) -> int:
    """Positions per chunk for a vocabulary of `vocab_size` (`HEAD_CHUNK_ELEMENTS` // V)."""
    return max(1, HEAD_CHUNK_ELEMENTS // max(vocab_size, 1))


def model_family(model: Any) -> str:
    """`model`'s class name, seen through the subclass FSDP<Name> that FSDP2's `fully_shard`
    swaps in (it adds hooks, not maths)."""
    cls = type(model)
    for base in cls.__bases__:
        if cls.__name__ == "FSDP" + base.__name__:
            return base.__name__
    return cls.__name__


def chunked_head_unsupported(model: Any) -> str | None:
    """Why `model`'s logits are not `output_head` applied to `decoder`'s output; None if they are."""
    name = model_family(model)
    config = getattr(model, "config", None)
    for key in LOGIT_MODIFIERS:
        value = getattr(config, key, None)
        if value is not None and value != 1.0:
            return f"{name} changes its logits after the head (config.{key}={value})"
    if name not in HEAD_FAMILIES:
        return f"{name} is not one of the families the chunked head follows ({HEAD_FAMILIES})"
    head = model.get_output_embeddings()
    if type(head) is not torch.nn.Linear:
        return f"{name}'s output head is a {type(head).__name__}, not a plain nn.Linear"
    if not isinstance(getattr(model, "model", None), torch.nn.Module):
        return f"{name} has no decoder module at .model"
    if not supports_logits_to_keep(model):
        return f"{name}.forward takes no logits_to_keep"
    return None


def unwrap_peft(model: Any) -> Any:
    """The causal LM inside a peft `PeftModel` (its adapters are injected in that module, whose
    forward the wrapper calls); any other model as is. t1's own LoRA models are not wrapped
    (t1.models.lora): their class, decoder and head are the base model's."""
    if type(model).__name__.startswith("PeftModel") and hasattr(model, "get_base_model"):
        return model.get_base_model()
    return model


def decoder(model: Any) -> torch.nn.Module:
    """The backbone of an HF causal LM: token ids in, final normed hidden states out."""
    return model.model


def output_head(model: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The output head's (V, H) weight and (V,) bias (None when it has none).

    With tied embeddings the weight is the embedding matrix itself, so the gradient of both
    uses sums into the one parameter, as in the model's forward.
    """
    head = model.get_output_embeddings()
    return head.weight, head.bias


def _logits(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, temperature: float
) -> torch.Tensor:
    """(c, V) tempered logits in float32 (float64 for float64 inputs), a fresh tensor."""
    z = F.linear(h, weight, bias)  # the weights' dtype, as the model's lm_head computes it
    return z.to(torch.promote_types(z.dtype, torch.float32)).div_(temperature)


class _ChunkedHead(torch.autograd.Function):
    """(logp, H) over rows of `hidden`, `chunk` rows at a time; backward recomputes the logits."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, chunk, with_entropy):
        n = hidden.shape[0]
        dtype = torch.promote_types(weight.dtype, torch.float32)
        logp = torch.empty(n, dtype=dtype, device=hidden.device)
        lse = torch.empty_like(logp)
        ent = torch.empty_like(logp) if with_entropy else None
        for s in range(0, n, chunk):
            rows = slice(s, s + chunk)
            z = _logits(hidden[rows], weight, bias, temperature)  # (c, V)
            lse[rows] = torch.logsumexp(z, dim=-1)
            logp[rows] = z.gather(1, targets[rows, None]).squeeze(1) - lse[rows]
            if with_entropy:
                logq = z.sub_(lse[rows, None])  # log softmax, in place
                ent[rows] = -(logq.exp().mul_(logq)).sum(dim=-1)
        ctx.save_for_backward(hidden, weight, bias, targets, lse, ent)
        ctx.temperature, ctx.chunk = temperature, chunk
        ctx.mark_non_differentiable(*([] if with_entropy else [lse]))
        return logp, (ent if with_entropy else lse)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_logp, grad_ent):
        hidden, weight, bias, targets, lse, ent = ctx.saved_tensors
        T, chunk = ctx.temperature, ctx.chunk
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        acc = torch.promote_types(weight.dtype, torch.float32)
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_w else None
        grad_b = torch.zeros(weight.shape[0], dtype=acc, device=weight.device) if need_b else None
        for s in range(0, hidden.shape[0], chunk):
            rows = slice(s, s + chunk)
            h = hidden[rows]
            gz = _logits(h, weight, bias, T).sub_(lse[rows, None])  # (c, V) log q
            q = gz.exp()
            g = grad_logp[rows, None].to(acc)  # (c, 1)
            if ent is not None:  # -q (g + e (log q + H))
                gz.add_(ent[rows, None]).mul_(grad_ent[rows, None].to(acc)).add_(g)
                gz = gz.mul_(q).neg_()
            else:  # -q g
                gz = q.mul_(-g)
            del q  # (c, V) freed before the casts and products below
            gz.scatter_add_(1, targets[rows, None], g).div_(T)  # + g onehot(y), then d/dlogits
            gz = gz.to(weight.dtype)
            if need_h:
                grad_h[rows] = torch.mm(gz, weight).to(hidden.dtype)
            if need_w and gz.dtype == acc:
                grad_w.addmm_(gz.t(), h)
            elif need_w:  # half precision: one rounding per chunk, the sum in float32
                grad_w.add_(torch.mm(gz.t(), h))
            if need_b:
                grad_b.add_(gz.sum(dim=0))
        grad_w = grad_w.to(weight.dtype) if need_w else None
        grad_b = grad_b.to(bias.dtype) if need_b else None
        return grad_h, grad_w, grad_b, None, None, None, None


def head_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N,) log softmax((W h + b) / T)[targets] and, with `with_entropy`, the (N,) entropies.

    `hidden` (N, H) and `weight` (V, H) share a dtype; `targets` (N,) are token ids.
    `chunk_size`: positions per chunk (default `head_chunk_size(V)`). Differentiable in
    `hidden`, `weight` and `bias` (module docstring); the results are float32 (float64 for
    float64 inputs).
    """
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"head_logprobs needs hidden (N, H) and weight (V, H), got {tuple(hidden.shape)} "
            f"and {tuple(weight.shape)}"
        )
    if hidden.dtype != weight.dtype:
        raise ValueError(f"hidden is {hidden.dtype} but the head weight is {weight.dtype}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"bias must be ({weight.shape[0]},), got {tuple(bias.shape)}")
    if targets.shape != hidden.shape[:1] or targets.dtype != torch.long:
        raise ValueError(f"targets must be ({hidden.shape[0]},) int64, got {targets.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    chunk = head_chunk_size(weight.shape[0]) if chunk_size is None else chunk_size
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    logp, ent = _ChunkedHead.apply(
        hidden, weight, bias, targets, float(temperature), chunk, with_entropy
    )
    return logp, (ent if with_entropy else None)
