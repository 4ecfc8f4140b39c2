"""One sampling step: tempered softmax, nucleus (top-p) and min-p filtering, a draw.

With logits z and temperature T:

    logp     = log softmax(z / T)                                 the reported log-prob
    top-p    keep the smallest set of most likely tokens whose mass under softmax(z / T) >= p
    min-p    then keep tokens with prob >= min_p * max prob (on the top-p renormalised distribution)
    draw     y ~ softmax of the kept logits (renormalised), by inverse CDF

The order (temperature, top-p, min-p) is transformers' `generate` order, so the two samplers draw
from the same distribution. The log-prob reported for y is the *unfiltered* tempered one,
log softmax(z / T)[y]: exactly what the learner recomputes with `compute_logprobs(T)`, so the
engine's log-probs can serve as `old_logp`. With top-p < 1 or min-p > 0 it differs from the log of
the filtered probability y was actually drawn with (which is >= it); the learner never sees that
one. T = 0 means greedy decoding, with log-probs reported under softmax(z) (T = 1).
"""

from __future__ import annotations

import torch

# the nucleus is searched among this many most likely tokens first (a full sort of a 50k
# vocabulary costs ~10x a top-256 on CPU); larger sets only when a row's nucleus is wider
NUCLEUS_CANDIDATES = (256, 4096)


def top_p_mask(z: torch.Tensor, top_p: float) -> torch.Tensor:
    """(B, V) bool, True for tokens outside the nucleus.

    transformers' TopPLogitsWarper rule: a token stays when the mass of the tokens more likely
    than it is < top_p (so the most likely token always stays).
    """
    V = z.shape[-1]
    lse = torch.logsumexp(z, dim=-1, keepdim=True)  # (B, 1)
    for k in (*(c for c in NUCLEUS_CANDIDATES if c < V), V):
        vals, idx = torch.topk(z, k, dim=-1)  # (B, k), descending
        probs = (vals - lse).exp()
        cum = probs.cumsum(-1)
        if k == V or bool((cum[:, -1] >= top_p).all()):
            keep = (cum - probs) < top_p  # mass strictly before each token
            keep[:, 0] = True
            remove = torch.ones_like(z, dtype=torch.bool)
            return remove.scatter_(-1, idx, ~keep)
    raise AssertionError("unreachable: the last candidate set is the whole vocabulary")


def min_p_mask(z: torch.Tensor, min_p: float) -> torch.Tensor:
    """(B, V) bool, True for tokens below min_p times the most likely token's probability."""
    probs = z.softmax(-1)
    return probs < min_p * probs.amax(-1, keepdim=True)


def filter_logits(z: torch.Tensor, top_p: float, min_p: float) -> torch.Tensor:
    """Tempered logits with the tokens outside top-p, then min-p, set to -inf."""
    if top_p < 1.0:
        z = z.masked_fill(top_p_mask(z, top_p), float("-inf"))
    if min_p > 0.0:
        z = z.masked_fill(min_p_mask(z, min_p), float("-inf"))
    return z


def sample_next(
    logits: torch.Tensor,
    temperature: float,
    top_p: float = 1.0,
    min_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) sampled token ids and their (B,) log-probs under log softmax(logits / T)."""
    z = logits.float()  # (B, V)
    if temperature == 0.0:
        tok = z.argmax(-1)
        logp = z.log_softmax(-1)
        return tok, logp.gather(-1, tok[:, None]).squeeze(-1)
    if temperature != 1.0:
        z = z / temperature
    logp = z.log_softmax(-1)  # (B, V)
    if top_p < 1.0 or min_p > 0.0:
        probs = filter_logits(z, top_p, min_p).softmax(-1)
    else:
        probs = logp.exp()
    tok = draw(probs, generator)
    return tok, logp.gather(-1, tok[:, None]).squeeze(-1)


def draw(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) one token per row of (B, V) probabilities, by inverting the CDF.

    About 20x faster than `torch.multinomial` on a 50k vocabulary on CPU. u = U[0,1) * total mass
    and the first index whose cumulative mass exceeds u: a token of probability 0 is never drawn.
    """
    cdf = probs.cumsum(-1)  # (B, V)
    u = torch.rand((probs.shape[0], 1), generator=generator, device=probs.device, dtype=cdf.dtype)
    tok = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(-1)
    return tok.clamp_(max=probs.shape[-1] - 1)
