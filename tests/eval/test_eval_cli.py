"""`t1 eval`, `t1 scale` and `t1 report` end to end: a tiny random model, the real HF engine."""

from __future__ import annotations

import csv
import json

import pytest

from t1.cli import main

TINY = [
    "model.path=tiny",
    "model.tiny.hidden_size=32",
    "model.tiny.num_layers=1",
    "model.tiny.num_heads=2",
    "model.tiny.num_kv_heads=1",
    "model.tiny.intermediate_size=64",
    "reward.task=math",
    "seed=3",
]


@pytest.fixture
def problems(tmp_path):
    path = tmp_path / "toy.jsonl"
    rows = [{"prompt": f"{a}+{a}=", "answer": str(2 * a), "level": a % 2} for a in range(1, 4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_t1_eval_writes_summary_and_samples(tmp_path, problems, capsys):
    out = tmp_path / "ev"
    args = [f"data.eval={problems}", f"eval.out={out}", "eval.n=2", "eval.ks=[1,2]",
            "sampling.max_new_tokens=6", "eval.bootstrap=50"]  # fmt: skip
    assert main(["eval", *TINY, *args]) == 0
    summary = json.loads((out / "eval" / "toy.json").read_text())
    assert summary["n_problems"] == 3 and summary["n_samples"] == 6
    assert set(summary["pass@k"]) == {"1", "2"} and set(summary["maj@k"]) == {"1", "2"}
    acc = summary["accuracy"]
    assert 0.0 <= acc["lo"] <= acc["mean"] <= acc["hi"] <= 1.0
    assert summary["len_mean"] <= 6.0
    rows = [json.loads(line) for line in (out / "eval" / "toy.samples.jsonl").open()]
    assert len(rows) == 6 and all(r["response_len"] <= 6 for r in rows)
    assert (out / "config.yaml").is_file()
    assert "accuracy" in capsys.readouterr().out


def test_t1_eval_names_the_missing_key(tmp_path, capsys):
    assert main(["eval", *TINY, f"eval.out={tmp_path}"]) == 2
    assert "data.eval" in capsys.readouterr().err


def test_t1_scale_then_report(tmp_path, problems, capsys):
    out = tmp_path / "sc"
    args = [f"data.eval={problems}", f"scale.out={out}", "scale.budgets=[4,8]",
            "scale.parallel_ks=[2]", "scale.answer_tokens=3", "scale.bootstrap=50"]  # fmt: skip
    assert main(["scale", *TINY, *args]) == 0
    result = json.loads((out / "eval" / "scale.json").read_text())
    (model,) = result["models"]
    assert [p["budget"] for p in model["sequential"]] == [4, 8]
    # maj@2 at b=4 and b=8 reads the answers of budgets 2 and 4
    assert [(p["budget"], p["per_sample_budget"]) for p in model["parallel"]] == [(4, 2), (8, 4)]
    assert model["n"] == 2 and model["len_mean"] <= 8
    with open(out / "plots" / "scale.csv") as f:
        assert len(list(csv.DictReader(f))) == 4  # 2 sequential + 2 parallel points
    assert (out / "plots" / "scale.png").stat().st_size > 1000
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "Inference scaling by truncation" not in page or "data:image/png" in page
    assert page.count("data:image/png") == 1  # the scaling figure (drawn once, not twice)
    assert "sequential" in capsys.readouterr().out
