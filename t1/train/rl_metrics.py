"""The RL trainer's measurements: metric names, phase timers, cross-rank means, sample rows,
the held-out evaluation's scalars (the evaluation itself: `t1.train.rl_eval`)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from t1.train.distributed import DistInfo, all_sum

PENALTY_NAMES = ("truncated", "repetitive", "garbage", "failure")


def log_names(rates: dict[str, float]) -> dict[str, float]:
    """The reward module's rates under the training log's names (reward/*, penalty/*)."""
    out = {}
    for key, value in rates.items():
        if key.endswith("_rate") and key[: -len("_rate")] in PENALTY_NAMES:
            out[f"penalty/{key[: -len('_rate')]}"] = value
        else:
            out[f"reward/{key.removesuffix('_rate')}"] = value
    return out


class Timer:
    """Seconds spent per phase of a step (`with timer("generate"): ...`)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.spent[phase] += time.perf_counter() - t0


def rollout_metrics(
    results: list,
    rollouts: list,
    rewards: torch.Tensor,
    lengths: torch.Tensor,
    seq_kl: torch.Tensor | None,
    adv: torch.Tensor,
) -> dict[str, Any]:
    """This rank's statistics of one rollout batch: rewards, penalties, lengths, KL, advantages."""
    from t1.rewards.reward import reward_metrics

    return {
        **log_names(reward_metrics(results)),
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
        "response/len_mean": float(lengths.float().mean()),
        "response/len_max": int(lengths.max()),
        "response/truncated": sum(r.finish_reason == "length" for r in rollouts) / len(rollouts),
        "kl": float(seq_kl.mean()) if seq_kl is not None else 0.0,
        "adv/mean": float(adv.mean()),
        "adv/std": float(adv.std()) if adv.numel() > 1 else 0.0,
        "adv/abs_mean": float(adv.abs().mean()),
    }


def across_ranks(metrics: dict[str, Any], info: DistInfo) -> dict[str, Any]:
    """Per-rank means of the rollout statistics become global means (equal shares)."""
    if info.world == 1:
        return metrics
    keys = [k for k in metrics if k.startswith(("reward/", "penalty/", "adv/"))]
    keys += ["response/len_mean", "response/truncated", "kl"]
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
    means = all_sum(values, info) / info.world
    out = {**metrics, **dict(zip(keys, means.tolist()))}
    longest = all_sum(
        torch.zeros(info.world).index_fill_(
            0, torch.tensor([info.rank]), float(metrics["response/len_max"])
        ),
        info,
    )
    out["response/len_max"] = int(longest.max())
    return out


def sample_rows(problems: list, rollouts: list, results: list, adv: torch.Tensor) -> list[dict]:
    """One JSON row per response for samples/step-N.jsonl."""
    flat_adv = adv.reshape(-1).tolist()
    return [
        {
            "prompt": problems[r.prompt_index].prompt,
            "response": r.text,
            "reference": problems[r.prompt_index].answer,
            "answer": res.answer,
            "reward": res.score,
            "correct": res.correct,
            "penalty": res.penalty,
            "adv": flat_adv[i],
            "finish_reason": r.finish_reason,
        }
        for i, (r, res) in enumerate(zip(rollouts, results))
    ]


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """An evaluation result as eval/* scalars for the training log."""
    from t1.eval.evaluate import flat_metrics as flat

    return flat(result)
