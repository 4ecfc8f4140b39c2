"""RL runs that survive crashes, interrupts and bad input without losing work (issue 12).

Subprocesses run the real CLI (`python -m t1 rl CONFIG`) with PYTHONPATH=tests/train, so the
config's `reward.task="rl_faults:..."` verifiers import there; rl_faults.py also arms the
SIGKILL-inside-a-checkpoint fault. Everything else runs in this process.
"""

from __future__ import annotations

import errno
import json
import math
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import rl_faults  # noqa: E402
from rl_faults import write_config, write_problems  # noqa: E402

from t1.cli import main  # noqa: E402
from t1.config import RLStage, load_config  # noqa: E402
from t1.errors import ConfigError, T1Error  # noqa: E402
from t1.models import build_char_tokenizer, build_tiny_model  # noqa: E402
from t1.models.dcp import read_tensors  # noqa: E402
from t1.runs import MARKER, latest_checkpoint, list_checkpoints, read_jsonl  # noqa: E402
from t1.train import rl as rl_module  # noqa: E402
from t1.train.checkpoint import load_state  # noqa: E402
from t1.train.rl import RLTrainer, check_rl_config  # noqa: E402
from t1.train.rl_run import run_rl  # noqa: E402
from t1.train.rl_state import TIMING_KEYS  # noqa: E402


def trainer_from(config: Path, *overrides: str) -> RLTrainer:
    """An RLTrainer (real HF engine) on the config's tiny model and prompts, in this process."""
    from t1.data.problems import load_problems

    cfg = load_config(RLStage, str(config), list(overrides))
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    model = build_tiny_model(tok, cfg.model.tiny, seed=cfg.model.seed)
    return RLTrainer(cfg, model, tok, load_problems(cfg.data.train))


def learning_rows(run: Path) -> list[dict]:
    """metrics.jsonl without the timing keys, which differ between any two runs."""
    rows = read_jsonl(run / "metrics.jsonl")
    return [{k: v for k, v in r.items() if not k.startswith(TIMING_KEYS)} for r in rows]


# ---------------------------------------------------------------------------- crash-exact resume


def _cli(run_args: list[str], log: Path, **env: str) -> subprocess.Popen:
    # this process's thread count: the uninterrupted twin runs here and is compared bitwise
    threads = str(torch.get_num_threads())
    full_env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONPATH": str(HERE), **env}
    with open(log, "w") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "t1", *run_args],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=full_env,
        )


def _wait_for_step(proc: subprocess.Popen, run: Path, step: int, timeout: float = 240) -> None:
    """Until metrics.jsonl holds a row for `step` (or the process ends)."""
    deadline = time.monotonic() + timeout
    metrics = run / "metrics.jsonl"
    while proc.poll() is None and time.monotonic() < deadline:
        if metrics.exists() and any(r.get("step") == step for r in read_jsonl(metrics)):
            return
        time.sleep(0.005)


def test_killed_and_stopped_run_resumes_exactly(tmp_path):
    """SIGTERM, SIGKILL inside a checkpoint write, SIGKILL at a random moment, resume: the run
    ends with the parameters and metrics rows of an uninterrupted run, bitwise."""
    steps = 8
    config = write_config(tmp_path, trainer={"steps": steps, "keep_last": 2})
    ref, run = tmp_path / "ref", tmp_path / "run"
    cli = ["rl", str(config), f"trainer.out={run}"]

    # 1. SIGTERM once the first step is logged: it stops after a step, saves, exits 0
    p = _cli(cli, tmp_path / "1.log")
    _wait_for_step(p, run, 1)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=240) == 0, (tmp_path / "1.log").read_text()
    out = (tmp_path / "1.log").read_text()
    stopped = latest_checkpoint(run / "checkpoints")
    assert "SIGTERM: stopped at step" in out and stopped is not None
    stop_step = int(stopped.name.removeprefix("step-"))
    assert stop_step < steps and not (run / "final").exists()
    printed = shlex.split(out.split("resume with:")[1].strip().splitlines()[0])
    assert printed[0] == "t1" and printed[-1] == "--resume"

    # 2. the printed command, killed (SIGKILL) while it writes checkpoint stop_step + 2:
    # weights written, no trainer state, no COMPLETE marker, not renamed; it is never chosen
    torn = stop_step + 2
    p = _cli(printed[1:], tmp_path / "2.log", **{rl_faults.KILL_IN_SAVE: str(torn)})
    assert p.wait(timeout=240) == -signal.SIGKILL, (tmp_path / "2.log").read_text()
    tmp_dir = run / "checkpoints" / f".step-{torn}.tmp"
    assert (tmp_dir / "model").is_dir() and not (tmp_dir / MARKER).exists()
    assert latest_checkpoint(run / "checkpoints").name == f"step-{torn - 1}"
    assert max(r["step"] for r in read_jsonl(run / "metrics.jsonl")) == torn  # logged, not saved

    # 3. resumed, then SIGKILL at a random moment once it has logged a step the killed run
    # had not (rows after the resume point are dropped first, so row `torn` may be stale)
    p = _cli([*cli, "--resume"], tmp_path / "3.log")
    _wait_for_step(p, run, torn + 1)
    delay = random.uniform(0.0, 0.4)
    time.sleep(delay)
    p.kill()
    rc = p.wait(timeout=240)
    print(f"random kill after {delay:.3f} s: rc {rc}, {latest_checkpoint(run / 'checkpoints')}")

    # 4. resumed to the end (a no-op resume when the random kill came after the last step);
    # meanwhile the uninterrupted twin runs in this process (same seed, same thread count as
    # the subprocesses: bitwise equality needs the same floating-point work)
    p = _cli([*cli, "--resume"], tmp_path / "4.log")
    assert run_rl(load_config(RLStage, str(config), [f"trainer.out={ref}"])) == 0
    assert p.wait(timeout=240) == 0, (tmp_path / "4.log").read_text()
    assert not list((run / "checkpoints").glob(".step-*"))  # the torn folder was cleaned up

    assert [r["step"] for r in learning_rows(run)] == list(range(1, steps + 1))
    assert learning_rows(run) == learning_rows(ref)
    a, b = (load_file(str(x / "final" / "model.safetensors")) for x in (ref, run))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    last = f"checkpoints/step-{steps}"
    for part in ("model", "optimizer", "anchor"):
        a, b = (read_tensors(x / last / part) for x in (ref, run))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    sa, sb = (load_state(x / last) for x in (ref, run))
    assert sa["order"] == sb["order"] and sa["scheduler"] == sb["scheduler"]


# ---------------------------------------------------------------------------- signals


def test_sigint_saves_and_prints_the_resume_command(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, trainer={"steps": 5})
    real_step = RLTrainer.train_step

    def step_then_interrupt(self: RLTrainer) -> dict:
        metrics = real_step(self)
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does, mid-run
        return metrics

    monkeypatch.setattr(RLTrainer, "train_step", step_then_interrupt)
    assert main(["rl", str(config)]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "run"
    assert "SIGINT: stopped at step 2 of 5" in out
    command = shlex.split(out.split("resume with:")[1].strip().splitlines()[0])
    assert command == ["t1", "rl", f"{run}/config.yaml", f"trainer.out={run}", "--resume"]
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step-1", "step-2"]
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2]
    assert not (run / "final").exists()


# ---------------------------------------------------------------------------- NaN / inf


def test_nan_gradients_are_skipped_counted_then_fatal(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, trainer={"steps": 6, "max_bad_steps": 2})
    real = rl_module.accumulate_gradients
    seen: dict = {}

    def poisoned(model, *args, **kwargs):
        stats = real(model, *args, **kwargs)
        seen["model"] = model
        if trainer_step[0] in (2, 4, 5):
            next(model.parameters()).grad[0, 0] = float("nan")
        return stats

    trainer_step = [0]
    real_step = RLTrainer.train_step

    def counting_step(self: RLTrainer) -> dict:
        trainer_step[0] = self.step + 1
        return real_step(self)

    monkeypatch.setattr(rl_module, "accumulate_gradients", poisoned)
    monkeypatch.setattr(RLTrainer, "train_step", counting_step)
    assert main(["rl", str(config)]) == 1  # T1Error: a one-line error, exit code 1
    err = capsys.readouterr().err
    run = tmp_path / "run"
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("t1 rl: error: 2 consecutive steps with a non-finite")
    assert f"last good checkpoint: {run / 'checkpoints' / 'step-3'}" in last_line
    assert err.count("update skipped") == 3
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # step 5 raised before it was logged
    assert [r["bad_steps"] for r in rows] == [0, 1, 1, 2]
    assert [math.isnan(float(r["grad_norm"])) for r in rows] == [False, True, False, True]
    # a step in a bad streak writes no checkpoint: the newest one is the last good one
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step-1", "step-3"]
    saved = read_tensors(run / "checkpoints" / "step-3" / "model")
    now = seen["model"].state_dict()
    assert all(torch.equal(saved[k], now[k]) for k in saved)  # skipped steps changed nothing
    assert load_state(run / "checkpoints" / "step-3")["updates"] == 2


def test_nan_reward_is_scored_as_a_failure(tmp_path, monkeypatch):
    import t1.rewards.reward as reward_module

    real = reward_module.score_batch

    def nan_scores(*args, **kwargs):
        results = real(*args, **kwargs)
        results[0].score, results[1].score = float("nan"), float("inf")
        return results

    monkeypatch.setattr(reward_module, "score_batch", nan_scores)
    trainer = trainer_from(write_config(tmp_path), "reward.failure_reward=-0.5")
    m = trainer.train_step()
    n = 4 * 2  # K x prompts_per_step
    assert m["reward/failures"] == 2.0 and m["penalty/failure"] == pytest.approx(2 / n)
    assert math.isfinite(m["reward/mean"]) and math.isfinite(m["grad_norm"])
    assert m["bad_steps"] == 0 and trainer.updates == 1


# ---------------------------------------------------------------------------- verifiers


def test_verifier_that_raises_or_hangs_scores_failure_and_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(rl_faults.Flaky, "hang_s", 5.0)  # cut to 1.1 s by the soft limit
    config = write_config(
        tmp_path,
        trainer={"steps": 2, "sample_every": 1},
        reward={"task": "rl_faults:flaky", "timeout_s": 0.1, "failure_reward": -0.5},
    )
    assert run_rl(load_config(RLStage, str(config))) == 0
    run = tmp_path / "run"
    rows = read_jsonl(run / "metrics.jsonl")
    n = 4 * 2
    assert [r["reward/failures"] for r in rows] == [2.0, 2.0]  # one hang + one raise per step
    assert [r["reward/timeout"] for r in rows] == [1 / n, 1 / n]  # the hang was cut short
    samples = read_jsonl(run / "samples" / "step-2.jsonl")
    assert sorted(s["reward"] for s in samples if s["penalty"] == "failure") == [-0.5, -0.5]
    assert (run / "final" / "model.safetensors").is_file()


# ---------------------------------------------------------------------------- bad data


def test_bad_data_row_stops_before_training(tmp_path, capsys):
    config = write_config(tmp_path)
    write_problems(tmp_path / "train.jsonl", bad_line='{"prompt": "q", "answer": ')
    assert main(["rl", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{tmp_path / 'train.jsonl'}:2: invalid JSON" in err
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_skip_bad_rows_trains_and_reports_the_count(tmp_path, capsys):
    config = write_config(tmp_path, data={"skip_bad_rows": True}, trainer={"steps": 1})
    write_problems(tmp_path / "train.jsonl", bad_line='{"prompt": "", "answer": "1"}')
    assert main(["rl", str(config)]) == 0
    assert "data.train: skipped 1 bad rows" in capsys.readouterr().err
    report = json.loads((tmp_path / "run" / "data.json").read_text())
    assert report["train"]["rows"] == 8 and report["train"]["skipped"] == 1
    assert ":2: 'prompt' is empty" in report["train"]["errors"][0]
    assert (tmp_path / "run" / "checkpoints" / "step-1" / MARKER).is_file()


# ---------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("rl.train_k=5", "rl.train_k=5 must be between 1 and rl.k=4"),
        ("trainer.max_bad_steps=0", "trainer.max_bad_steps=0 must be >= 1"),
        ("rl.micro_batch_size=0", "rl.micro_batch_size=0 must be >= 1"),
        ("reward.wrong_reward=.nan", "reward.wrong_reward=nan must be a finite number"),
        ("sampling.top_p=1.5", "sampling.top_p must be in (0, 1]"),
    ],
)
def test_inconsistent_config_is_rejected(tmp_path, override, needle):
    cfg = load_config(RLStage, str(write_config(tmp_path)), [override])
    with pytest.raises(ConfigError) as err:
        check_rl_config(cfg)
    assert needle in str(err.value)


def test_budget_beyond_the_context_fails_before_curation(tmp_path, capsys):
    # context 64: 60 new tokens fit after "q1" (4 tokens with the tiny chat template), not
    # after "q10" (5)
    config = write_config(
        tmp_path,
        sampling={"max_new_tokens": 60},
        rl={"curate": {"enabled": True, "n": 2}},
        data={"train": str(write_problems(tmp_path / "long.jsonl", n=12))},
    )
    assert main(["rl", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("t1 rl: error: problem 'p10' has a ")
    assert (
        "5-token prompt: with sampling.max_new_tokens=60" in err
        and "context of 64 positions" in err
    )
    assert not (tmp_path / "run" / "curated.jsonl").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()


# ---------------------------------------------------------------------------- full disk


@pytest.mark.parametrize("where", ["trainer state", "weights"])
def test_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch, where):
    trainer = trainer_from(write_config(tmp_path))
    trainer.train_step()
    trainer.save()
    step1 = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train_step()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    from t1.train import checkpoint

    monkeypatch.setattr(checkpoint, "save_tensors" if where == "weights" else "write_json", full)
    root = tmp_path / "run" / "checkpoints"
    with pytest.raises(T1Error) as err:
        trainer.save()
    assert "could not write checkpoint step-2" in str(err.value)
    assert "No space left on device" in str(err.value)
    assert f"{root / 'step-1'} is intact" in str(err.value)
    monkeypatch.undo()
    assert sorted(p.name for p in root.iterdir()) == ["step-1"]  # the torn .tmp is gone
    saved = read_tensors(root / "step-1" / "model")
    assert all(torch.equal(saved[k], step1[k]) for k in saved)
    assert load_state(root / "step-1")["step"] == 1


def test_full_disk_while_logging_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from t1.train.rundir import MetricLogger

    real_log = MetricLogger.log

    def log(self: MetricLogger, step: int, metrics: dict) -> None:
        if step == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        real_log(self, step, metrics)

    monkeypatch.setattr(MetricLogger, "log", log)
    assert main(["rl", str(write_config(tmp_path))]) == 1
    err = capsys.readouterr().err.strip()
    root = tmp_path / "run" / "checkpoints"
    assert err.startswith("t1 rl: error: disk full at step 2 ([Errno 28] No space left")
    assert err.endswith(f"{root / 'step-1'} is intact")
    assert [p.name for p in list_checkpoints(root)] == ["step-1"]
