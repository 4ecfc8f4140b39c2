"""SFT data: traces tokenised, split, and ordered into steps and micro-batches.

The order of the training set is a pure function of (seed, epoch) and the step, so a resumed
run sees the batches an uninterrupted one would; with N processes each takes every N-th
sequence of a step's batch (`micro_batches(..., world)`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from t1.errors import ConfigError, DataError
from t1.train.packing import (
    Batch,
    Example,
    collate,
    encode_example,
    fingerprint,
    response_suffix,
    split_micro,
)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of the training set in one epoch: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def step_indices(step: int, n: int, batch_size: int, seed: int) -> list[int]:
    """Indices of the training sequences of optimiser step `step` (0-based)."""
    per_epoch = math.ceil(n / batch_size)
    epoch, k = divmod(step, per_epoch)
    return epoch_order(n, seed, epoch)[k * batch_size : (k + 1) * batch_size].tolist()


def split_eval(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) indices: a seeded shuffle, at least one of each when n >= 2."""
    n_eval = min(max(1, round(n * fraction)), n - 1) if fraction > 0 and n >= 2 else 0
    order = np.random.default_rng([seed, 1_000_003]).permutation(n).tolist()
    return sorted(order[n_eval:]), sorted(order[:n_eval])


def total_steps(n_train: int, batch_size: int, epochs: int, max_steps: int) -> int:
    """Optimiser steps of the run: `epochs` passes, capped at `max_steps` when > 0."""
    steps = epochs * math.ceil(n_train / batch_size)
    return min(steps, max_steps) if max_steps > 0 else steps


def micro_batches_per_step(batch_size: int, micro_batch_size: int, grad_accum: int) -> int:
    """Forward/backward passes per step: enough to respect micro_batch_size, >= grad_accum."""
    return max(grad_accum, math.ceil(batch_size / micro_batch_size))


def trace_text(trace: Any) -> tuple[Any, Any]:
    """(prompt text or chat list, response) of a `t1.data.Trace` or of a dict with its fields."""
    if isinstance(trace, dict):
        return trace.get("messages") or trace.get("prompt"), trace.get("response")
    return getattr(trace, "prompt_input", None) or trace.prompt, trace.response


def encode_traces(
    traces: list[Any], tokenizer: Any, data_cfg: Any, max_len: int
) -> tuple[list[Example], int]:
    """Tokenised traces (prompt through the chat template) and how many exceeded `max_len`."""
    from t1.models import build_prompt
    from t1.models.prompts import uses_chat_template

    suffix = response_suffix(tokenizer, uses_chat_template(tokenizer, data_cfg.chat_template))
    examples, dropped = [], 0
    for i, trace in enumerate(traces):
        prompt, response = trace_text(trace)
        if not prompt or not isinstance(response, str) or not response:
            raise DataError(f"trace {i + 1}: needs a non-empty prompt and response")
        ex = encode_example(tokenizer, build_prompt(tokenizer, prompt, data_cfg), response + suffix)
        if len(ex.ids) > max_len or ex.n_prompt == 0:
            dropped += 1
        else:
            examples.append(ex)
    return examples, dropped


def load_traces(cfg: Any) -> list[Any]:
    if not cfg.data.train:
        raise ConfigError(
            "data.train: set it to the traces to train on: a file (t1 synth writes one), "
            "a folder or a Hub dataset"
        )
    from t1.data.traces import traces_for

    return traces_for(cfg.data)


@dataclass
class SFTData:
    train: list[Example]
    held: list[Example]
    dropped: int
    fingerprint: str
    # malformed rows data.skip_bad_rows skipped while loading
    skipped_rows: int = 0


def prepare_data(cfg: Any, traces: list[Any], tokenizer: Any, model: Any) -> SFTData:
    """Tokenise, drop over-long traces (counted, warned), split off the held-out set."""
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and cfg.sft.max_len > context:
        raise ConfigError(f"sft.max_len={cfg.sft.max_len} exceeds the model's context ({context})")
    examples, dropped = encode_traces(traces, tokenizer, cfg.data, cfg.sft.max_len)
    where = cfg.data.train or "traces"
    if not examples:
        raise DataError(
            f"{where}: none of {len(traces)} traces fits in sft.max_len={cfg.sft.max_len}"
        )
    if dropped:
        warnings.warn(f"{where}: {dropped} traces longer than sft.max_len dropped", stacklevel=2)
    train_idx, held_idx = split_eval(len(examples), cfg.sft.eval_fraction, cfg.trainer.seed)
    train, held = [examples[i] for i in train_idx], [examples[i] for i in held_idx]
    fp = f"{fingerprint(examples)}-{len(train)}-{len(held)}"
    return SFTData(train, held, dropped, fp, getattr(traces, "skipped", 0))


def micro_batches(chosen: list[Example], cfg: Any, pad_id: int, world: int = 1) -> list[Batch]:
    """This rank's micro-batches of its share `chosen` of the step (none when it is empty)."""
    s = cfg.sft
    if not chosen:
        return []
    if not s.pack:  # length bucketing: similar lengths share a micro-batch
        chosen = sorted(chosen, key=lambda e: -len(e.ids))
    per_rank = math.ceil(s.batch_size / world)
    n_micro = micro_batches_per_step(per_rank, s.micro_batch_size, cfg.optim.grad_accum)
    return [collate(c, s.pack, s.max_len, pad_id) for c in split_micro(chosen, n_micro)]
