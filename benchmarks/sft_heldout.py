"""Held-out behaviour of an SFT model on a synthetic task: format, accuracy, retries.

    t1 synth configs/tiny_synth.yaml && t1 sft configs/tiny_sft.yaml
    python benchmarks/sft_heldout.py runs/tiny/sft/final runs/tiny/data/test.jsonl

For each held-out problem, one response (greedy by default, `--temperature` to sample) up to
`--max-new-tokens`, and:
- format: the response is shaped like a synthesized trace (`Task.trace_shape`: checked attempts,
  only the last judged correct, then one boxed answer); the reasons of the misses are counted;
- accuracy: the task verifier's verdict, with a 95 % Wilson interval over problems;
- retries: the share of responses with at least one attempt judged wrong before the answer;
- truncated: the share that hit the length limit.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch

from t1.config import DataConfig, ModelConfig
from t1.data.problems import load_problems
from t1.data.tasks import get_task
from t1.eval.metrics import wilson_interval
from t1.models import build_prompt, load_model
from t1.rewards import get_verifier
from t1.rollout import HFEngine, SamplingParams


def measure(
    model_path: str, test: str, task: str, temperature: float, max_new_tokens: int, seed: int
) -> dict:
    model, tokenizer = load_model(ModelConfig(path=model_path))
    problems = load_problems(test)
    data = DataConfig(chat_template="on")
    prompts = [build_prompt(tokenizer, p.prompt, data) for p in problems]
    sampling = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    rollouts = HFEngine(model, tokenizer).generate(prompts, 1, sampling)
    shape, verify = get_task(task), get_verifier(task)
    misses: Counter[str] = Counter()
    correct = retried = truncated = 0
    for r in rollouts:
        why = shape.trace_shape(r.text, ["Check:"])
        if why:
            misses[why] += 1
        correct += bool(verify(r.text, problems[r.prompt_index].answer).correct)
        retried += "Wrong." in r.text
        truncated += r.finish_reason == "length"
    n = len(rollouts)
    lo, hi = wilson_interval(correct, n)
    return {
        "model": model_path,
        "n": n,
        "temperature": temperature,
        "max_new_tokens": max_new_tokens,
        "format": (n - sum(misses.values())) / n,
        "format_misses": dict(misses),
        "accuracy": {"mean": correct / n, "lo": lo, "hi": hi},
        "retry_share": retried / n,
        "truncated": truncated / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", help="an SFT model folder (e.g. runs/tiny/sft/final)")
    ap.add_argument("test", help="held-out problems (JSONL)")
    ap.add_argument("--task", default="countdown")
    ap.add_argument("--temperature", type=float, nargs="+", default=[0.0])
    ap.add_argument("--max-new-tokens", type=int, nargs="+", default=[200])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(1)  # a small model's decode steps gain nothing from more threads
    rows = []
    for t in args.temperature:
        for m in args.max_new_tokens:
            r = measure(args.model, args.test, args.task, t, m, args.seed)
            a = r["accuracy"]
            print(
                f"T={t} max_new_tokens={m} n={r['n']}: format {r['format']:.1%} "
                f"(misses {r['format_misses']}), accuracy {a['mean']:.1%} "
                f"[95 % Wilson {a['lo']:.1%}, {a['hi']:.1%}], >= 1 retry {r['retry_share']:.1%}, "
                f"truncated {r['truncated']:.1%}",
                flush=True,
            )
            rows.append(r)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
