"""Run directories, below every stage: the folder layout, atomic writers, checkpoint discovery.

Layout (DESIGN.md, "Runs"):
    config.yaml  metrics.jsonl  tb/  samples/step-N.jsonl  checkpoints/step-N/  eval/  plots/

Training writes checkpoints (t1.train.checkpoint); loading a model from a run directory
(t1.models), evaluating (t1.eval) and synthesising data (t1.data) only need to find them and to
write their own files, so those parts live here and no lower package imports t1.train.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any

from t1.config import save_config

# a checkpoint folder is complete when this marker exists (written last, see t1.train.checkpoint)
MARKER = "COMPLETE"
# the trainer state inside a checkpoint folder (JSON: counters, scheduler, data position)
STATE = "trainer_state.json"


def seed_everything(seed: int) -> None:
    # numpy and torch are imported here so that t1.data (which writes through this module)
    # stays importable without them
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def json_safe(value: Any) -> Any:
    """JSON-safe scalars: tensors to numbers, NaN/inf to strings JSON can hold.

    Tensors and numpy scalars are recognised by their methods, so torch stays unimported here.
    """
    if hasattr(value, "numel") and hasattr(value, "tolist"):  # a torch tensor
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy scalar
        return value.item()
    return value


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file this project wrote (a torn last line from a crash is skipped)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    atomic_write(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunDir:
    """A run's folder and the writers every stage shares."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def sub(self, name: str) -> Path:
        p = self.path / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def write_config(self, cfg: Any) -> None:
        save_config(cfg, self.path / "config.yaml")

    def write_samples(self, step: int, rows: list[dict]) -> Path:
        path = self.sub("samples") / f"step-{step}.jsonl"
        write_jsonl(path, rows)
        return path

    def write_json(self, relpath: str, obj: Any) -> Path:
        path = self.path / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(obj, indent=2, default=json_safe) + "\n")
        return path


def list_checkpoints(ckpt_root: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = []
    for p in root.glob("step-*"):
        suffix = p.name.removeprefix("step-")
        if suffix.isdigit() and (p / MARKER).is_file() and (p / STATE).is_file():
            found.append((int(suffix), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(ckpt_root: str | Path) -> Path | None:
    ckpts = list_checkpoints(ckpt_root)
    return ckpts[-1] if ckpts else None
