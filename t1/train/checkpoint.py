"""Atomic checkpoints and exact resume, on one process or many, sharded or not.

A checkpoint is written into `checkpoints/.step-N.tmp/`, every file fsynced, a `COMPLETE` marker
written last, and the folder renamed to `checkpoints/step-N/` (a rename is atomic on POSIX).
A run killed at any moment (any rank, inside a sharded write included) leaves either the
previous checkpoints alone or a `.tmp` folder that is never chosen and is cleaned up on the next
save. A full disk raises on every rank and leaves the previous checkpoint intact.

    step-N/  model/              the weights (float32 masters), torch.distributed.checkpoint
                                 safetensors shards, one file per rank (t1.models.dcp)
             optimizer/          AdamW moments and step counts, by parameter name (same format)
             anchor/             the RL EMA anchor's weights (same format)
             trainer_state.json  counters, scheduler, data position, optimiser hyper-parameters
             rng/rank-R.json     each rank's Python, NumPy and torch RNG states
             config.json, generation_config.json, tokenizer files   (names the model)
             COMPLETE

Nothing is pickled: tensors are safetensors, the rest JSON, so loading a checkpoint from
elsewhere runs no code. The tensor folders load on any number of processes (`t1.models.dcp`);
the folders sit on a file system every rank sees (a shared one across nodes).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from t1.errors import T1Error
from t1.models.dcp import save_tensors
from t1.runs import MARKER, STATE, list_checkpoints
from t1.train.distributed import DistInfo, max_count

# each rank's RNG states, one JSON file a rank
RNG = "rng"


def rng_state() -> dict[str, Any]:
    """This process's RNG states as JSON-ready lists (exact: ints and repr-exact floats)."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(mt), gauss],
        "numpy": [name, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
        "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()]
        if torch.cuda.is_available()
        else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def write_json(path: Path, value: Any) -> None:
    """JSON, fsynced (a checkpoint's file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())


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


def _together(work: Callable[[], None], info: DistInfo, what: str) -> None:
    """Run `work` here; raise on every rank if it failed on any (no rank is left waiting)."""
    error: BaseException | None = None
    try:
        work()
    except Exception as e:  # a failure is shared below, then re-raised
        error = e
    if max_count(int(error is not None), info) and error is None:
        raise T1Error(f"{what} failed on another rank")
    if error is not None:
        raise error


def save_checkpoint(
    ckpt_root: str | Path,
    step: int,
    state: dict[str, Any],
    tensors: dict[str, dict[str, torch.Tensor]],
    model_config: Any = None,
    tokenizer: Any = None,
    info: DistInfo | None = None,
    keep_last: int = 0,
) -> Path:
    """Write `step-N` atomically; every rank calls it; returns its path.

    `state`: JSON-ready values (rank 0's are written); `tensors`: folder name -> tensors for
    `t1.models.dcp.save_tensors` (each rank passes its slices); `model_config`, `tokenizer`:
    saved beside them so the folder names its model.
    """
    info = info or DistInfo()
    root = Path(ckpt_root)
    final, tmp = root / f"step-{step}", root / f".step-{step}.tmp"

    def start() -> None:
        if not info.main:
            return
        root.mkdir(parents=True, exist_ok=True)
        for stale in [*root.glob(".step-*.tmp"), *root.glob(".step-*.old")]:
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()

    def shards() -> None:
        for name, values in tensors.items():
            save_tensors(tmp / name, values)
        write_json(tmp / RNG / f"rank-{info.rank:05d}.json", rng_state())

    def finish() -> None:
        if not info.main:
            return
        if model_config is not None:
            model_config.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        write_json(tmp / STATE, {**state, "world_size": info.world})
        (tmp / MARKER).write_text(str(step))
        _fsync_tree(tmp)
        old = root / f".step-{step}.old"
        if final.exists():  # re-saving a step: move it aside first, never half-delete it
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(root)
        shutil.rmtree(old, ignore_errors=True)
        if keep_last > 0:
            for stale in list_checkpoints(root)[:-keep_last]:
                shutil.rmtree(stale, ignore_errors=True)

    try:
        _together(start, info, f"creating {tmp}")
        _together(shards, info, f"writing checkpoint step-{step}")
        _together(finish, info, f"completing checkpoint step-{step}")
    except BaseException:
        if info.main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load_state(ckpt: str | Path) -> dict[str, Any]:
    """The JSON trainer state of a checkpoint (no pickle anywhere)."""
    path = Path(ckpt) / STATE
    if not path.is_file() and (Path(ckpt) / "trainer_state.pt").is_file():
        raise T1Error(
            f"{ckpt} was written by an older t1 (a pickled trainer_state.pt, not loaded for "
            "safety): its weights load as a model (model.path), but it cannot be resumed"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_rng(ckpt: str | Path, info: DistInfo) -> None:
    """This rank's saved RNG states (with another world size: rank R takes rank R mod N's, and
    rank 0 says that the run goes on as one of this size, not bitwise as the saved one)."""
    files = sorted((Path(ckpt) / RNG).glob("rank-*.json"))
    if files and len(files) != info.world and info.main:
        print(
            f"t1: {ckpt} was written by {len(files)} processes and resumes on {info.world}: "
            "weights and optimizer states are resharded; the data split over ranks changes",
            file=sys.stderr,
        )
    if not files:
        raise T1Error(f"{ckpt}: no RNG states ({RNG}/rank-*.json)")
    set_rng_state(json.loads(files[info.rank % len(files)].read_text(encoding="utf-8")))
