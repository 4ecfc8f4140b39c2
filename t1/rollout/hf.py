"""The HF-transformers rollout engine: a hand-written sampling loop over the model's KV cache.

Contract (see `t1.rollout.base.RolloutEngine`): `generate(prompts, n, sampling)` returns
len(prompts) * n `Rollout`s grouped by prompt (prompt 0's n samples, then prompt 1's, ...).

- Response ids include the token that ended the response: the eos token (finish "stop"), or the
  token that completed a stop string (finish "stop"; the text is cut right after the stop string,
  which is kept). A response that reached `max_new_tokens` first ends with "length".
- Log-probs are those of the unfiltered tempered distribution, log softmax(z / T)[y] (see
  `t1.rollout.sampling`), equal to the learner's `compute_logprobs(model, batch, T)`.
- Deterministic under `SamplingParams.seed` for the same prompts, n and batch size (a private
  generator); with seed None the global torch RNG is used, so a trainer's saved RNG state
  reproduces its rollouts on resume.
- The engine shares the learner's module (no copy): `update_weights(model)` only rebinds it.
  Generation runs under `torch.no_grad()` in eval mode and restores the previous mode after.
- A learner sharded with FSDP2 is gathered whole for each `generate` call
  (`t1.models.sharded.full_weights`: one all-gather per layer, in the compute dtype, freed
  after), so the decode steps run no collective and ranks may generate different prompts of
  different lengths; every rank of the mesh must call `generate` (the gather is collective).
  The lean decode path does not apply to sharded models (their class is renamed).

Why it is faster than `model.generate` on small CPU models (measured: benchmarks/rollout.py):
the KV cache grows in place (`t1.rollout.cache`) instead of being re-concatenated every step,
which was generate's largest cost after attention and matmuls; Llama/Qwen2 decode steps skip
transformers' per-call machinery (`t1.rollout.fastpath`); finished rows leave the batch when that
saves more than the cache copy costs (`should_compact`); rows are bucketed by prompt length
(K copies of a prompt are neighbours, so batches often need no attention mask) and each distinct
prompt is prefilled once (through `t1.rollout.fastpath.prefill_logits` where the decode fast
path applies), its cache copied to its K rows; top-p uses a partial sort and draws
invert the CDF (`t1.rollout.sampling`); and on CPU, models under 20 M parameters decode with one
intra-op thread (`cpu_threads`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from t1.errors import T1Error
from t1.models.sharded import full_weights
from t1.rollout.base import Rollout, SamplingParams
from t1.rollout.cache import cache_kwargs, make_cache, supports_logits_to_keep
from t1.rollout.fastpath import DecodePlan, decode_step, prefill_logits, supports_fast_decode
from t1.rollout.sampling import sample_next


def check_sampling(sampling: SamplingParams, n: int) -> None:
    """Reject values no sampler can honour, naming the parameter."""
    if n < 1:
        raise T1Error(f"samples per prompt must be >= 1, got {n}")
    if sampling.temperature < 0:
        raise T1Error(f"sampling.temperature must be >= 0, got {sampling.temperature}")
    if not 0.0 < sampling.top_p <= 1.0:
        raise T1Error(f"sampling.top_p must be in (0, 1], got {sampling.top_p}")
    if not 0.0 <= sampling.min_p < 1.0:
        raise T1Error(f"sampling.min_p must be in [0, 1), got {sampling.min_p}")
    if sampling.max_new_tokens < 1:
        raise T1Error(f"sampling.max_new_tokens must be >= 1, got {sampling.max_new_tokens}")


def eos_ids(tokenizer: Any, model: Any) -> list[int]:
    """Every id that ends a response: the tokenizer's eos and the generation config's."""
    ids = {tokenizer.eos_token_id}
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(gen if isinstance(gen, list) else [gen])
    return sorted(i for i in ids if i is not None)


def encode_prompts(tokenizer: Any, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt; BOS is added only where the text does not already start with it."""
    bos = getattr(tokenizer, "bos_token", None)
    out = []
    for i, text in enumerate(prompts):
        add = not (bos and text.startswith(bos))
        ids = tokenizer(text, add_special_tokens=add)["input_ids"]
        if not ids:
            raise T1Error(f"prompt {i} is empty after tokenisation")
        out.append(list(ids))
    return out


# below this many parameters a CPU decode step is a few small matmuls: threads only add overhead
SMALL_MODEL_PARAMS = 20_000_000


@contextlib.contextmanager
def cpu_threads(model: Any, device: torch.device, num_threads: int | None) -> Iterator[None]:
    """Run with `num_threads` intra-op threads on CPU (None: 1 for small models, else as is).

    Tiny decode steps gain nothing from intra-op threads, and when the cores are shared the
    threads' synchronisation makes each step many times slower (measured on 2 shared cores:
    0.16 s with one thread vs 6 s with two for the same small call).
    """
    if device.type != "cpu":
        yield
        return
    if num_threads is None:
        small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS
        num_threads = 1 if small else torch.get_num_threads()
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def should_compact(n_rows: int, n_alive: int, steps_left: int, cost: float = 1.0) -> bool:
    """Drop finished rows when the dead rows' share of the remaining steps exceeds `cost` steps.

    A dead row costs about 1 / n_rows of every remaining decode step; compacting copies the KV
    cache once, which costs about `cost` full steps (attention reads the same bytes).
    """
    dead = n_rows - n_alive
    return dead > 0 and dead * steps_left >= cost * n_rows


def stop_cut(text: str, stops: Sequence[str]) -> int | None:
    """Index just after the earliest-ending stop string in `text`, or None."""
    ends = [text.find(s) + len(s) for s in stops if s and s in text]
    return min(ends) if ends else None


def split_rows(
    tokens: torch.Tensor, logps: torch.Tensor, lengths: torch.Tensor, stopped: torch.Tensor
) -> list[tuple[list[int], list[float], bool]]:
    """Per row: its first `length` tokens and log-probs, and whether it stopped."""
    tokens_l, logps_l, lengths_l = tokens.tolist(), logps.tolist(), lengths.tolist()
    return [
        (t[:n], lp[:n], s) for t, lp, n, s in zip(tokens_l, logps_l, lengths_l, stopped.tolist())
    ]


class HFEngine:
    """Batched sampling with any HF causal LM (see the module docstring)."""

    def __init__(
        self, model: Any, tokenizer: Any, batch_size: int = 64, num_threads: int | None = None
    ) -> None:
        if batch_size < 1:
            raise T1Error(f"rollout.batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        # CPU intra-op threads while generating (None: 1 for models < 20 M parameters)
        self.num_threads = num_threads
        # cost of compacting the batch (copying the KV cache), in decode steps of the full batch
        self.compact_cost = 1.0
        # decode Llama/Qwen2 steps with `t1.rollout.fastpath` instead of the model's forward
        self.fast_decode = True
        if tokenizer.pad_token_id is None:
            raise T1Error("the tokenizer has no pad token (load models with t1.models.load_model)")

    def update_weights(self, model: Any) -> None:
        """The engine shares the learner's module, so this only rebinds it (no copy)."""
        self.model = model

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> list[Rollout]:
        check_sampling(sampling, n)
        prompt_ids = encode_prompts(self.tokenizer, prompts)
        device = next(self.model.parameters()).device
        gen = None
        if sampling.seed is not None:
            gen = torch.Generator(device=device).manual_seed(sampling.seed)
        rows = [(p, j) for p in range(len(prompt_ids)) for j in range(n)]
        # bucket by prompt length; a stable sort keeps a prompt's K rows together
        order = sorted(range(len(rows)), key=lambda r: len(prompt_ids[rows[r][0]]))
        results: dict[int, tuple[list[int], list[float], bool]] = {}
        was_training = self.model.training
        self.model.eval()
        try:
            with (
                torch.no_grad(),
                full_weights(self.model),
                cpu_threads(self.model, device, self.num_threads),
            ):
                for s in range(0, len(order), self.batch_size):
                    chunk = order[s : s + self.batch_size]
                    srcs = [rows[r][0] for r in chunk]
                    outs = self._generate_chunk(prompt_ids, srcs, sampling, gen, device)
                    results.update(zip(chunk, outs))
        finally:
            self.model.train(was_training)
        return [
            self._to_rollout(rows[r], prompt_ids, *results[r], sampling) for r in range(len(rows))
        ]

    def _to_rollout(
        self,
        row: tuple[int, int],
        prompt_ids: list[list[int]],
        ids: list[int],
        logps: list[float],
        stopped: bool,
        sampling: SamplingParams,
    ) -> Rollout:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        cut = stop_cut(text, sampling.stop) if stopped and sampling.stop else None
        if cut is not None:
            text = text[:cut]
        return Rollout(
            prompt_index=row[0],
            prompt_ids=list(prompt_ids[row[0]]),
            response_ids=ids,
            logprobs=logps,
            finish_reason="stop" if stopped else "length",
            text=text,
            meta={"sample_index": row[1]},
        )

    def _prefill(
        self,
        prompt_ids: list[list[int]],
        srcs: list[int],
        device: torch.device,
        new_tokens: int,
        plan: DecodePlan | None,
    ) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run each distinct prompt once; return (cache, last logits, mask, next positions) per row.

        With a `plan`, the prompts run through the lean packed pass (`prefill_logits`).
        """
        uniq = list(dict.fromkeys(srcs))
        where = {p: i for i, p in enumerate(uniq)}
        lens = [len(prompt_ids[p]) for p in uniq]
        L = max(lens)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(uniq), L), pad, dtype=torch.long)
        mask = torch.zeros((len(uniq), L), dtype=torch.long)
        for i, p in enumerate(uniq):
            ids[i, L - lens[i] :] = torch.tensor(prompt_ids[p])
            mask[i, L - lens[i] :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp_(min=0)
        cache = make_cache(self.model, capacity=L + new_tokens)
        if plan is not None:
            logits = prefill_logits(plan, cache, ids, positions, mask)
        else:
            keep_last = {"logits_to_keep": 1} if supports_logits_to_keep(self.model) else {}
            out = self.model(
                input_ids=ids,
                attention_mask=mask if min(lens) < L else None,
                position_ids=positions,
                use_cache=True,
                **cache_kwargs(self.model, cache),
                **keep_last,
            )
            logits = out.logits[:, -1]
        index = torch.tensor([where[p] for p in srcs], device=device)
        if len(uniq) != len(srcs) or not torch.equal(index, torch.arange(len(srcs), device=device)):
            cache.batch_select_indices(index)
        return cache, logits[index], mask[index], mask[index].sum(-1)

    def _generate_chunk(
        self,
        prompt_ids: list[list[int]],
        srcs: list[int],
        sampling: SamplingParams,
        gen: torch.Generator | None,
        device: torch.device,
    ) -> list[tuple[list[int], list[float], bool]]:
        """Sample one batch of rows to completion; per row (ids, logprobs, stopped).

        A finished row stays in the batch (its tokens past its length are ignored) until
        `should_compact` says that dropping the dead rows saves more than the copy costs.
        """
        B, T = len(srcs), sampling.max_new_tokens
        plan = None
        if self.fast_decode and supports_fast_decode(self.model):
            longest = max(len(prompt_ids[p]) for p in srcs)
            plan = DecodePlan(self.model, max_position=longest + T)
        cache, logits, mask, pos = self._prefill(prompt_ids, srcs, device, T, plan)
        has_pad = bool((mask == 0).any())
        eos = torch.tensor(eos_ids(self.tokenizer, self.model), device=device)
        tokens = torch.zeros((B, T), dtype=torch.long, device=device)
        logps = torch.zeros((B, T), dtype=torch.float32, device=device)
        lengths = torch.full((B,), T, dtype=torch.long, device=device)
        stopped = torch.zeros(B, dtype=torch.bool, device=device)
        live = torch.arange(B, device=device)  # original row of each batch row
        alive = torch.ones(B, dtype=torch.bool, device=device)
        stop_checker = _StopChecker(self.tokenizer, sampling.stop, B) if sampling.stop else None
        n_alive, compacted = B, False
        for step in range(T):
            tok, lp = sample_next(logits, sampling.temperature, sampling.top_p, sampling.min_p, gen)
            if compacted:
                tokens[live, step] = tok
                logps[live, step] = lp
            else:  # batch row i is still original row i
                tokens[:, step] = tok
                logps[:, step] = lp
            done = (tok == eos[0] if len(eos) == 1 else torch.isin(tok, eos)) & alive
            if stop_checker is not None:
                done |= stop_checker.check(live, alive, tok, device)
            if bool(done.any()):
                lengths[live[done]] = step + 1
                stopped[live[done]] = True
                alive &= ~done
                n_alive = int(alive.sum())
            if n_alive == 0 or step == T - 1:
                break
            if should_compact(len(live), n_alive, T - step - 1, self.compact_cost):
                keep = alive.nonzero().squeeze(-1)
                live, alive, tok, mask, pos = (t[keep] for t in (live, alive, tok, mask, pos))
                cache.batch_select_indices(keep)
                has_pad = has_pad and bool((mask == 0).any())
                compacted = True
            if has_pad:
                mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            logits = self._decode(tok, pos, cache, mask if has_pad else None, plan)
            pos = pos + 1
        return split_rows(tokens, logps, lengths, stopped)

    def _decode(
        self, tok: torch.Tensor, pos: torch.Tensor, cache: Any, mask: Any, plan: Any
    ) -> torch.Tensor:
        """(b, V) logits after feeding one token per row (the lean path or the model's forward)."""
        if plan is not None:
            return decode_step(plan, tok, pos, cache, mask)
        out = self.model(
            input_ids=tok[:, None],
            attention_mask=mask,
            position_ids=pos[:, None],
            use_cache=True,
            **cache_kwargs(self.model, cache),
        )
        return out.logits[:, -1]


class _StopChecker:
    """Finds stop strings in each row's response by decoding only its last few tokens."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], rows: int) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.window = max(len(s) for s in self.stops) + 4 if self.stops else 0
        self.ids: list[list[int]] = [[] for _ in range(rows)]

    def check(
        self, live: torch.Tensor, alive: torch.Tensor, tok: torch.Tensor, device: torch.device
    ) -> torch.Tensor:
        """(b,) bool: alive rows whose response now ends in a stop string."""
        hit = torch.zeros(len(live), dtype=torch.bool, device=device)
        if not self.stops:
            return hit
        where = alive.nonzero().squeeze(-1).tolist()
        rows, toks = live[alive].tolist(), tok[alive].tolist()
        for r, t in zip(rows, toks):
            self.ids[r].append(t)
        tails = self.tokenizer.batch_decode(
            [self.ids[r][-self.window :] for r in rows], skip_special_tokens=True
        )
        for i, text in zip(where, tails):
            hit[i] = any(s in text for s in self.stops)
        return hit
