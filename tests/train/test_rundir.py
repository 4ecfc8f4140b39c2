"""The run-directory writer and atomic checkpoints."""

from __future__ import annotations

import json
import math

import torch

from t1.config import RLStage, load_config
from t1.models.dcp import model_tensors, read_tensors
from t1.runs import RunDir, latest_checkpoint, list_checkpoints, read_jsonl
from t1.train.checkpoint import load_state, save_checkpoint
from t1.train.rundir import MetricLogger


def test_run_dir_writes_config_samples_json(tmp_path):
    run = RunDir(tmp_path / "run")
    cfg = load_config(RLStage, None, ["rl.k=3"])
    run.write_config(cfg)
    assert load_config(RLStage, run.path / "config.yaml").rl.k == 3
    path = run.write_samples(5, [{"prompt": "p", "response": "r", "reward": 1.0}])
    assert path == run.path / "samples" / "step-5.jsonl"
    assert read_jsonl(path) == [{"prompt": "p", "response": "r", "reward": 1.0}]
    run.write_json("eval/x.json", {"acc": torch.tensor(0.5)})
    assert json.loads((run.path / "eval" / "x.json").read_text()) == {"acc": 0.5}


def test_metric_logger_rows_tensorboard_and_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricLogger(tmp_path, report_to=["tensorboard"])
    for step in range(1, 5):
        log.log(step, {"loss": torch.tensor(1.0 / step), "bad": float("nan")})
    log.close()
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert math.isclose(rows[1]["loss"], 0.5) and rows[0]["bad"] == "nan"
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    # a run resumed from step 2 drops the rows a crashed run wrote after its checkpoint, in
    # metrics.jsonl and in TensorBoard (purged events)
    log = MetricLogger(tmp_path, report_to=["tensorboard"], resume_step=2)
    log.log(3, {"loss": 0.25})
    log.log(4, {"loss": 0.125})
    log.close()
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4]
    tb = EventAccumulator(str(tmp_path / "tb"))
    tb.Reload()
    # float32 in the event file: 1, 0.5, 0.25 and 0.125 are exact
    assert [(e.step, e.value) for e in tb.Scalars("loss")] == [
        (1, 1.0),
        (2, 0.5),
        (3, 0.25),
        (4, 0.125),
    ]
    # a fresh (not resumed) run in the same folder starts the file again
    MetricLogger(tmp_path, report_to=[]).log(1, {"loss": 9.0})
    assert read_jsonl(tmp_path / "metrics.jsonl") == [{"step": 1, "loss": 9.0}]


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "lo')
    assert read_jsonl(path) == [{"step": 1}]


def _save(root, step, model, tokenizer, state, keep_last=0):
    tensors = {"model": model_tensors(model)}
    return save_checkpoint(root, step, state, tensors, model.config, tokenizer, keep_last=keep_last)


def test_checkpoints_are_atomic_pruned_and_pickle_free(tmp_path, tiny_model, tiny_tokenizer):
    root = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        _save(root, step, tiny_model, tiny_tokenizer, {"step": step}, keep_last=2)
    assert [p.name for p in list_checkpoints(root)] == ["step-2", "step-3"]
    # a half-written checkpoint (no COMPLETE marker, or a leftover .tmp) is never chosen
    (root / "step-9").mkdir()
    (root / ".step-10.tmp").mkdir()
    last = latest_checkpoint(root)
    assert last.name == "step-3"
    assert load_state(last) == {"step": 3, "world_size": 1}
    saved = read_tensors(last / "model")
    weights = tiny_model.state_dict()
    assert saved and all(torch.equal(saved[k], weights[k]) for k in saved)
    assert "lm_head.weight" not in saved  # tied to the embedding: stored once
    # tensors in safetensors, the rest JSON (or the tokenizer's text files): nothing pickled
    files = [p for p in last.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= {".safetensors", ".json", ".jinja", ".txt", ""}
    assert not [p for p in files if p.suffix in (".pt", ".bin", ".pkl", ".pth")]


def test_failed_save_leaves_previous_checkpoint(tmp_path, tiny_model, tiny_tokenizer, monkeypatch):
    from t1.train import checkpoint

    root = tmp_path / "checkpoints"
    _save(root, 1, tiny_model, tiny_tokenizer, {"step": 1})

    def full(path, value):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "write_json", full)
    try:
        _save(root, 2, tiny_model, tiny_tokenizer, {"step": 2})
    except OSError as e:
        assert e.errno == 28
    else:
        raise AssertionError("the failing save should raise")
    assert [p.name for p in list_checkpoints(root)] == ["step-1"]
    assert not list(root.glob(".step-*.tmp"))
    assert load_state(root / "step-1")["step"] == 1
