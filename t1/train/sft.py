"""`t1 sft`: supervised fine-tuning on trial-and-error traces (DESIGN.md, recipe step 2).

Loss of one optimiser step over its sequences `x` (prompt tokens, then the response, then the
chat template's end-of-turn), with `m_t = 1` on response tokens only:

    L = (1 / N) * sum_seq sum_{t >= 1} m_t * -log p(x_t | x_<t),      N = sum_seq sum_t m_t

`N` counts the response tokens of the whole step (every micro-batch), so the loss and its
gradient are the same however the step's sequences are split into micro-batches or packed
into rows. Packing puts several sequences in one row with `position_ids` restarting at 0 at
each sequence; transformers >= 5 turns such position ids (with no 2-D attention mask and
`use_cache=False`) into a block-diagonal causal mask for the eager and sdpa attention, so no
token attends across sequences (measured: logits equal to the unpacked ones within 2e-7 on
CPU). Padding is a segment of its own and carries no loss. With `use_cache` left on, the
mask falls back to plain causal and sequences would leak into each other.

The run is resumable exactly: the data order is a function of (seed, epoch), and checkpoints
hold the weights, optimiser, scheduler, RNG states and the step, so a run killed at any moment
and resumed ends with the same parameters and metrics rows as one never stopped (bitwise on CPU
with the same thread count).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import shutil
import sys
import time
import warnings
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from t1.errors import ConfigError, DataError, T1Error
from t1.train.checkpoint import latest_checkpoint, load_state, rng_state, save_checkpoint
from t1.train.checkpoint import set_rng_state
from t1.train.rundir import MetricLogger, Progress, RunDir, seed_everything
from t1.train.schedule import make_optimizer, make_scheduler
from t1.train.signals import StopRequest, resume_command

IGNORE = -100
TIMING_KEYS = ("tokens_per_s", "step_s")


@dataclass
class Example:
    """One tokenised trace: prompt then response; the first `n_prompt` tokens carry no loss."""

    ids: list[int]
    n_prompt: int


@dataclass
class Batch:
    """Rows of one forward pass; `labels[r, t]` is the target of position t (IGNORE: none)."""

    input_ids: torch.Tensor  # (R, T)
    position_ids: torch.Tensor  # (R, T)
    labels: torch.Tensor  # (R, T)
    n_tokens: int  # real (non-padding) tokens


# ----------------------------------------------------------------------------------------------
# Pure pieces: encoding, packing, batching, loss, data order, schedule length
# ----------------------------------------------------------------------------------------------


def response_suffix(tokenizer: Any, chat: bool) -> str:
    """What ends an assistant turn: the chat template's text after the content, up to EOS."""
    eos = tokenizer.eos_token or ""
    if not chat:
        return eos
    marker = "\u2063T1\u2063"
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}]
    text = tokenizer.apply_chat_template(msgs, tokenize=False)
    tail = text.split(marker, 1)[1] if marker in text else eos
    return tail[: tail.index(eos) + len(eos)] if eos and eos in tail else tail


def encode_example(tokenizer: Any, prompt: str, response: str) -> Example:
    """Prompt and response tokenised apart, as at inference (generation starts after the prompt)."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r = tokenizer(response, add_special_tokens=False)["input_ids"]
    return Example(ids=list(p) + list(r), n_prompt=len(p))


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: indices of sequences grouped into rows of at most `capacity` tokens."""
    rows: list[list[int]] = []
    free: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, space in enumerate(free):
            if lengths[i] <= space:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(capacity - lengths[i])
    return rows


def make_batch(examples: list[Example], rows: list[list[int]], pad_id: int) -> Batch:
    """Rows of concatenated sequences; positions restart per sequence, padding is its own segment."""
    width = max(sum(len(examples[i].ids) for i in row) for row in rows)
    ids, pos, labels = [], [], []
    for row in rows:
        r_ids: list[int] = []
        r_pos: list[int] = []
        r_lab: list[int] = []
        for i in row:
            ex = examples[i]
            n = len(ex.ids)
            r_ids += ex.ids
            r_pos += range(n)
            # position t predicts token t + 1; only response tokens are targets
            r_lab += [IGNORE] * (ex.n_prompt - 1) + ex.ids[ex.n_prompt :] + [IGNORE]
        pad = width - len(r_ids)
        ids.append(r_ids + [pad_id] * pad)
        pos.append(r_pos + list(range(pad)))
        labels.append(r_lab + [IGNORE] * pad)
    n_tokens = sum(len(examples[i].ids) for row in rows for i in row)
    return Batch(torch.tensor(ids), torch.tensor(pos), torch.tensor(labels), n_tokens)


def collate(examples: list[Example], pack: bool, max_len: int, pad_id: int) -> Batch:
    """One micro-batch: packed rows of up to `max_len` tokens, or one sequence a row."""
    lengths = [len(e.ids) for e in examples]
    if pack:
        rows = pack_rows(lengths, max_len)
    else:
        rows = [[i] for i in sorted(range(len(examples)), key=lambda i: -lengths[i])]
    return make_batch(examples, rows, pad_id)


def loss_tokens(examples: list[Example]) -> int:
    """N of the module docstring: the response tokens of these sequences."""
    return sum(len(e.ids) - e.n_prompt for e in examples)


def masked_token_loss(logits: torch.Tensor, labels: torch.Tensor, normaliser: int) -> torch.Tensor:
    """Summed cross-entropy over positions with a target, divided by `normaliser`."""
    mask = labels != IGNORE  # (R, T)
    picked = logits[mask].float()  # (n, V): the vocabulary projection is not recomputed
    return F.cross_entropy(picked, labels[mask], reduction="sum") / normaliser


def batch_loss(model: Any, batch: Batch, normaliser: int) -> torch.Tensor:
    """The masked loss of one micro-batch (packing-aware: no cache, positions given)."""
    device = model.device
    out = model(
        input_ids=batch.input_ids.to(device),
        position_ids=batch.position_ids.to(device),
        use_cache=False,
    )
    return masked_token_loss(out.logits, batch.labels.to(device), normaliser)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of the training set in one epoch: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def step_indices(step: int, n: int, batch_size: int, seed: int) -> list[int]:
    """Indices of the training sequences of optimiser step `step` (0-based)."""
    per_epoch = math.ceil(n / batch_size)
    epoch, k = divmod(step, per_epoch)
    return epoch_order(n, seed, epoch)[k * batch_size : (k + 1) * batch_size].tolist()


def split_micro(items: list[Any], n_micro: int) -> list[list[Any]]:
    """`items` in `n_micro` nearly equal consecutive chunks (none empty)."""
    n_micro = max(1, min(n_micro, len(items)))
    size, extra = divmod(len(items), n_micro)
    out, start = [], 0
    for i in range(n_micro):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out


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
    return max(grad_accum, math.ceil(batch_size / micro_batch_size))


def fingerprint(examples: list[Example]) -> str:
    """A hash of the tokenised data, to refuse resuming on different data."""
    h = hashlib.sha256()
    for e in examples:
        h.update(array("q", [e.n_prompt, len(e.ids), *e.ids]).tobytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Inputs: config checks, traces, model
# ----------------------------------------------------------------------------------------------


def check_sft(cfg: Any) -> None:
    """Values that would fail later or train silently wrong, rejected before any work."""
    s, t = cfg.sft, cfg.trainer
    for key, value, low in [
        ("sft.epochs", s.epochs, 1),
        ("sft.batch_size", s.batch_size, 1),
        ("sft.micro_batch_size", s.micro_batch_size, 1),
        ("sft.max_len", s.max_len, 2),
        ("trainer.steps", t.steps, 0),
        ("trainer.save_every", t.save_every, 0),
        ("trainer.eval_every", t.eval_every, 0),
        ("trainer.log_every", t.log_every, 1),
        ("trainer.max_bad_steps", t.max_bad_steps, 1),
    ]:
        if value < low:
            raise ConfigError(f"{key} must be >= {low}, got {value}")
    if not 0.0 <= s.eval_fraction < 1.0:
        raise ConfigError(f"sft.eval_fraction must be in [0, 1), got {s.eval_fraction}")


def _trace_text(trace: Any) -> tuple[Any, str]:
    """(prompt or messages, response) of a `Trace` or of a dict with the same fields."""
    get = trace.get if isinstance(trace, dict) else lambda k: getattr(trace, k, None)
    prompt = get("prompt") or get("messages")
    return prompt, get("response")


def encode_traces(
    traces: list[Any], tokenizer: Any, data_cfg: Any, max_len: int
) -> tuple[list[Example], int]:
    """Tokenised traces (prompt through the chat template) and how many exceeded `max_len`."""
    from t1.models import build_prompt
    from t1.models.prompts import uses_chat_template

    suffix = response_suffix(tokenizer, uses_chat_template(tokenizer, data_cfg.chat_template))
    examples, dropped = [], 0
    for i, trace in enumerate(traces):
        prompt, response = _trace_text(trace)
        if not prompt or not isinstance(response, str) or not response:
            raise DataError(f"trace {i + 1}: needs a non-empty prompt and response")
        ex = encode_example(tokenizer, build_prompt(tokenizer, prompt, data_cfg), response + suffix)
        if len(ex.ids) > max_len or ex.n_prompt == 0:
            dropped += 1
        else:
            examples.append(ex)
    return examples, dropped


def _load_traces(cfg: Any) -> list[Any]:
    if not cfg.data.train:
        raise ConfigError("data.train: set it to the traces JSONL to train on (t1 synth writes one)")
    from t1.data import load_traces

    return load_traces(cfg.data.train, skip_bad_rows=cfg.data.skip_bad_rows)


def _load_model(cfg: Any, ckpt: Path | None, model: Any, tokenizer: Any) -> tuple[Any, Any]:
    """The starting model: the checkpoint's when resuming, else the one given, else cfg.model."""
    from t1.models import load_model

    if ckpt is not None:
        return load_model(dataclasses.replace(cfg.model, path=str(ckpt), gguf_file=None))
    if model is not None:
        if tokenizer is None:
            raise ConfigError("train_sft: a model was given without its tokenizer")
        return model, tokenizer
    return load_model(cfg.model)


def _resume_point(run: RunDir, resume: bool) -> Path | None:
    ckpt = latest_checkpoint(run.path / "checkpoints")
    if not resume and (ckpt is not None or (run.path / "final").exists()):
        raise T1Error(
            f"{run.path} already holds a training run: pass --resume to continue it, "
            "or set trainer.out to a new directory"
        )
    return ckpt if resume else None


# ----------------------------------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------------------------------


@dataclass
class LoopState:
    """What besides weights, optimiser and scheduler a checkpoint holds to continue exactly."""

    step: int = 0
    bad_steps: int = 0
    bad_streak: int = 0
    last_good: str | None = None


def train_step(
    model: Any, optimizer: Any, micro: list[Batch], normaliser: int, grad_clip: float | None
) -> tuple[float, float]:
    """Accumulate gradients over the micro-batches and step; skip the update when non-finite.

    Returns (loss, grad norm before clipping); either is NaN/inf when the step was skipped.
    """
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros(())
    for batch in micro:
        loss = batch_loss(model, batch, normaliser)
        loss.backward()
        total += loss.detach().cpu()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip or math.inf)
    loss_v, norm_v = total.item(), norm.item()
    if math.isfinite(loss_v) and math.isfinite(norm_v):
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_v, norm_v


@torch.no_grad()
def eval_loss(model: Any, examples: list[Example], micro_batch_size: int, max_len: int, pad_id: int,
              pack: bool = True) -> float:
    """Per-token loss of the held-out traces (same normalisation as training)."""
    was_training = model.training
    model.eval()
    n = loss_tokens(examples)
    total = 0.0
    for start in range(0, len(examples), micro_batch_size):
        chunk = examples[start : start + micro_batch_size]
        total += batch_loss(model, collate(chunk, pack, max_len, pad_id), n).item()
    model.train(was_training)
    return total
