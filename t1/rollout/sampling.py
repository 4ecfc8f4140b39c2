"""One sampling step: tempered softmax, nucleus (top-p) and min-p filtering, a draw.

With logits z and temperature T:

    logp     = log softmax(z / T)                                 the reported log-prob
    top-p    keep the smallest set of most likely tokens whose mass under softmax(z / T) >= p
    min-p    then keep tokens with prob >= min_p * max prob (on the top-p renormalised distribution)
    draw     y ~ softmax of the kept logits (renormalised)

The order (temperature, top-p, min-p) is transformers' `generate` order, so the two samplers draw
from the same distribution. The log-prob reported for y is the *unfiltered* tempered one,
log softmax(z / T)[y]: exactly what the learner recomputes with `compute_logprobs(T)`, so the
engine's log-probs can serve as `old_logp`. With top-p < 1 or min-p > 0 it differs from the log of
the filtered probability y was actually drawn with (which is >= it); the learner never sees that
one. T = 0 means greedy decoding, with log-probs reported under softmax(z) (T = 1).
"""

from __future__ import annotations

import torch


def top_p_mask(z: torch.Tensor, top_p: float) -> torch.Tensor:
    """(B, V) bool, True for tokens outside the nucleus (transformers' TopPLogitsWarper rule)."""
    sorted_z, order = torch.sort(z, dim=-1, descending=False)
    cum = sorted_z.softmax(-1).cumsum(-1)
    remove_sorted = cum <= (1.0 - top_p)
    remove_sorted[:, -1] = False  # the most likely token always stays
    return remove_sorted.scatter(-1, order, remove_sorted)


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
    z = z / temperature
    logp = z.log_softmax(-1)  # (B, V)
    if top_p < 1.0 or min_p > 0.0:
        probs = filter_logits(z, top_p, min_p).softmax(-1)
    else:
        probs = logp.exp()
    tok = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return tok, logp.gather(-1, tok[:, None]).squeeze(-1)
