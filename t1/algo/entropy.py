"""Full-vocabulary token entropy, computed in chunks (T1, arXiv 2501.11651, §3, entropy bonus).

For logits z over a vocabulary of size V at one position, with log p = z − logsumexp(z):

    H(z) = −Σ_v p_v · log p_v

and its gradient, used by the entropy bonus L = L_pg − γ·H̄:

    ∂H/∂z_v = −p_v · (log p_v + H)

The naive formula materialises several float32 (…, V) tensors at once (the up-cast logits,
softmax, log-softmax, their product, and autograd keeps some of them for backward): for
(8, 512, 50 000) logits that is ≈0.8 GB each. Here rows are processed `chunk_size` positions at a
time, in float32 (float64 stays float64), and a custom autograd function keeps nothing but the
input logits and H for backward, recomputing p chunk by chunk there too. Peak extra memory is
then a few (chunk_size, V) buffers plus the gradient itself. Entries with p_v = 0 (logits of
−inf) contribute 0, the limit of p·log p. The result is float32 (or float64), never bfloat16.
"""

from __future__ import annotations

import torch

DEFAULT_CHUNK_SIZE = 512


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half types and float32, float64 for float64: entropy needs the precision."""
    return torch.promote_types(dtype, torch.float32)


def _chunk_log_probs(chunk: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """log-softmax in `dtype`, with −inf clamped to the dtype's minimum so 0·log 0 gives 0."""
    logp = torch.log_softmax(chunk.to(dtype), dim=-1)  # (n, V)
    return logp.clamp_min_(torch.finfo(dtype).min)


class _ChunkedEntropy(torch.autograd.Function):
    """H over the last axis of a 2-D (rows, V) tensor, memory bounded by the chunk size."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, chunk_size: int) -> torch.Tensor:
        dtype = _compute_dtype(logits.dtype)
        out = torch.empty(logits.shape[0], dtype=dtype, device=logits.device)
        for start in range(0, logits.shape[0], chunk_size):
            logp = _chunk_log_probs(logits[start : start + chunk_size], dtype)  # (n, V)
            out[start : start + chunk_size] = -(logp.exp() * logp).sum(dim=-1)
        ctx.save_for_backward(logits, out)
        ctx.chunk_size = chunk_size
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits, entropy = ctx.saved_tensors
        dtype, step = entropy.dtype, ctx.chunk_size
        grad = torch.empty_like(logits)
        for start in range(0, logits.shape[0], step):
            rows = slice(start, start + step)
            logp = _chunk_log_probs(logits[rows], dtype)  # (n, V)
            h = entropy[rows].unsqueeze(-1)  # (n, 1)
            g = grad_out[rows].to(dtype).unsqueeze(-1)  # (n, 1)
            grad[rows] = (-g * logp.exp() * (logp + h)).to(logits.dtype)
        return grad, None


def token_entropy(logits: torch.Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """`(..., V)` → `(...)`: entropy of softmax(logits) at every position, differentiable.

    Divide the logits by the sampling temperature first if the entropy of the tempered policy is
    wanted. `chunk_size` is the number of positions processed at once; it trades memory
    (about 3 · chunk_size · V · 4 bytes) for the number of kernel launches.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() < 1:
        raise ValueError("logits must be a tensor with a vocabulary axis (..., V)")
    if logits.shape[-1] == 0:
        raise ValueError(f"logits have an empty vocabulary axis: shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    lead = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])  # (rows, V), a view when contiguous
    return _ChunkedEntropy.apply(flat, chunk_size).reshape(lead)
