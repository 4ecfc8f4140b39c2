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

Under `torchrun --nproc_per_node N`, each process trains on every N-th sequence of a step's
batch, normalised by the whole step's token count, and the gradients are summed (FSDP2's
reduce-scatter: `train.fsdp`, t1.train.sharding), so N processes take the step one process
would on the same batch; rank 0 writes the logs; checkpoints are sharded (t1.train.checkpoint)
and resume on any number of processes.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from t1.errors import ConfigError, T1Error
from t1.models.dcp import load_optimizer, optimizer_tensors
from t1.models.lora import (
    add_adapters,
    check_lora_config,
    check_same_base,
    load_trained_tensors,
    spec_of,
    trained_tensors,
)
from t1.models.sharded import is_sharded
from t1.progress import Progress
from t1.runs import RunDir, latest_checkpoint, seed_everything
from t1.train import checkpoint as ck
from t1.train.distributed import (
    DistInfo,
    all_sum,
    close_distributed,
    init_distributed,
    max_count,
)
from t1.train.export import save_final
from t1.train.footprint import describe, learner_footprint
from t1.train.packing import (
    Batch,
    eval_loss,
    loss_tokens,
    train_step,
)
from t1.train.plan import plan_sft
from t1.train.rundir import MetricLogger
from t1.train.schedule import make_optimizer, make_scheduler
from t1.train.sft_data import (
    SFTData,
    load_traces,
    micro_batches,
    prepare_data,
    step_indices,
    total_steps,
)
from t1.train.sharded_load import load_learner
from t1.train.sharding import check_train_config, prepare_learner
from t1.train.signals import StopRequest, resume_command
from t1.train.tracking import check_trackers

TIMING_KEYS = ("tokens_per_s", "step_s")


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
    check_lora_config(cfg.model.lora)


def _load_model(cfg: Any, model: Any, tokenizer: Any, info: DistInfo) -> tuple[Any, Any]:
    """The starting model: the one given, else cfg.model (sharded: each rank reads or keeps
    only its slice, t1.train.sharded_load); a checkpoint's weights are loaded into it later."""
    if model is not None:
        if tokenizer is None:
            raise ConfigError("train_sft: a model was given without its tokenizer")
        return model, tokenizer
    return load_learner(cfg.model, cfg.train, info)


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
    info: DistInfo = dataclasses.field(default_factory=DistInfo)
    # the model is sharded with FSDP2 (t1.train.sharding)
    sharded: bool = False

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def _tokens(micro: list[Batch], info: DistInfo) -> float:
    """The step's tokens over all ranks."""
    return float(all_sum(torch.tensor(float(sum(b.n_tokens for b in micro))), info))


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
    """Checkpoint the step on every rank (t1.train.checkpoint)."""
    ses.state.last_good = str(ses.run.path / "checkpoints" / f"step-{ses.state.step}")
    optim_tensors, groups = optimizer_tensors(ses.model, ses.optimizer)
    state = {
        "loop": dataclasses.asdict(ses.state),
        "optimizer": groups,
        "scheduler": ses.scheduler.state_dict(),
        "data_fingerprint": ses.data.fingerprint,
        "lora": dataclasses.asdict(spec_of(ses.model)) if spec_of(ses.model) else None,
    }
    # LoRA: the adapters only (the base is the model the run starts from, checked on resume)
    tensors = {"model": trained_tensors(ses.model), "optimizer": optim_tensors}
    root, keep = ses.run.path / "checkpoints", ses.cfg.trainer.keep_last
    config = ses.model.config
    ck.save_checkpoint(root, ses.state.step, state, tensors, config, ses.tokenizer, ses.info, keep)


def _restore(ses: Session, ckpt: Path) -> LoopState:
    """Weights, optimiser, scheduler, RNG and loop state of `ckpt` (any number of processes)."""
    saved = ck.load_state(ckpt)
    if saved["data_fingerprint"] != ses.data.fingerprint:
        raise T1Error(
            f"the training data differ from those of {ckpt} (data.train, sft.max_len, "
            "sft.eval_fraction, trainer.seed): resume with the same ones or start a new run"
        )
    check_same_base(ses.model, saved.get("lora"), ckpt)
    load_trained_tensors(ses.model, ckpt / "model")
    load_optimizer(ses.model, ses.optimizer, ckpt / "optimizer", saved["optimizer"])
    ses.scheduler.load_state_dict(saved["scheduler"])
    ck.load_rng(ckpt, ses.info)
    return LoopState(**saved["loop"])


def _one_step(ses: Session) -> tuple[dict[str, float], bool]:
    """One optimiser step: its metrics row and whether its update was skipped."""
    cfg, st, s = ses.cfg, ses.state, ses.cfg.sft
    start = time.perf_counter()
    idx = step_indices(st.step, len(ses.data.train), s.batch_size, cfg.trainer.seed)
    chosen = [ses.data.train[i] for i in idx]
    info = ses.info
    micro = micro_batches(chosen[info.rank :: info.world], cfg, ses.pad_id, info.world)
    lr = ses.scheduler.get_last_lr()[0]
    loss, norm = train_step(
        ses.model,
        ses.optimizer,
        micro,
        loss_tokens(chosen),
        cfg.optim.grad_clip,
        info,
        ses.sharded,
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
        "tokens_per_s": _tokens(micro, info) / elapsed,
        "step_s": elapsed,
    }
    if ses.data.held and _due(st.step, cfg.trainer.eval_every, ses.n_steps):
        row["eval/loss"] = eval_loss(
            ses.model,
            ses.data.held,
            s.micro_batch_size,
            s.max_len,
            ses.pad_id,
            s.pack,
            info,
            ses.sharded,
        )
    return row, bad


def _stopping(stop: StopRequest, info: DistInfo) -> bool:
    """Whether any rank got a signal (every rank then stops after the same step)."""
    return max_count(int(stop.requested), info) > 0


def _loop(ses: Session, logger: MetricLogger | None) -> str | None:
    """Optimiser steps up to `ses.n_steps`; returns the stop reason when a signal stopped it."""
    t, st, info = ses.cfg.trainer, ses.state, ses.info
    ses.model.train()
    show = t.progress and info.main
    with StopRequest() as stop, Progress(ses.n_steps, "sft", show, st.step) as bar:
        stopping = False
        while st.step < ses.n_steps and not stopping:
            row, bad = _one_step(ses)
            stopping = _stopping(stop, info)
            if logger and (_due(st.step, t.log_every, ses.n_steps) or "eval/loss" in row or bad):
                logger.log(st.step, row)
            bar.update(loss=row["loss"], lr=row["lr"])
            if st.bad_streak >= t.max_bad_steps:
                raise T1Error(
                    f"stopped at step {st.step}: {st.bad_streak} steps in a row with a non-finite "
                    f"loss or gradient; last good checkpoint: {st.last_good or 'none'} "
                    "(lower optim.lr or check the data)"
                )
            if (not bad and _due(st.step, t.save_every, ses.n_steps)) or stopping:
                _save(ses)
    return (stop.reason or "a signal on another rank") if stopping else None


def _start(
    cfg: Any, traces: Any, model: Any, tokenizer: Any, resume: bool, info: DistInfo
) -> Session:
    """Check, load and restore everything before the first step (bad input fails here)."""
    check_sft(cfg)
    check_train_config(cfg.train, info.world)
    run = RunDir(cfg.trainer.out)
    ckpt = _resume_point(run, resume)
    traces = load_traces(cfg) if traces is None else traces
    if model is None:  # the plan of the model cfg.model names, before it is loaded
        plan_sft(cfg, info)
    seed_everything(cfg.trainer.seed)
    model, tokenizer = _load_model(cfg, model, tokenizer, info)
    data = prepare_data(cfg, traces, tokenizer, model)
    model = add_adapters(model, cfg.model.lora, cfg.model, cfg.trainer.seed)
    model = prepare_learner(model, cfg.train, cfg.model.dtype, info)
    opt = make_optimizer(model, cfg.optim)
    n_steps = total_steps(len(data.train), cfg.sft.batch_size, cfg.sft.epochs, cfg.trainer.steps)
    sched = make_scheduler(opt, cfg.optim, n_steps)
    ses = Session(cfg, run, model, tokenizer, opt, sched, data, LoopState(), n_steps, ckpt, info)
    ses.sharded = is_sharded(model)
    if ckpt is not None:
        ses.state = _restore(ses, ckpt)
    return ses


def train_sft(
    cfg: Any,
    traces: list[Any] | None = None,
    model: Any = None,
    tokenizer: Any = None,
    resume: bool = False,
    info: DistInfo | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Run SFT (`SFTStage` config); returns the trained model (eval mode) and the run summary.

    `traces` (Trace records or dicts with prompt/response) replace data.train; `model` and
    `tokenizer` replace cfg.model. With `resume`, the latest complete checkpoint of
    trainer.out is the starting point, its weights loaded into the model (a fresh start when
    there is none). Without it, a trainer.out that already holds a run is an error. `info`:
    the processes of a torchrun launch (each trains on every world-th sequence of a step;
    FSDP2 by `train.fsdp`); rank 0 writes the logs.
    """
    info = info or DistInfo()
    ses = _start(cfg, traces, model, tokenizer, resume, info)
    resumed = ses.state.step if ses.resumed_from else None
    logger = None
    if info.main:
        ses.run.write_config(cfg)
        footprint = learner_footprint(ses.model)
        ses.run.write_json("learner.json", footprint)
        print(f"t1 sft: {describe(footprint)}", flush=True)
        logger = MetricLogger(ses.run.path, cfg.trainer.report_to, resumed, config=cfg)
    began = time.perf_counter()
    try:
        stopped = _loop(ses, logger)
    finally:
        if logger:
            logger.close()
    final = None
    if not stopped:
        final = save_final(ses.model, ses.tokenizer, ses.run.path / "final", cfg.model.dtype, info)
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
    if info.main:
        ses.run.write_json("summary.json", summary)
    return ses.model, summary


def run_sft(cfg: Any, resume: bool = False) -> int:
    """`t1 sft`: train, save RUN/final; on SIGINT/SIGTERM save and print the resume command.

    Under `torchrun --nproc_per_node N` the N processes share each step's sequences.
    """
    info = init_distributed(cfg.model.device, group_of_one=cfg.train.fsdp is True)
    try:
        _, summary = train_sft(cfg, resume=resume, info=info)
    except BaseException:
        close_distributed(failed=True)
        raise
    close_distributed()
    if not info.main:
        return 0
    if summary["stopped"]:
        print(f"t1 sft: stopped ({summary['stopped']}) after step {summary['steps']}; resume with:")
        print(f"  {resume_command('sft', Path(summary['run_dir']).resolve())}")
    else:
        print(f"t1 sft: {summary['steps']} steps; model saved to {summary['final']}")
    sys.stdout.flush()
    return 0
