"""The metric logger of training runs: metrics.jsonl and the trackers it feeds (t1.train.tracking).

The run directory's layout and its shared writers live in t1.runs (every stage uses them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from t1.runs import atomic_write, json_safe, read_jsonl
from t1.train.tracking import make_trackers


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
            atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in keep))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._samples_from = (resume_step or 0) + 1
        self._trackers = make_trackers(
            list(report_to), self.run_dir, config, resume_step, sent_through
        )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: json_safe(v) for k, v in metrics.items()}}
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
