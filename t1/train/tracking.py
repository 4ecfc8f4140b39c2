"""Experiment trackers that mirror metrics.jsonl: TensorBoard and Weights & Biases.

`trainer.report_to` names them. Each receives the numeric scalars of every logged step;
W&B also receives the resolved config and each samples/step-N.jsonl as a table (`samples`, one
row per response, with its step).

TensorBoard writes RUN/tb/. On resume it purges the events a killed run wrote after the
checkpoint (`purge_step`), so each step is shown once.

W&B (extra `wandb`, imported only when named) honours its own environment variables
(WANDB_PROJECT, WANDB_ENTITY, WANDB_NAME, WANDB_MODE, WANDB_DIR, WANDB_RUN_GROUP, WANDB_TAGS, ...);
where they are unset the project is "t1", the run is named after the run directory and W&B's
files go to RUN/wandb/. The run's id is kept in RUN/wandb-id and a resumed run continues that
W&B run. W&B's history only grows (a logged step cannot be replaced), so the steps a killed run
had already sent are not sent again: W&B keeps their first copy, whose learning metrics match the
resumed run's where resume is exact (t1.train.rl_state says where); timings differ. With
WANDB_MODE=offline every start writes its own RUN/wandb/offline-run-*-ID folder under the one
id; `wandb sync` uploads them later.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Protocol

from t1.errors import ConfigError, T1Error

TRACKERS = ("tensorboard", "wandb")
WANDB_ID_FILE = "wandb-id"
SAMPLES_KEY = "samples"


class Tracker(Protocol):
    # whether `log` wants the sample rows written since the last logged step
    wants_samples: bool

    def log(self, step: int, scalars: dict[str, float], samples: list[dict]) -> None: ...

    def close(self) -> None: ...


class TensorBoardTracker:
    """Scalars to RUN/tb/ (events after `resume_step` purged on resume)."""

    wants_samples = False

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        # tensorboard is a dependency, but importing it costs about a second: only when used
        from torch.utils.tensorboard import SummaryWriter

        purge = None if resume_step is None else resume_step + 1
        self._writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge)

    def log(self, step: int, scalars: dict[str, float], samples: list[dict]) -> None:
        for key, value in scalars.items():
            self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()


WANDB_MISSING = (
    "trainer.report_to names 'wandb' but the wandb package is not installed "
    "(pip install 't1-rl[wandb]')"
)


def check_trackers(report_to: list[str]) -> None:
    """Before any work: every tracker named is known and installed (nothing is imported)."""
    unknown = sorted(set(report_to) - set(TRACKERS))
    if unknown:
        raise ConfigError(
            f"trainer.report_to: unknown tracker {unknown[0]!r} (expected any of {TRACKERS})"
        )
    if "wandb" in report_to and importlib.util.find_spec("wandb") is None:
        raise ConfigError(WANDB_MISSING)


def _import_wandb() -> Any:
    try:
        import wandb  # optional extra: only runs that report to W&B need it
    except ImportError:
        raise ConfigError(WANDB_MISSING) from None
    return wandb


def _cell(value: Any) -> Any:
    """A table cell: scalars as they are, lists and mappings as JSON text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, ensure_ascii=False)


class WandbTracker:
    """Scalars, the config and the samples tables to one W&B run, continued on resume.

    `sent_through`: on resume, the last step the stopped run logged (the last row of its
    metrics.jsonl before the rows after the checkpoint were dropped); steps up to it are in the
    W&B run kept in RUN/wandb-id already. None: a fresh run.
    """

    wants_samples = True

    def __init__(self, run_dir: Path, config: Any = None, sent_through: int | None = None):
        wandb = _import_wandb()
        self.run_dir = run_dir
        id_file = run_dir / WANDB_ID_FILE
        resumed = sent_through is not None and id_file.is_file()
        run_id = id_file.read_text(encoding="utf-8").strip() if resumed else None
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            config = dataclasses.asdict(config)
        # W&B reads its environment once per process; reading it here also honours a variable
        # set after an earlier run of the same process
        env = os.environ
        try:
            self.run = wandb.init(
                id=run_id or None,  # None: W&B draws one (or takes WANDB_RUN_ID)
                resume="allow" if run_id else None,
                project=env.get("WANDB_PROJECT") or "t1",
                name=env.get("WANDB_NAME") or run_dir.resolve().name,
                dir=env.get("WANDB_DIR") or str(run_dir),
                config=config,
            )
        except wandb.errors.Error as e:
            raise T1Error(
                f"W&B could not start a run: {e} (with WANDB_MODE=offline it writes the run "
                "under the run directory for `wandb sync` later)"
            ) from e
        id_file.write_text(self.run.id + "\n", encoding="utf-8")
        self._wandb = wandb
        # a new W&B run (no id kept) has none of the earlier steps
        self.sent_through = sent_through if resumed else 0

    def log(self, step: int, scalars: dict[str, float], samples: list[dict]) -> None:
        if step <= self.sent_through:
            return
        data: dict[str, Any] = dict(scalars)
        if samples:
            columns = list(dict.fromkeys(k for r in samples for k in r))
            rows = [[_cell(r.get(c)) for c in columns] for r in samples]
            data[SAMPLES_KEY] = self._wandb.Table(
                columns=columns, data=rows, allow_mixed_types=True
            )
        self.run.log(data, step=step)
        self.sent_through = step

    def close(self) -> None:
        self.run.finish()


def make_trackers(
    report_to: list[str],
    run_dir: Path,
    config: Any = None,
    resume_step: int | None = None,
    sent_through: int | None = None,
) -> list[Tracker]:
    """The trackers `report_to` names (see the module docstring for what each receives)."""
    check_trackers(report_to)
    trackers: list[Tracker] = []
    if "tensorboard" in report_to:
        trackers.append(TensorBoardTracker(run_dir, resume_step))
    if "wandb" in report_to:
        trackers.append(WandbTracker(run_dir, config, sent_through))
    return trackers
