"""`t1 demo --quick`: every stage runs and every artefact is written."""

from __future__ import annotations

import json

from t1.data.problems import load_problems
from t1.data.splits import overlap
from t1.demo import run_demo
from t1.train.rundir import read_jsonl


def test_quick_demo_writes_every_artefact(tmp_path, capsys):
    out = tmp_path / "demo"
    assert run_demo(out=str(out), quick=True, seed=0) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    # the last lines are the headline numbers and the report's path
    assert "held-out accuracy" in "\n".join(printed[-6:])
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
