"""The vLLM double's sampler: n completions of one tokenized prompt with a small HF model on CPU.

It follows what vLLM's V1 engine does for one request with n children, as far as t1 can see it:

- child i of a seeded request samples with seed + i, an unseeded one from the engine's own
  generator (vllm/v1/engine/parallel_sampling.py `_get_child_sampling_params`);
- logits are divided by the temperature (T below 1e-2 is raised to 1e-2, T = 0 is greedy;
  vllm/sampling_params.py `__post_init__`), min-p and top-p then remove tokens, and the
  log-probs reported are those of the distribution sampled from when the engine was built with
  `logprobs_mode="processed_logprobs"`, of the raw logits otherwise (vllm/config/model.py
  `logprobs_mode`);
- a completion ends at an eos id, which it keeps (finish "stop"), at a stop string (finish
  "stop", `stop_reason` the string; the text cut after it with `include_stop_str_in_output`,
  before it otherwise), or after `max_tokens` (finish "length");
- `logprobs=0` gives, per position, {sampled id: Logprob} (vllm/logprobs.py), with its rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

_MAX_TEMP = 1e-2  # vllm/sampling_params.py
_SAMPLING_EPS = 1e-5  # vllm/sampling_params.py: below it a request is greedy


@dataclass
class Completion:
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[tuple[float, int]] = field(default_factory=list)  # (log-prob, rank)
    finish_reason: str | None = None
    stop_reason: str | None = None
    text: str = ""


def _filtered(logits: torch.Tensor, top_p: float, min_p: float) -> torch.Tensor:
    """(n, V) logits with the tokens min-p and top-p remove set to -inf."""
    if min_p > 0:
        probs = logits.softmax(-1)
        keep = probs >= min_p * probs.amax(-1, keepdim=True)
        logits = logits.masked_fill(~keep, float("-inf"))
    if top_p < 1:
        sorted_logits, order = logits.sort(-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= top_p  # keep the smallest set reaching top_p
        unsorted = torch.zeros_like(drop).scatter(-1, order, drop)
        logits = logits.masked_fill(unsorted, float("-inf"))
    return logits


def _cut_at_stop(text: str, stops: list[str], include: bool) -> tuple[str, str] | None:
    for stop in stops:
        at = text.find(stop)
        if at >= 0:
            return (text[: at + len(stop)] if include else text[:at]), stop
    return None


@torch.no_grad()
def sample_request(
    model: Any,
    tokenizer: Any,
    prompt_ids: list[int],
    params: Any,
    eos_ids: set[int],
    processed: bool,
    engine_generator: torch.Generator,
) -> list[Completion]:
    """`params.n` completions of `prompt_ids` (params: the double's SamplingParams)."""
    n, T = params.n, params.temperature
    greedy = T < _SAMPLING_EPS
    gens = []
    for i in range(n):
        if params.seed is None:
            gens.append(engine_generator)
        else:
            gens.append(torch.Generator().manual_seed(params.seed + i))
    done = [Completion() for _ in range(n)]
    ids = torch.tensor([prompt_ids] * n)  # (n, P): the n children share the prompt
    for _ in range(params.max_tokens):
        # the whole sequence every step (no KV cache): slow, but free of cache API changes
        raw = model(input_ids=ids, use_cache=False).logits[:, -1].float()  # (n, V)
        scaled = raw if greedy else raw / max(T, _MAX_TEMP)
        kept = _filtered(scaled, params.top_p, params.min_p)
        reported = (kept if processed else raw).log_softmax(-1)  # (n, V)
        probs = kept.softmax(-1)
        nxt = []
        for r in range(n):
            if greedy:
                tok = int(kept[r].argmax())
            else:
                tok = int(torch.multinomial(probs[r], 1, generator=gens[r]))
            nxt.append(tok)
            c = done[r]
            if c.finish_reason is not None:
                continue
            lp = float(reported[r, tok])
            rank = int((reported[r] > reported[r, tok]).sum()) + 1
            c.token_ids.append(tok)
            c.logprobs.append((lp, rank))
            text = tokenizer.decode(c.token_ids, skip_special_tokens=params.skip_special_tokens)
            c.text = text
            if tok in eos_ids:
                c.finish_reason = "stop"
                continue
            cut = _cut_at_stop(text, params.stop, params.include_stop_str_in_output)
            if cut is not None:
                c.text, c.stop_reason = cut
                c.finish_reason = "stop"
        if all(c.finish_reason is not None for c in done):
            break
        ids = torch.cat([ids, torch.tensor(nxt).unsqueeze(1)], dim=1)  # (n, P + t)
    for c in done:
        if c.finish_reason is None:
            c.finish_reason = "length"
    return done
