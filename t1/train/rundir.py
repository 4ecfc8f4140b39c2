"""The run directory: resolved config, metrics.jsonl and its trackers, samples, progress.

Layout (DESIGN.md, "Runs"):
    config.yaml  metrics.jsonl  tb/  samples/step-N.jsonl  checkpoints/step-N/  eval/  plots/
    wandb-id  wandb/  (with trainer.report_to naming wandb)
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from t1.config import save_config
from t1.train.tracking import make_trackers


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
    """Appends one JSON object per step to metrics.jsonl and mirrors the numeric scalars to the
    trackers `report_to` names (t1.train.tracking: "tensorboard", "wandb"), W&B also receiving
    `config` and the samples/step-N.jsonl rows written since the last logged step.

    `resume_step` drops rows written after that step by a run that died before its next
    checkpoint, so a resumed run's file holds each step once.
    """

    def __init__(
        self,
        run_dir: Path,
        report_to: Sequence[str] = ("tensorboard",),
        resume_step: int | None = None,
        config: Any = None,
    ):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "metrics.jsonl"
        # on resume: the last step the stopped run logged, which its trackers have seen
        sent_through = resume_step
        if resume_step is not None and self.path.exists():
            rows = read_jsonl(self.path)
            sent_through = max([resume_step, *(r.get("step", 0) for r in rows)])
            keep = [r for r in rows if r.get("step", 0) <= resume_step]
            _atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in keep))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._samples_from = (resume_step or 0) + 1
        self._trackers = make_trackers(
            list(report_to), self.run_dir, config, resume_step, sent_through
        )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
        scalars = {
            k: v
            for k, v in row.items()
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
        }
        samples = self._new_samples(step) if any(t.wants_samples for t in self._trackers) else []
        for tracker in self._trackers:
            tracker.log(step, scalars, samples)

    def _new_samples(self, step: int) -> list[dict]:
        """Rows of the samples/step-N.jsonl files with N since the last logged step."""
        rows: list[dict] = []
        for n in range(self._samples_from, step + 1):
            path = self.run_dir / "samples" / f"step-{n}.jsonl"
            if path.is_file():
                rows += [{"step": n, **r} for r in read_jsonl(path) if isinstance(r, dict)]
        self._samples_from = step + 1
        return rows

    def close(self) -> None:
        trackers, self._trackers = self._trackers, []
        for tracker in trackers:
            tracker.close()


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
