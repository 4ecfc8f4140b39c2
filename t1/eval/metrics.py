"""Evaluation statistics: accuracy with intervals, pass@k, maj@k.

Accuracy. Problem i has n_i graded samples; its score is a_i = c_i / n_i and the accuracy is
`acc = mean_i a_i`. Samples of one problem are correlated, so the 95 % interval resamples
*problems*, not samples (percentile bootstrap: draw m problems with replacement B times, take the
2.5 and 97.5 percentiles of the B means). `wilson_interval` is the closed form for one
sample per problem (c successes out of m trials):

    centre = (p + z²/2m) / (1 + z²/m),   half = z·sqrt(p(1-p)/m + z²/4m²) / (1 + z²/m)

pass@k (Chen et al. 2021, unbiased): `1 - C(n-c, k) / C(n, k)`, averaged over problems; the
estimator itself lives in `t1.algo.pass_at_k` and is re-exported here.

maj@k: the n samples of a problem are split into floor(n/k) disjoint groups of k consecutive
samples; each group votes and is right when its winning answer is right; maj@k of the problem is
the share of groups that are right. Voting rules (deterministic):
- a sample with no extracted answer (None) does not vote; a group with no votes is wrong;
- answers are compared after `normalize_answer` (whitespace removed, a trailing ".0" dropped);
- a tie goes to the tied answer whose first vote came earliest in the group (sample order),
  i.e. the first-seen answer wins ties.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from t1.algo import pass_at_k

__all__ = [
    "pass_at_k",
    "mean_pass_at_k",
    "normalize_answer",
    "majority_vote",
    "maj_at_k",
    "mean_maj_at_k",
    "bootstrap_interval",
    "wilson_interval",
    "accuracy_with_interval",
]


def mean_pass_at_k(ns: Sequence[int], cs: Sequence[int], k: int) -> float:
    """pass@k averaged over problems (problem i: ns[i] samples, cs[i] correct)."""
    if not ns:
        return float("nan")
    return float(np.mean([pass_at_k(n, c, k) for n, c in zip(ns, cs, strict=True)]))


def normalize_answer(answer: str) -> str:
    """The key two answers must share to vote together: no whitespace, no trailing '.0'."""
    key = "".join(answer.split())
    if key.endswith(".0") and key[:-2].lstrip("-").isdigit():
        key = key[:-2]
    return key


def majority_vote(
    answers: Sequence[str | None], correct: Sequence[bool]
) -> tuple[str | None, bool]:
    """(winning answer, whether it is right) over one group of samples; ties: first seen wins.

    `correct[j]` is sample j's verdict; a winning answer is right when any sample that voted for
    it was graded right (all its voters share one normalised answer, so they agree).
    """
    counts: dict[str, int] = {}
    right: dict[str, bool] = {}
    for ans, ok in zip(answers, correct, strict=True):
        if ans is None:
            continue
        key = normalize_answer(ans)
        counts[key] = counts.get(key, 0) + 1
        right[key] = right.get(key, False) or bool(ok)
    if not counts:
        return None, False
    # dicts keep insertion order and max() returns the first maximal key: first seen wins ties
    winner = max(counts, key=counts.__getitem__)
    return winner, right[winner]


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int) -> float:
    """Share of the floor(n/k) disjoint groups of k consecutive samples whose vote is right."""
    if k < 1:
        raise ValueError(f"maj@k needs k >= 1, got {k}")
    groups = len(answers) // k
    if groups == 0:
        raise ValueError(f"maj@{k} needs at least {k} samples per problem, got {len(answers)}")
    wins = [
        majority_vote(answers[g * k : (g + 1) * k], correct[g * k : (g + 1) * k])[1]
        for g in range(groups)
    ]
    return sum(wins) / groups


def mean_maj_at_k(
    answers: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]], k: int
) -> float:
    """maj@k averaged over problems."""
    if not answers:
        return float("nan")
    return float(np.mean([maj_at_k(a, c, k) for a, c in zip(answers, correct, strict=True)]))


def bootstrap_interval(
    values: Sequence[float], resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (one value per problem).

    Seeded so a report is reproducible; an empty input gives (nan, nan) and one value (v, v).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    if resamples < 1:
        raise ValueError(f"bootstrap needs at least one resample, got {resamples}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(resamples, x.size))
    means = x[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    return float(lo), float(hi)


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (stays inside [0, 1], fine at p = 0 or 1)."""
    if total <= 0:
        return float("nan"), float("nan")
    p = successes / total
    denom = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_with_interval(
    per_problem: Sequence[float], resamples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """{"mean", "lo", "hi"}: mean per-problem accuracy and its bootstrap 95 % interval."""
    if len(per_problem) == 0:
        nan = float("nan")
        return {"mean": nan, "lo": nan, "hi": nan}
    lo, hi = bootstrap_interval(per_problem, resamples=resamples, seed=seed)
    return {"mean": float(np.mean(per_problem)), "lo": lo, "hi": hi}
