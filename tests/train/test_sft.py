"""The SFT loop: logging, checkpoints, final model, NaN handling, signals and exact resume."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from t1.config import SFTStage, load_config
from t1.errors import ConfigError, DataError, T1Error
from t1.runs import list_checkpoints, read_jsonl
from t1.train.sft import TIMING_KEYS, train_sft

TINY = [
    "model.tiny.hidden_size=32",
    "model.tiny.num_layers=1",
    "model.tiny.num_heads=2",
    "model.tiny.num_kv_heads=1",
    "model.tiny.intermediate_size=64",
    "model.tiny.max_position=128",
    "sft.max_len=128",
    "sft.batch_size=4",
    "sft.micro_batch_size=4",
    "sft.eval_fraction=0.1",
    "sft.epochs=100",
    "optim.lr=0.01",
    "optim.warmup_steps=2",
    "trainer.report_to=[]",
    "trainer.progress=false",
    "trainer.keep_last=2",
]


def make_traces(n: int = 40, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 30), rng.randint(1, 30)
        wrong = a + b + rng.choice([-2, -1, 1, 2])
        response = f"Try {a}+{b}={wrong}. Wrong.\nTry {a}+{b}={a + b}. Right.\n\\boxed{{{a + b}}}"
        rows.append({"prompt": f"{a}+{b}", "response": response, "answer": str(a + b)})
    return rows


def make_cfg(out: Path, *overrides: str) -> SFTStage:
    return load_config(SFTStage, None, [*TINY, f"trainer.out={out}", *overrides])


def rows_without_timing(run: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in TIMING_KEYS}
        for r in read_jsonl(run / "metrics.jsonl")
    ]


def assert_same_params(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def call_hook(model: torch.nn.Module, on_call: dict[int, object]):
    """Run `on_call[k](output)` on the k-th (1-based) forward of the input embedding."""
    count = {"n": 0}

    def hook(module, args, output):
        count["n"] += 1
        action = on_call.get(count["n"]) or on_call.get("always")
        return action(output) if action else None

    return model.get_input_embeddings().register_forward_hook(hook)


# long enough for a subprocess to be caught mid-run (a step takes ~10-50 ms here)
STEPS = 60
RESUME_SETTINGS = (f"trainer.steps={STEPS}", "trainer.save_every=10", "trainer.keep_last=0")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """An uninterrupted run every resume test compares with."""
    out = tmp_path_factory.mktemp("baseline") / "run"
    model, summary = train_sft(make_cfg(out, *RESUME_SETTINGS), make_traces())
    return out, model, summary


def test_run_logs_checkpoints_and_final_model(baseline):
    from t1.config import ModelConfig
    from t1.models import load_model

    out, model, summary = baseline
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "epoch", "bad_steps"):
        assert all(key in r for r in rows), key
    assert "eval/loss" in rows[-1] and all("eval/loss" not in r for r in rows[:-1])
    # 36 train traces (40 minus 4 held out), 4 a step: 9 steps an epoch
    assert summary["n_train"] == 36 and summary["n_eval"] == 4
    assert rows[2]["epoch"] == pytest.approx(3 / 9)
    assert rows[0]["lr"] == pytest.approx(0.005)  # warm-up: 0.01 * 1/2
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.5  # it learns
    ckpts = [p.name for p in list_checkpoints(out / "checkpoints")]
    assert ckpts == [f"step-{k}" for k in range(10, STEPS + 1, 10)]
    cfg = make_cfg(out).model
    loaded, _ = load_model(ModelConfig(path=str(out / "final"), device=cfg.device))
    assert_same_params(model, loaded)
    assert summary["final"] == str(out / "final") and summary["stopped"] is None
    assert json.loads((out / "summary.json").read_text())["steps"] == STEPS


def test_sigterm_finishes_the_step_saves_exits_0_and_resume_is_exact(
    tmp_path, baseline, monkeypatch, capsys
):
    """`t1 sft` (run_sft) gets SIGTERM during step 5: it saves step 5, prints the resume command
    and returns 0; resuming ends exactly where the uninterrupted run did."""
    from t1.config import ModelConfig
    from t1.models import load_model
    from t1.train import sft

    base_out, base_model, _ = baseline
    out = tmp_path / "run"
    traces = tmp_path / "traces.jsonl"
    traces.write_text("".join(json.dumps(r) + "\n" for r in make_traces()))
    cfg = make_cfg(out, *RESUME_SETTINGS, f"data.train={traces}")
    calls = {"n": 0}
    real_step = sft.train_step

    def step_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            signal.raise_signal(signal.SIGTERM)  # arrives mid-step
        return real_step(*args, **kwargs)

    monkeypatch.setattr(sft, "train_step", step_then_signal)
    assert sft.run_sft(cfg) == 0
    monkeypatch.setattr(sft, "train_step", real_step)
    printed = capsys.readouterr().out
    assert "SIGTERM" in printed and f"trainer.out={out} --resume" in printed
    assert not (out / "final").exists()
    assert list_checkpoints(out / "checkpoints")[-1].name == "step-5"  # saved on the way out
    assert read_jsonl(out / "metrics.jsonl")[-1]["step"] == 5
    assert sft.run_sft(cfg, resume=True) == 0
    final, _ = load_model(ModelConfig(path=str(out / "final")))
    assert_same_params(final, base_model)
    assert rows_without_timing(out) == rows_without_timing(base_out)


def _wait_for_row(run: Path, step: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    path = run / "metrics.jsonl"
    while time.monotonic() < deadline:
        if path.exists() and any(r.get("step", 0) >= step for r in read_jsonl(path)):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.005)
    raise AssertionError(f"no metrics row for step {step} within {timeout} s")


def test_sigkill_mid_run_then_resume_is_exact(tmp_path, baseline):
    """`t1 sft` in a subprocess, killed with SIGKILL two steps after a checkpoint, resumed."""
    from t1.config import save_config

    base_out, base_model, _ = baseline
    out = tmp_path / "run"
    traces = tmp_path / "traces.jsonl"
    traces.write_text("".join(json.dumps(r) + "\n" for r in make_traces()))
    cfg = make_cfg(out, *RESUME_SETTINGS, f"data.train={traces}")
    cfg_path = tmp_path / "sft.yaml"
    save_config(cfg, cfg_path)
    # same thread count as this process, so the floating-point work is the same
    code = (
        f"import sys, torch; torch.set_num_threads({torch.get_num_threads()}); "
        "from t1.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "sft", str(cfg_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_row(out, 12, proc)
    proc.kill()  # SIGKILL: no handler runs, whatever the process was doing
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "final").exists()  # it really died mid-run
    assert read_jsonl(out / "metrics.jsonl")[-1]["step"] >= 12  # rows past the checkpoint

    resumed, summary = train_sft(cfg, resume=True)
    assert summary["steps"] == STEPS
    assert_same_params(resumed, base_model)
    assert rows_without_timing(out) == rows_without_timing(base_out)


def test_nan_step_is_skipped_counted_and_warned(tmp_path):
    from t1.models import load_model

    out = tmp_path / "run"
    cfg = make_cfg(out, "trainer.steps=4", "trainer.save_every=1", "trainer.keep_last=0")
    model, tok = load_model(cfg.model)
    handle = call_hook(model, {4: lambda o: o * float("nan")})  # step 4's only forward
    with pytest.warns(RuntimeWarning, match="step 4: non-finite"):
        trained, summary = train_sft(cfg, make_traces(), model, tok)
    handle.remove()
    rows = read_jsonl(out / "metrics.jsonl")
    assert rows[-1]["loss"] == "nan" and rows[-1]["bad_steps"] == 1 == summary["bad_steps"]
    assert [r["bad_steps"] for r in rows[:3]] == [0, 0, 0]
    # no checkpoint for the bad step; the skipped update left step 3's weights unchanged
    ckpts = list_checkpoints(out / "checkpoints")
    assert [p.name for p in ckpts] == ["step-1", "step-2", "step-3"]
    from t1.config import ModelConfig

    step3, _ = load_model(ModelConfig(path=str(ckpts[-1])))
    assert_same_params(trained, step3)
    assert all(torch.isfinite(p).all() for p in trained.parameters())


def test_consecutive_bad_steps_stop_with_a_clear_error(tmp_path):
    from t1.models import load_model

    out = tmp_path / "run"
    cfg = make_cfg(
        out,
        "trainer.steps=10",
        "trainer.save_every=1",
        "trainer.max_bad_steps=3",
        "trainer.keep_last=0",
    )
    model, tok = load_model(cfg.model)
    handle = call_hook(model, {k: (lambda o: o * float("inf")) for k in range(3, 20)})
    with pytest.warns(RuntimeWarning), pytest.raises(T1Error, match="3 steps in a row") as err:
        train_sft(cfg, make_traces(), model, tok)
    handle.remove()
    assert "step-2" in str(err.value) and "stopped at step 5" in str(err.value)
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == ["step-1", "step-2"]
    assert not (out / "final").exists()


def test_existing_run_needs_resume_and_the_same_data(tmp_path):
    out = tmp_path / "run"
    cfg = make_cfg(out, "trainer.steps=2", "trainer.save_every=1")
    train_sft(cfg, make_traces())
    with pytest.raises(T1Error, match="--resume"):
        train_sft(cfg, make_traces())
    with pytest.raises(T1Error, match="training data differ"):
        train_sft(cfg, make_traces(seed=1), resume=True)


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    cfg = make_cfg(tmp_path / "run", "trainer.steps=2")
    _, summary = train_sft(cfg, make_traces(), resume=True)
    assert summary["steps"] == 2
    assert [r["step"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [1, 2]


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (["sft.eval_fraction=1.0"], ConfigError, "sft.eval_fraction"),
        (["sft.max_len=4096"], ConfigError, "exceeds the model's context"),
        (["sft.max_len=8"], DataError, "none of 40 traces fits"),
        (["sft.batch_size=0"], ConfigError, "sft.batch_size"),
    ],
)
def test_bad_settings_fail_before_training(tmp_path, overrides, error, match):
    with pytest.raises(error, match=match):
        train_sft(make_cfg(tmp_path / "run", *overrides), make_traces())
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_missing_data_train_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="data.train"):
        train_sft(make_cfg(tmp_path / "run"))


def test_cli_reports_a_bad_traces_file(tmp_path, capsys):
    from t1.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "1+1", "response": "2"}\n{"prompt": "oops"\n')
    code = main(["sft", *TINY, f"trainer.out={tmp_path / 'run'}", f"data.train={bad}"])
    assert code == 2
    assert f"{bad}:2" in capsys.readouterr().err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
