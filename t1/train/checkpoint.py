"""Atomic checkpoints and exact resume.

A checkpoint is written into `checkpoints/.step-N.tmp/`, every file fsynced, a `COMPLETE` marker
written last, and the folder renamed to `checkpoints/step-N/` (a rename is atomic on POSIX).
A run killed at any moment leaves either the previous checkpoints alone or a `.tmp` folder that
is never chosen and is cleaned up on the next save. A full disk raises and leaves the previous
checkpoint intact.

    step-N/  model.safetensors config.json tokenizer files   (an HF save_pretrained folder)
             trainer_state.pt   optimiser, scheduler, anchor, RNG states, data position, step
             COMPLETE
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from t1.runs import MARKER, STATE, list_checkpoints


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    ckpt_root: str | Path,
    step: int,
    model: Any,
    tokenizer: Any | None,
    state: dict[str, Any],
    keep_last: int = 0,
) -> Path:
    """Write `step-N` atomically; returns its path. `state` is anything torch.save can hold."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per shard is noise in a training log
    root = Path(ckpt_root)
    root.mkdir(parents=True, exist_ok=True)
    for stale in [*root.glob(".step-*.tmp"), *root.glob(".step-*.old")]:
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp"
    try:
        tmp.mkdir()
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        torch.save(state, tmp / STATE)
        (tmp / MARKER).write_text(str(step))
        _fsync_tree(tmp)
        old = root / f".step-{step}.old"
        if final.exists():  # re-saving a step: move it aside first, never half-delete it
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(root)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep_last > 0:
        for old in list_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(ckpt: str | Path) -> dict[str, Any]:
    return torch.load(Path(ckpt) / STATE, map_location="cpu", weights_only=False)
