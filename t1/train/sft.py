"""`t1 sft`: supervised fine-tuning on trial-and-error traces (DESIGN.md, recipe step 2).

Loss on response tokens only, normalised per token over the whole optimiser step, sequences
packed into rows (t1.train.packing states the equation and the packing contract), AdamW with
warm-up and cosine decay (t1.train.schedule), gradient accumulation and clipping, held-out loss.

The run is resumable exactly: the data order is a pure function of (seed, epoch) and of the
step, and checkpoints hold the weights, optimiser, scheduler, RNG states and the step, so a run
killed at any moment and resumed ends with the same parameters and metrics rows (timing keys
excepted) as one never stopped: bitwise on CPU with the same thread count. A step whose loss or
gradient is NaN/inf changes no weight; it is counted (`bad_steps`) and warned about, and
checkpoints are not written while such steps run in a row, so the newest one is always good.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from t1.errors import ConfigError, DataError, T1Error
from t1.progress import Progress
from t1.runs import RunDir, latest_checkpoint, seed_everything
from t1.train import checkpoint as ck
from t1.train.packing import (
    Batch,
    Example,
    collate,
    encode_example,
    eval_loss,
    fingerprint,
    loss_tokens,
    response_suffix,
    split_micro,
    train_step,
)
from t1.train.rundir import MetricLogger
from t1.train.schedule import make_optimizer, make_scheduler
from t1.train.signals import StopRequest, resume_command
from t1.train.tracking import check_trackers

TIMING_KEYS = ("tokens_per_s", "step_s")


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
    check_trackers(t.report_to)


def _trace_text(trace: Any) -> tuple[Any, Any]:
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
        raise ConfigError(
            "data.train: set it to the traces to train on: a file (t1 synth writes one), "
            "a folder or a Hub dataset"
        )
    from t1.data.traces import traces_for

    return traces_for(cfg.data)


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


@dataclass
class LoopState:
    """What besides weights, optimiser and scheduler a checkpoint holds to continue exactly."""

    step: int = 0
    bad_steps: int = 0
    bad_streak: int = 0
    last_good: str | None = None


@dataclass
class SFTData:
    train: list[Example]
    held: list[Example]
    dropped: int
    fingerprint: str
    # malformed rows data.skip_bad_rows skipped while loading
    skipped_rows: int = 0


@dataclass
class Session:
    """Everything one run's loop touches, built once by `train_sft`."""

    cfg: Any
    run: RunDir
    model: Any
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    data: SFTData
    state: LoopState
    n_steps: int
    # the checkpoint this run continues from (None: a fresh start)
    resumed_from: Path | None = None

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


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


def _micro_batches(chosen: list[Example], cfg: Any, pad_id: int) -> list[Batch]:
    s = cfg.sft
    if not s.pack:  # length bucketing: similar lengths share a micro-batch
        chosen = sorted(chosen, key=lambda e: -len(e.ids))
    n_micro = micro_batches_per_step(s.batch_size, s.micro_batch_size, cfg.optim.grad_accum)
    return [collate(c, s.pack, s.max_len, pad_id) for c in split_micro(chosen, n_micro)]


def _due(step: int, every: int, last: int) -> bool:
    return step == last or (every > 0 and step % every == 0)


def _count_bad(state: LoopState, loss: float, norm: float, max_bad: int) -> bool:
    """Update the bad-step counters; True when this step's update was skipped."""
    if math.isfinite(loss) and math.isfinite(norm):
        state.bad_streak = 0
        return False
    state.bad_steps += 1
    state.bad_streak += 1
    warnings.warn(
        f"step {state.step}: non-finite loss ({loss}) or gradient norm ({norm}): update skipped "
        f"({state.bad_streak} in a row, trainer.max_bad_steps={max_bad})",
        RuntimeWarning,
        stacklevel=3,
    )
    return True


def _save(ses: Session) -> None:
    ses.state.last_good = str(ses.run.path / "checkpoints" / f"step-{ses.state.step}")
    payload = {
        "loop": dataclasses.asdict(ses.state),
        "optimizer": ses.optimizer.state_dict(),
        "scheduler": ses.scheduler.state_dict(),
        "rng": ck.rng_state(),
        "data_fingerprint": ses.data.fingerprint,
    }
    root, keep = ses.run.path / "checkpoints", ses.cfg.trainer.keep_last
    ck.save_checkpoint(root, ses.state.step, ses.model, ses.tokenizer, payload, keep)


def _restore(ckpt: Path, optimizer: Any, scheduler: Any, fp: str) -> LoopState:
    saved = ck.load_state(ckpt)
    if saved["data_fingerprint"] != fp:
        raise T1Error(
            f"the training data differ from those of {ckpt} (data.train, sft.max_len, "
            "sft.eval_fraction, trainer.seed): resume with the same ones or start a new run"
        )
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    ck.set_rng_state(saved["rng"])
    return LoopState(**saved["loop"])


def _save_final(run: RunDir, model: Any, tokenizer: Any) -> Path:
    """RUN/final, written beside and renamed into place so it is never half there."""
    from t1.models import save_model

    final, tmp = run.path / "final", run.path / ".final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tokenizer, tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _one_step(ses: Session) -> tuple[dict[str, float], bool]:
    """One optimiser step: its metrics row and whether its update was skipped."""
    cfg, st, s = ses.cfg, ses.state, ses.cfg.sft
    start = time.perf_counter()
    idx = step_indices(st.step, len(ses.data.train), s.batch_size, cfg.trainer.seed)
    chosen = [ses.data.train[i] for i in idx]
    micro = _micro_batches(chosen, cfg, ses.pad_id)
    lr = ses.scheduler.get_last_lr()[0]
    loss, norm = train_step(
        ses.model, ses.optimizer, micro, loss_tokens(chosen), cfg.optim.grad_clip
    )
    ses.scheduler.step()
    st.step += 1
    bad = _count_bad(st, loss, norm, cfg.trainer.max_bad_steps)
    elapsed = time.perf_counter() - start
    row = {
        "loss": loss,
        "lr": lr,
        "grad_norm": norm,
        "bad_steps": st.bad_steps,
        "epoch": st.step / math.ceil(len(ses.data.train) / s.batch_size),
        "tokens_per_s": sum(b.n_tokens for b in micro) / elapsed,
        "step_s": elapsed,
    }
    if ses.data.held and _due(st.step, cfg.trainer.eval_every, ses.n_steps):
        row["eval/loss"] = eval_loss(
            ses.model, ses.data.held, s.micro_batch_size, s.max_len, ses.pad_id, s.pack
        )
    return row, bad


def _loop(ses: Session, logger: MetricLogger) -> str | None:
    """Optimiser steps up to `ses.n_steps`; returns the stop reason when a signal stopped it."""
    t, st = ses.cfg.trainer, ses.state
    ses.model.train()
    with StopRequest() as stop, Progress(ses.n_steps, "sft", t.progress, st.step) as bar:
        while st.step < ses.n_steps and not stop.requested:
            row, bad = _one_step(ses)
            if _due(st.step, t.log_every, ses.n_steps) or "eval/loss" in row or bad:
                logger.log(st.step, row)
            bar.update(loss=row["loss"], lr=row["lr"])
            if st.bad_streak >= t.max_bad_steps:
                raise T1Error(
                    f"stopped at step {st.step}: {st.bad_streak} steps in a row with a non-finite "
                    f"loss or gradient; last good checkpoint: {st.last_good or 'none'} "
                    "(lower optim.lr or check the data)"
                )
            if (not bad and _due(st.step, t.save_every, ses.n_steps)) or stop.requested:
                _save(ses)
    return stop.reason


def _start(cfg: Any, traces: Any, model: Any, tokenizer: Any, resume: bool) -> Session:
    """Check, load and restore everything before the first step (bad input fails here)."""
    check_sft(cfg)
    run = RunDir(cfg.trainer.out)
    ckpt = _resume_point(run, resume)
    traces = _load_traces(cfg) if traces is None else traces
    seed_everything(cfg.trainer.seed)
    model, tokenizer = _load_model(cfg, ckpt, model, tokenizer)
    data = prepare_data(cfg, traces, tokenizer, model)
    opt = make_optimizer(model, cfg.optim)
    n_steps = total_steps(len(data.train), cfg.sft.batch_size, cfg.sft.epochs, cfg.trainer.steps)
    sched = make_scheduler(opt, cfg.optim, n_steps)
    state = _restore(ckpt, opt, sched, data.fingerprint) if ckpt else LoopState()
    return Session(cfg, run, model, tokenizer, opt, sched, data, state, n_steps, ckpt)


def train_sft(
    cfg: Any,
    traces: list[Any] | None = None,
    model: Any = None,
    tokenizer: Any = None,
    resume: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Run SFT (`SFTStage` config); returns the trained model (eval mode) and the run summary.

    `traces` (Trace records or dicts with prompt/response) replace data.train; `model` and
    `tokenizer` replace cfg.model. With `resume`, the latest complete checkpoint of
    trainer.out is the starting point, its weights replacing `model` (a fresh start when
    there is none). Without it, a trainer.out that already holds a run is an error.
    """
    ses = _start(cfg, traces, model, tokenizer, resume)
    ses.run.write_config(cfg)
    resumed = ses.state.step if ses.resumed_from else None
    logger = MetricLogger(ses.run.path, cfg.trainer.report_to, resumed, config=cfg)
    began = time.perf_counter()
    try:
        stopped = _loop(ses, logger)
    finally:
        logger.close()
    final = None if stopped else _save_final(ses.run, ses.model, ses.tokenizer)
    ses.model.eval()
    summary = {
        "steps": ses.state.step,
        "total_steps": ses.n_steps,
        "bad_steps": ses.state.bad_steps,
        "n_train": len(ses.data.train),
        "n_eval": len(ses.data.held),
        "dropped": ses.data.dropped,
        "skipped_rows": ses.data.skipped_rows,
        "seconds": time.perf_counter() - began,
        "stopped": stopped,
        "final": str(final) if final else None,
        "run_dir": str(ses.run.path),
    }
    ses.run.write_json("summary.json", summary)
    return ses.model, summary


def run_sft(cfg: Any, resume: bool = False) -> int:
    """`t1 sft`: train, save RUN/final; on SIGINT/SIGTERM save and print the resume command."""
    _, summary = train_sft(cfg, resume=resume)
    if summary["stopped"]:
        print(f"t1 sft: stopped ({summary['stopped']}) after step {summary['steps']}; resume with:")
        print(f"  {resume_command('sft', Path(summary['run_dir']).resolve())}")
    else:
        print(f"t1 sft: {summary['steps']} steps; model saved to {summary['final']}")
    sys.stdout.flush()
    return 0
