"""What an RL run carries across steps and restarts, and how it is saved and restored.

A resumed run continues exactly as if never stopped: bitwise on CPU with the same number of
intra-op threads (float reductions are split by thread count); on GPUs up to the kernels' own
nondeterminism (atomics), unless `torch.use_deterministic_algorithms(True)`. A test kills runs
with SIGTERM and SIGKILL, also in the middle of a checkpoint, and compares. It holds because every
input of a step is either saved or derived from (seed, step):

    saved in step-N/         policy weights (a LoRA policy's adapters), optimiser and
                             scheduler states, the EMA anchor's weights (its EMA adapters
                             under LoRA; sharded safetensors), the prompt order's (epoch,
                             position), the step and update counters, the bad-step counters,
                             each rank's RNG states (JSON); t1.train.checkpoint
    derived from the seed    each step's sampling seed (`derive_seed(seed, "rollout", step,
                             rank)`), the selection generator, each epoch's prompt permutation
    rebuilt identically      the model's non-persistent buffers, the tokenizer, the prompts
                             (curated prompts are read back from the run's curated.jsonl)

The HF engine shares the policy module, so restoring the weights restores the sampler too;
metrics.jsonl rows written after the checkpoint by the killed run are dropped on resume
(`MetricLogger(resume_step=...)`). Checkpoints are written atomically (t1.train.checkpoint):
a half-written `.step-N.tmp/` is never chosen. A checkpoint of N processes resumes on M: the
weights, moments and anchor are resharded on load; with M = N the run continues bitwise, with
M != N the rollouts split over ranks differently (each rank's sampling seed is derived from its
rank), so it continues as a run on M processes would, not bitwise as the N-process one.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import torch

from t1.errors import ConfigError, T1Error
from t1.models.dcp import load_optimizer, optimizer_tensors
from t1.models.lora import check_same_base, load_trained_tensors, spec_of, trained_tensors
from t1.runs import latest_checkpoint
from t1.train.anchor import anchor_tensors, load_anchor_
from t1.train.checkpoint import load_rng, load_state, save_checkpoint

# metrics that measure time, not learning: they differ between a run and its resumed twin
TIMING_KEYS = ("time/", "tokens_per_s")


def derive_seed(*parts: Any) -> int:
    """A stable 63-bit seed from any parts (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class PromptOrder:
    """Epoch-wise shuffled prompt indices; its state (epoch, position) goes into checkpoints."""

    def __init__(self, n: int, seed: int):
        if n == 0:
            raise ConfigError("no RL prompts to train on (data.train is empty after curation)")
        self.n, self.seed, self.epoch, self.pos = n, seed, 0, 0

    def _perm(self) -> list[int]:
        g = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", self.epoch))
        return torch.randperm(self.n, generator=g).tolist()

    def take(self, m: int) -> list[int]:
        out: list[int] = []
        while len(out) < m:
            perm = self._perm()
            grab = perm[self.pos : self.pos + m - len(out)]
            out += grab
            self.pos += len(grab)
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]


def rl_checkpoint_state(trainer: Any) -> tuple[dict[str, Any], dict[str, dict]]:
    """(JSON state, tensor folders) of an `RLTrainer` for `t1.train.checkpoint.save_checkpoint`."""
    optim_tensors, groups = optimizer_tensors(trainer.model, trainer.optimizer)
    state = {
        "step": trainer.step,
        "updates": trainer.updates,
        "bad_in_row": trainer.bad_in_row,
        "bad_total": trainer.bad_total,
        "scheduler": trainer.scheduler.state_dict(),
        "order": trainer.order.state_dict(),
        "optimizer": groups,
        "lora": dataclasses.asdict(spec_of(trainer.model)) if spec_of(trainer.model) else None,
    }
    # LoRA: the adapters only (the base is the model the run starts from, checked on resume)
    tensors = {"model": trained_tensors(trainer.model), "optimizer": optim_tensors}
    if trainer.anchor is not None:
        tensors["anchor"] = anchor_tensors(trainer.anchor)
    return state, tensors


def save_rl_checkpoint(trainer: Any, ckpt_root: Path) -> Path:
    """Checkpoint the trainer (every rank calls this), a failed write (a full disk) turned
    into a one-line `T1Error`.

    The failed `.step-N.tmp/` is removed by `save_checkpoint`; the previous checkpoint is
    untouched, and the message names it.
    """
    state, tensors = rl_checkpoint_state(trainer)
    try:
        return save_checkpoint(
            ckpt_root,
            trainer.step,
            state,
            tensors,
            trainer.model.config,
            trainer.tokenizer,
            trainer.info,
            trainer.cfg.trainer.keep_last,
        )
    except OSError as e:
        previous = latest_checkpoint(ckpt_root)
        kept = f"{previous} is intact" if previous else "there is no earlier checkpoint"
        raise T1Error(
            f"could not write checkpoint step-{trainer.step} in {ckpt_root} "
            f"({e.strerror or e}); {kept}"
        ) from e


def restore_rl_checkpoint(trainer: Any, ckpt: Path) -> None:
    """Everything `save_rl_checkpoint` wrote, into the trainer (any number of processes)."""
    state = load_state(ckpt)
    check_same_base(trainer.model, state.get("lora"), ckpt)
    load_trained_tensors(trainer.model, ckpt / "model")
    load_optimizer(trainer.model, trainer.optimizer, ckpt / "optimizer", state["optimizer"])
    if trainer.anchor is not None and (ckpt / "anchor").is_dir():
        load_anchor_(trainer.anchor, ckpt / "anchor")
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.order.load_state_dict(state["order"])
    trainer.step, trainer.updates = state["step"], state["updates"]
    trainer.bad_in_row, trainer.bad_total = state["bad_in_row"], state["bad_total"]
    load_rng(ckpt, trainer.info)
