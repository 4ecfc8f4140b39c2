"""A demo-like run directory written by hand: sft/ and rl/ stages with metrics, samples and
configs, eval/*.json, eval/scale.json and a figure in plots/, for the report tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

from t1.eval.plots import plot_metrics
from t1.runs import write_jsonl


def _sft_rows(steps: int) -> list[dict]:
    return [
        {
            "step": s,
            "loss": 2.0 * math.exp(-s / 8),
            "eval/loss": 2.1 * math.exp(-s / 9),
            "lr": 1e-3 * min(1.0, s / 3),
        }
        for s in range(1, steps + 1)
    ]


def _rl_rows(steps: int) -> list[dict]:
    rows = []
    for s in range(1, steps + 1):
        rows.append(
            {
                "step": s,
                "reward/mean": -0.5 + s / steps,
                "reward/accuracy": s / (2 * steps),
                "penalty/truncated": 0.3 * (1 - s / steps),
                "penalty/repetitive": 0.05,
                "penalty/garbage": 0.1 * (1 - s / steps),
                "response/len_mean": 40 + s,
                "response/len_max": 64,
                "response/truncated": 0.3 * (1 - s / steps),
                "entropy": 1.5 - s / (2 * steps),
                "kl": 0.01 * s,
                "adv/mean": 0.0,
                "adv/std": 0.4 + 0.01 * s,
                "clip_frac": 0.0,
                "grad_norm": "nan" if s == 3 else 1.0 / s,
                "lr": 1e-5,
                "tokens_per_s": 900.0 + s,
                "time/generate": 1.2,
                "time/update": 0.4,
                "custom_thing": s % 3,
            }
        )
    return rows


SAMPLES = [
    {
        "prompt": "What is 2+2?",
        "response": "2+2 = 4, so \\boxed{4}",
        "reward": 1.0,
        "correct": True,
        "penalty": None,
    },
    {
        "prompt": "What is 3*3?",
        "response": "<script>alert('x')</script> \\boxed{6}",
        "reward": 0.0,
        "correct": False,
        "penalty": None,
    },
    {
        "prompt": "Loop?",
        "response": "and and and and",
        "reward": -1.0,
        "correct": False,
        "penalty": "repetitive",
    },
]


def make_run(root: Path) -> Path:
    """DEMO/{sft,rl}/ stages, DEMO/eval/{math.json,scale.json}, DEMO/plots/extra.png."""
    run = root / "DEMO"
    for stage, rows in (("sft", _sft_rows(12)), ("rl", _rl_rows(10))):
        d = run / stage
        d.mkdir(parents=True)
        write_jsonl(d / "metrics.jsonl", rows)
        (d / "config.yaml").write_text(f"stage: {stage}\ntrainer:\n  steps: {len(rows)}\n")
    (run / "rl" / "samples").mkdir()
    write_jsonl(run / "rl" / "samples" / "step-5.jsonl", SAMPLES)
    write_jsonl(run / "rl" / "samples" / "step-10.jsonl", SAMPLES[:1])
    (run / "eval").mkdir()
    acc = {"mean": 0.4, "lo": 0.3, "hi": 0.5}
    summary = {
        "name": "math",
        "model": "DEMO/rl",
        "n_problems": 20,
        "n_samples": 80,
        "accuracy": acc,
        "pass@k": {"1": 0.4, "4": 0.7},
        "maj@k": {"1": 0.4, "4": 0.5},
        "len_mean": 41.5,
        "truncated": 0.1,
        "breakdown": {"level": {"1": {"n_problems": 10, "accuracy": acc}}},
    }
    (run / "eval" / "math.json").write_text(json.dumps(summary))
    write_jsonl(run / "eval" / "math.samples.jsonl", SAMPLES)
    (run / "eval" / "broken.json").write_text("{not json")
    seq = [
        {"budget": b, "accuracy": a, "lo": a - 0.1, "hi": a + 0.1, "forced": 1.0}
        for b, a in ((8, 0.1), (16, 0.3), (32, 0.5))
    ]
    par = [
        {
            "k": 2,
            "budget": b,
            "per_sample_budget": b // 2,
            "accuracy": a,
            "lo": a - 0.1,
            "hi": a + 0.1,
        }
        for b, a in ((8, 0.05), (16, 0.2), (32, 0.35))
    ]
    scale = {
        "models": [
            {"model": "sft", "sequential": seq, "parallel": par},
            {
                "model": "rl",
                "sequential": [
                    {**p, **{k: p[k] + 0.2 for k in ("accuracy", "lo", "hi")}} for p in seq
                ],
                "parallel": [],
            },
        ]
    }
    (run / "eval" / "scale.json").write_text(json.dumps(scale))
    plot_metrics([{"step": 1, "x": 1.0}, {"step": 2, "x": 2.0}], ["x"], run / "plots" / "extra.png")
    return run
