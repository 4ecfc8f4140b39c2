"""`benchmarks/demo_seeds.py`: the command of each run and the arithmetic of its table."""

from __future__ import annotations

import json
import subprocess

import pytest


@pytest.fixture(scope="module")
def seeds(benchmark_script):
    return benchmark_script("demo_seeds")


def test_a_run_reuses_the_sft_stage_of_the_same_seed_and_thread_count(seeds, tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, env, **kwargs):
        calls.append((cmd, env["OMP_NUM_THREADS"]))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(seeds.subprocess, "run", fake_run)
    out, before = tmp_path / "new", tmp_path / "before"
    seeds.launch(out, 4, 1, ["rl_steps=150"], before)
    seeds.launch(out, 3, 2, [], None)
    (cmd, threads), (plain, plain_threads) = calls
    assert threads == "1" and plain_threads == "2"
    assert cmd[cmd.index("--out") + 1] == str(out / "s4-t1")
    assert cmd[cmd.index("--seed") + 1] == "4"
    assert cmd[cmd.index("--sft-from") + 1] == str(before / "s4-t1")
    assert "rl_steps=150" in cmd
    assert "--sft-from" not in plain
    # a finished run is not run again
    (out / "s4-t1" / "headline.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "s4-t1" / "headline.json").write_text("{}")
    seeds.launch(out, 4, 1, [], before)
    assert len(calls) == 2


def test_read_computes_the_headline_numbers(seeds, tmp_path):
    run = tmp_path / "s0-t1"
    (run / "eval").mkdir(parents=True)
    acc = {"sft": (0.40, 0.37, 0.43), "rl": (0.50, 0.47, 0.53)}
    for name, (mean, lo, hi) in acc.items():
        (run / "eval" / f"{name}.json").write_text(
            json.dumps({"accuracy": {"mean": mean, "lo": lo, "hi": hi}})
        )
    seq = [{"budget": 8, "accuracy": 0.01}, {"budget": 200, "accuracy": 0.5}]
    par = [{"k": 2, "budget": 200, "accuracy": 0.45}, {"k": 4, "budget": 200, "accuracy": 0.1}]
    scale = {"models": [{"model": "RL", "sequential": seq, "parallel": par}]}
    (run / "eval" / "scale.json").write_text(json.dumps(scale))
    (run / "headline.json").write_text(json.dumps({"minutes": 12.5}))
    r = seeds.read(run)
    # standard error of the difference from the two 95 % intervals (half-width 0.03 each):
    # sqrt(0.06^2 + 0.06^2) / 3.92 = 0.021646; 0.10 / 0.021646 = 4.62
    assert r["diff"] == pytest.approx(0.10)
    assert r["se_ratio"] == pytest.approx(4.6198, abs=1e-3)
    assert r["gain"] == pytest.approx(0.49)
    assert (r["maj2"], r["maj4"], r["minutes"]) == (0.45, 0.1, 12.5)
