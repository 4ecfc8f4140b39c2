"""A tiny model trained by `t1 sft` on synthesized traces learns the trace format (slow).

`t1 synth` writes trial-and-error traces for the linear-equation task plus a disjoint held-out
problem set; `t1 sft` trains a 0.8 M-parameter character-level Llama from scratch for 300
steps (16 traces a step, about 1.2 epochs; about 2 minutes of CPU time, more wall time on a
shared machine); the trained model then answers every held-out problem greedily. Reported
(printed, and written to figures.json in the test's folder; the interval is
t1.eval.metrics.wilson_interval): the share of responses that follow
the trace format, the accuracy with a 95 % Wilson interval, and the share with >= 1 retry.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

TRY_LINE = re.compile(r"^.*Try .+\. .*(Wrong|Correct)\.$")
ANSWER_LINE = re.compile(r"^Answer: \\boxed\{[^{}]+\}$")


def follows_format(text: str, finish_reason: str) -> bool:
    """Attempt lines, each closed by its check ("... Wrong." then "... Correct."), then the answer."""
    lines = text.split("\n")
    attempts = lines[:-1]
    return (
        finish_reason == "stop"
        and len(attempts) >= 1
        and ANSWER_LINE.match(lines[-1]) is not None
        and all(TRY_LINE.match(line) for line in attempts)
        and attempts[-1].endswith("Correct.")
        and all(line.endswith("Wrong.") for line in attempts[:-1])
    )


def test_format_checker_on_a_synthesized_trace():
    good = "Try x=(7-1)/2=4. Check: 2*4+1=9, not 7. Wrong.\nLet me try again. Try x=(7-1)/2=3. "
    good += "Check: 2*3+1=7. Correct.\nAnswer: \\boxed{3}"
    assert follows_format(good, "stop")
    assert not follows_format(good, "length")
    assert not follows_format(good.replace("Correct.", "Wrong."), "stop")
    assert not follows_format("Answer: \\boxed{3}", "stop")  # no attempt
    assert not follows_format("Try x=3. Correct.\nthe answer is 3", "stop")


@pytest.mark.slow
def test_tiny_model_learns_the_trace_format(tmp_path):
    from t1.cli import main
    from t1.config import DataConfig, ModelConfig
    from t1.data import load_problems
    from t1.eval.metrics import wilson_interval
    from t1.models import build_prompt, load_model
    from t1.rewards import get_verifier
    from t1.rollout.base import SamplingParams
    from t1.rollout.hf import HFEngine

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # faster than 2 for a model this small on a shared machine
    traces, run = tmp_path / "data" / "traces.jsonl", tmp_path / "sft"
    synth = ["synth.task=linear", "synth.n=4000", "synth.splits.test=200", f"synth.out={traces}"]
    assert main(["synth", *synth]) == 0
    sft = [
        f"data.train={traces}",
        f"trainer.out={run}",
        "trainer.steps=300",
        "trainer.save_every=100",
        "trainer.report_to=[]",
        "sft.epochs=100",
        "sft.batch_size=16",
        "sft.max_len=320",
        "sft.eval_fraction=0.02",
        "model.tiny.max_position=320",
        "optim.lr=2e-3",
        "optim.warmup_steps=20",
    ]
    assert main(["sft", *sft]) == 0

    model, tok = load_model(ModelConfig(path=str(run)))  # the run's final model
    held = load_problems(traces.parent / "test.jsonl")
    prompts = [build_prompt(tok, p.prompt, DataConfig()) for p in held]
    outs = HFEngine(model, tok).generate(
        prompts, 1, SamplingParams(temperature=0.0, max_new_tokens=320)
    )
    torch.set_num_threads(before)
    verify = get_verifier("linear")
    n = len(held)
    fmt = [follows_format(r.text, r.finish_reason) for r in outs]
    right = [verify(r.text, p.answer).correct for p, r in zip(held, outs)]
    retry = [ok and r.text.count("\n") >= 2 for ok, r in zip(fmt, outs)]
    figures = {
        "n": n,
        "format_rate": sum(fmt) / n,
        "accuracy": sum(right) / n,
        "accuracy_95ci": wilson_interval(sum(right), n),
        "retry_share": sum(retry) / n,
        "final_eval_loss": [json.loads(x) for x in (run / "metrics.jsonl").open()][-1]["eval/loss"],
        "samples": [r.text for r in outs[:3]],
    }
    (tmp_path / "figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    assert figures["format_rate"] >= 0.95
    assert figures["retry_share"] >= 0.2  # its traces contain real retries
    # better than a guess: x is one of 19 integers in [-9, 9]
    assert figures["accuracy_95ci"][0] > 1 / 19
