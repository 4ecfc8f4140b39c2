"""`t1 demo --quick`: every stage runs and every artefact is written."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from t1.cli import main
from t1.data.problems import load_problems
from t1.data.splits import overlap
from t1.demo import run_demo
from t1.runs import read_jsonl


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("demo") / "demo"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert run_demo(out=str(out), quick=True, seed=0) == 0
    return out, buf.getvalue().strip().splitlines()


def test_quick_demo_writes_every_artefact(quick_demo):
    out, printed = quick_demo
    # the last lines are the headline numbers (accuracies, then each model's scaling lines)
    # and the report's path
    assert any(line.startswith("held-out accuracy") for line in printed[-12:])
    assert printed[-1].endswith("report.html")

    sets = {name: load_problems(out / "data" / f"{name}.jsonl") for name in ("sft", "rl", "test")}
    assert len(sets["test"]) == 100
    for a, b in (("sft", "test"), ("rl", "test"), ("sft", "rl")):
        assert not overlap(sets[a], sets[b])
    traces = read_jsonl(out / "data" / "traces.jsonl")
    assert traces and all("\\boxed{" in t["response"] for t in traces)
    assert any("Wrong." in t["response"] for t in traces)  # real retries in the SFT data

    assert read_jsonl(out / "sft" / "metrics.jsonl")
    assert (out / "sft" / "final" / "config.json").is_file()
    rl_rows = read_jsonl(out / "rl" / "metrics.jsonl")
    assert [r["step"] for r in rl_rows] == [1, 2, 3]
    for key in (
        "reward/mean",
        "reward/accuracy",
        "penalty/truncated",
        "kl",
        "entropy",
        "time/generate",
        "grad_norm",
    ):
        assert key in rl_rows[-1], key
    assert list((out / "rl" / "checkpoints").glob("step-*/COMPLETE"))
    assert (out / "rl" / "final" / "config.json").is_file()

    for name in ("sft", "rl"):
        result = json.loads((out / "eval" / f"{name}.json").read_text())
        acc = result["accuracy"]
        assert 0.0 <= acc["lo"] <= acc["mean"] <= acc["hi"] <= 1.0
    scale = json.loads((out / "eval" / "scale.json").read_text())
    assert [m["model"] for m in scale["models"]] == ["SFT", "RL"]
    assert [p["budget"] for p in scale["models"][0]["sequential"]] == [8, 16, 32, 48]
    # the parallel alternative at equal tokens: majority of k = 2 samples of b / 2 tokens
    assert scale["models"][1]["n"] == 2
    assert [(p["k"], p["per_sample_budget"]) for p in scale["models"][1]["parallel"]] == [
        (2, 4),
        (2, 8),
        (2, 16),
        (2, 24),
    ]
    assert (out / "plots" / "scaling.png").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert "scaling" in html.lower() and "<img" in html
    assert json.loads((out / "headline.json").read_text())["lines"]


def test_headline_standard_errors_come_from_the_intervals():
    from t1.demo import headline

    sft = {"accuracy": {"mean": 0.4, "lo": 0.3, "hi": 0.5}}
    rl = {"accuracy": {"mean": 0.6, "lo": 0.5, "hi": 0.7}}
    # each SE = 0.2 / 3.92 = 0.05102; of the difference: 0.05102 * sqrt(2) = 0.07215;
    # 0.2 / 0.07215 = 2.77
    lines = headline(sft, rl, [])
    assert lines[1] == "RL - SFT = +20.0% (2.8 standard errors)"
    # no spread at all (the quick demo's models score 0 everywhere): no ratio to print
    zero = {"accuracy": {"mean": 0.0, "lo": 0.0, "hi": 0.0}}
    assert headline(zero, zero, [])[1] == "RL - SFT = +0.0% (intervals of zero width)"
    # one run's interval is no guide to the next run's gain: the demo's headline says so, with
    # the spread measured over seeds and thread counts
    spread = {"runs": "3 runs", "rl_minus_sft": (7.5, 11.1, 16.3), "scaling_gain": (38.6, 59, 61)}
    lines = headline(sft, rl, [], spread)
    assert "varies from run to run" in lines[2] and "README" in lines[2]
    assert lines[3] == (
        "  RL - SFT was +7.5 to +16.3 points (median +11.1) and the RL scaling gain +38.6 to "
        "+61.0 (median +59.0)"
    )
    assert len(headline(sft, rl, [])) == 2  # other runs (benchmarks/smollm2_recipe.py): no spread


def test_headline_scaling_lines_show_the_parallel_alternative():
    from t1.demo import headline

    acc = {"accuracy": {"mean": 0.5, "lo": 0.4, "hi": 0.6}}
    seq = [{"budget": 8, "accuracy": 0.1}, {"budget": 200, "accuracy": 0.6}]
    par = [
        {"k": 2, "budget": 200, "per_sample_budget": 100, "accuracy": 0.55},
        {"k": 2, "budget": 8, "per_sample_budget": 4, "accuracy": 0.0},
        {"k": 4, "budget": 200, "per_sample_budget": 50, "accuracy": 0.4},
    ]
    lines = headline(acc, acc, [{"model": "RL", "sequential": seq, "parallel": par}])
    assert lines[-2:] == [
        "RL: accuracy at budget 8 = 10.0%, at 200 = 60.0%",
        "  same 200 tokens in parallel: majority of 2 x 100 = 55.0%, majority of 4 x 50 = 40.0%",
    ]
    # no parallel points (parallel_ks: []): no parallel line
    assert headline(acc, acc, [{"model": "RL", "sequential": seq}])[-1].startswith("RL: ")


def test_sft_from_reuses_the_sft_stage_and_passes_the_config(quick_demo, tmp_path, capsys):
    src, _ = quick_demo
    variant = tmp_path / "k2.yaml"
    variant.write_text("rl:\n  k: 2\n")
    out = tmp_path / "k2"
    argv = ["demo", "--quick", "--out", str(out), "--config", str(variant), "--sft-from", str(src)]
    assert main(argv) == 0
    assert "1-3/7 problems, traces and SFT model from" in capsys.readouterr().out
    assert "k: 2" in (out / "config.yaml").read_text()  # --config reached the demo
    for name in ("sft", "rl", "test"):
        ours, theirs = (load_problems(d / "data" / f"{name}.jsonl") for d in (out, src))
        assert [p.prompt for p in ours] == [p.prompt for p in theirs]
    # the same SFT model evaluated with the same seed: the same accuracy, to the sample
    sft = [json.loads((d / "eval" / "sft.json").read_text())["accuracy"] for d in (out, src)]
    assert sft[0] == sft[1]
    assert [r["step"] for r in read_jsonl(out / "rl" / "metrics.jsonl")] == [1, 2, 3]


def test_sft_from_refuses_other_sft_settings(quick_demo, tmp_path, capsys):
    src, _ = quick_demo
    out = tmp_path / "other"
    assert main(["demo", "--quick", "--out", str(out), "--sft-from", str(src), "sft.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert "other settings: sft.epochs 1 != 2" in err
    assert main(["demo", "--quick", "--out", str(out), "--sft-from", str(tmp_path)]) == 2
    assert "no finished demo SFT stage" in capsys.readouterr().err
