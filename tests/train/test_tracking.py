"""Trackers beside metrics.jsonl: W&B in offline mode (step metrics, config, samples tables,
resume), and the checks that run before any work."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from rl_faults import write_config  # noqa: E402
from test_sft import make_cfg, make_traces  # noqa: E402
from wandb_offline import offline_runs  # noqa: E402

from t1.cli import main  # noqa: E402
from t1.config import RLStage, load_config  # noqa: E402
from t1.errors import ConfigError  # noqa: E402
from t1.runs import RunDir, read_jsonl  # noqa: E402
from t1.train.rundir import MetricLogger  # noqa: E402
from t1.train.sft import train_sft  # noqa: E402
from t1.train.tracking import WANDB_ID_FILE, check_trackers  # noqa: E402


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """W&B in offline mode, every file it writes under tmp_path; skipped without wandb."""
    pytest.importorskip("wandb", reason="wandb not installed (pip install 't1-rl[wandb]')")
    for var in ("WANDB_PROJECT", "WANDB_NAME", "WANDB_DIR", "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    for var in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / var.lower()))


def numeric(row: dict) -> dict:
    """The scalars a tracker receives from a metrics.jsonl row."""
    return {
        k: v
        for k, v in row.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
    }


def logged(history_row: dict) -> dict:
    """A W&B history row without W&B's own keys (_step, _runtime, ...) and tables."""
    return {k: v for k, v in history_row.items() if not k.startswith("_") and k != "samples"}


def test_rl_run_reports_step_metrics_config_and_samples_to_wandb(wandb_offline, tmp_path):
    config = write_config(
        tmp_path, trainer={"report_to": ["tensorboard", "wandb"], "sample_every": 2}
    )
    assert main(["rl", str(config)]) == 0
    run = tmp_path / "run"
    (wb,) = offline_runs(run)  # W&B's files under the run directory when WANDB_DIR is unset
    assert wb.run_id == (run / WANDB_ID_FILE).read_text().strip()
    assert (wb.project, wb.name) == ("t1", "run")
    rows = read_jsonl(run / "metrics.jsonl")
    assert sorted(wb.history) == [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        # the same numbers as metrics.jsonl: JSON floats round-trip exactly both ways
        assert logged(wb.history[row["step"]]) == numeric(row)
    assert wb.config["rl"]["k"] == 4
    assert wb.config["trainer"]["report_to"] == ["tensorboard", "wandb"]
    # samples/step-2.jsonl as a table at step 2 (k=4 x 2 prompts), and no other table
    table = wb.table(2, "samples")
    written = read_jsonl(run / "samples" / "step-2.jsonl")
    assert len(table["data"]) == len(written) == 8
    assert table["columns"] == ["step", *written[0]]
    assert [dict(zip(table["columns"], r)) for r in table["data"]] == [
        {"step": 2, **r} for r in written
    ]
    assert [s for s, h in wb.history.items() if "samples" in h] == [2]
    assert list((run / "tb").glob("events.out.tfevents.*"))


def test_resumed_run_continues_the_wandb_run_without_double_logging(
    wandb_offline, tmp_path, monkeypatch
):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_PROJECT", "t1-test")
    run = RunDir(tmp_path / "run")
    cfg = load_config(RLStage, None, ["rl.k=3"])
    sample = {"prompt": "p", "response": "r", "reward": 1.0, "penalty": None, "meta": {"a": [1]}}
    log = MetricLogger(run.path, ["wandb"], config=cfg)
    for step in (1, 2, 3):
        if step == 2:
            run.write_samples(2, [sample])
        log.log(step, {"loss": 1.0 / step, "ok": True, "note": "text"})
    log.close()
    # the run died after step 3; its last checkpoint is step 2: the resumed run logs 3 again
    log = MetricLogger(run.path, ["wandb"], resume_step=2, config=cfg)
    run.write_samples(4, [sample])
    for step in (3, 4):
        log.log(step, {"loss": 10.0 + step})
    log.close()
    assert not (run.path / "wandb").exists()  # WANDB_DIR is honoured
    first, second = offline_runs(tmp_path / "wb")
    assert first.run_id == second.run_id == (run.path / WANDB_ID_FILE).read_text().strip()
    assert first.project == second.project == "t1-test"
    # 1/3 is sent as the double nearest 1/3 and read back as the same double (JSON round trip)
    assert {s: logged(h) for s, h in first.history.items()} == {
        1: {"loss": 1.0},
        2: {"loss": 0.5},
        3: {"loss": 1 / 3},
    }
    assert {s: logged(h) for s, h in second.history.items()} == {4: {"loss": 14.0}}
    assert [r["loss"] for r in read_jsonl(run.path / "metrics.jsonl")] == [1.0, 0.5, 13.0, 14.0]
    assert first.config["rl"]["k"] == second.config["rl"]["k"] == 3
    # one table per samples file; nested values as JSON text
    for wb, step in ((first, 2), (second, 4)):
        table = wb.table(step, "samples")
        assert table["columns"] == ["step", "prompt", "response", "reward", "penalty", "meta"]
        assert table["data"] == [[step, "p", "r", 1.0, None, json.dumps({"a": [1]})]]


def test_sft_run_reports_to_wandb(wandb_offline, tmp_path):
    cfg = make_cfg(tmp_path / "sft", "trainer.steps=3", "trainer.report_to=[wandb]")
    train_sft(cfg, make_traces())
    (wb,) = offline_runs(tmp_path / "sft")
    rows = read_jsonl(tmp_path / "sft" / "metrics.jsonl")
    assert sorted(wb.history) == [1, 2, 3]
    for row in rows:
        assert logged(wb.history[row["step"]]) == numeric(row)
        assert math.isfinite(row["loss"])
    assert wb.config["sft"]["batch_size"] == cfg.sft.batch_size
    assert not (tmp_path / "sft" / "tb").exists()  # TensorBoard not named


def test_missing_wandb_is_a_config_error_before_any_work(tmp_path, monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "wandb" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match=r"pip install 't1-rl\[wandb\]'"):
        check_trackers(["tensorboard", "wandb"])
    check_trackers(["tensorboard"])
    with pytest.raises(ConfigError, match="unknown tracker 'mlflow'"):
        check_trackers(["mlflow"])
    config = write_config(tmp_path, trainer={"report_to": ["wandb"]})
    assert main(["rl", str(config)]) == 2
    assert not (tmp_path / "run").exists()
