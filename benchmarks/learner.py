"""The learner's forward + backward on one RL batch: packed responses against the dense pass.

    python benchmarks/learner.py                      # rows 88 % filled and cut to ~64 %
    python benchmarks/learner.py --cut 0 0.25 0.5 --repeats 20

The batch: the tiny model (0.8 M parameters, as in `rl_vs_trl.py`) samples 4 prompts x K = 8
responses of up to 32 new tokens with `HFEngine`; `--cut C` then shortens each response after
the first, with probability C, to a random length (seeded), which leaves more padding. For each
batch, `compute_logprobs` (shared prompts, one micro-batch of 32 rows) and the backward of the
summed log-probs run alternately with the packed response pass (`t1.rollout.fastpath`) and
with it switched off (the model's own forward over the padded responses); the figure is the
median CPU time of `--repeats` calls of each, one thread.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import t1.rollout.logprobs as logprobs
from t1.config import DataConfig, ModelConfig
from t1.models import build_prompt, load_model
from t1.rollout import HFEngine, SamplingParams, collate_rollouts, compute_logprobs

PACKED_OK = logprobs.supports_packed_learner


def ragged(rollouts: list, cut: float, seed: int) -> list:
    """The rollouts with each after the first shortened, with probability `cut`."""
    gen = torch.Generator().manual_seed(seed)
    for r in rollouts[1:]:
        if float(torch.rand((), generator=gen)) < cut and r.response_ids:
            n = int(torch.randint(1, len(r.response_ids) + 1, (), generator=gen))
            r.response_ids, r.logprobs = r.response_ids[:n], r.logprobs[:n]
    return rollouts


def step(model, batch, packed: bool) -> float:
    """CPU seconds of the learner's forward + backward, with or without the packed pass."""
    logprobs.supports_packed_learner = PACKED_OK if packed else (lambda m: False)
    model.zero_grad(set_to_none=True)
    t = time.process_time()
    compute_logprobs(model, batch, 1.0, len(batch)).sum().backward()
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cut", type=float, nargs="+", default=[0.0, 0.5])
    ap.add_argument("--repeats", type=int, default=14)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tokenizer = load_model(ModelConfig(path="tiny", device="cpu", seed=args.seed))
    prompts = [build_prompt(tokenizer, f"Write digits after {i}:", DataConfig()) for i in range(4)]
    sp = SamplingParams(temperature=1.0, max_new_tokens=32, seed=args.seed)
    model.train()
    for cut in args.cut:
        rollouts = ragged(HFEngine(model, tokenizer).generate(prompts, 8, sp), cut, args.seed)
        batch = collate_rollouts(rollouts, tokenizer.pad_token_id)

        step(model, batch, True), step(model, batch, False)  # warm-up
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.repeats):
            for packed in (False, True):
                times[packed].append(step(model, batch, packed))
        logprobs.supports_packed_learner = PACKED_OK
        dense, packed = (statistics.median(times[p]) for p in (False, True))
        print(
            f"rows {batch.response_mask.mean():.0%} filled ({len(batch)} x {batch.response_mask.shape[1]})"
        )
        print(f"  dense {dense * 1e3:.1f} ms, packed {packed * 1e3:.1f} ms")
        print(f"  ratio  {dense / packed:.2f}x")


if __name__ == "__main__":
    main()
