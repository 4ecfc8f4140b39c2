"""The run directory: resolved config, metrics.jsonl, TensorBoard events, samples, progress.

Layout (DESIGN.md, "Runs"):
    config.yaml  metrics.jsonl  tb/  samples/step-N.jsonl  checkpoints/step-N/  eval/  plots/
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from t1.config import save_config


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _clean(value: Any) -> Any:
    """JSON-safe scalars: tensors to numbers, NaN/inf to strings JSON can hold."""
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


class MetricLogger:
    """Appends one JSON object per step to metrics.jsonl and mirrors scalars to TensorBoard.

    `resume_step` drops rows written after that step by a run that died before its next
    checkpoint, so a resumed run's file holds each step once.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        if resume_step is not None and self.path.exists():
            keep = [r for r in read_jsonl(self.path) if r.get("step", 0) <= resume_step]
            _atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in keep))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / "tb"))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, int | float) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


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
    _atomic_write(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _atomic_write(path: Path, text: str) -> None:
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
        _atomic_write(path, json.dumps(obj, indent=2, default=_clean) + "\n")
        return path


def is_tty() -> bool:
    return sys.stdout.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")


class Progress:
    """A rich progress bar with key metrics beside it; silent when stdout is not a terminal."""

    def __init__(self, total: int, description: str, enabled: bool = True, completed: int = 0):
        self.enabled = enabled and is_tty()
        self._bar = None
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[metrics]}"),
            )
            self._task = self._bar.add_task(
                description, total=total, completed=completed, metrics=""
            )

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def update(self, advance: int = 1, **metrics: float) -> None:
        if self._bar is None:
            return
        text = "  ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
        )
        self._bar.update(self._task, advance=advance, metrics=text)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
