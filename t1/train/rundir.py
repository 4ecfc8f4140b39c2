"""The metric logger of training runs: metrics.jsonl plus TensorBoard.

The run directory's layout and its shared writers live in t1.runs (every stage uses them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from t1.runs import atomic_write, json_safe, read_jsonl


class MetricLogger:
    """Appends one JSON object per step to metrics.jsonl and mirrors scalars to TensorBoard.

    `resume_step` drops rows written after that step by a run that died before its next
    checkpoint, so a resumed run's file holds each step once.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        if resume_step is not None and self.path.exists():
            keep = [r for r in read_jsonl(self.path) if r.get("step", 0) <= resume_step]
            atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in keep))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / "tb"))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: json_safe(v) for k, v in metrics.items()}}
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
