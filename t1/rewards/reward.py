"""The composite reward (T1, arXiv 2501.11651, sec. 3.2) and batch scoring.

    r = truncation_penalty   if finish_reason == "length"
      = repetition_penalty   elif rep-n(response) > threshold
      = garbage_penalty      elif no parseable answer (or mostly noise)
      = correct_reward       elif the verifier says correct
      = wrong_reward         otherwise

A disabled penalty (None) is skipped; a verifier that raises or overruns the time limit gives
`failure_reward` with penalty "failure" (and a warning), and the run goes on.

`score_batch` scores in this process when `workers == 0` or the verifier is cheap
(`in_process = True`: countdown, linear, gsm8k), with a soft per-item limit on the main thread
(the math verifier's Math-Verify calls have their own hard limit in a killable worker). With
`workers > 0` the other verifiers run in a persistent pool of processes (created once, reused);
each item has its own deadline and a worker that overruns it is killed and replaced. A verifier
with a `quick(text, reference)` method (math: extraction + the fast path) decides most items in
this process first, so only the few that need Math-Verify cross to the pool.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Sequence

from t1.config import RewardConfig
from t1.errors import ConfigError
from t1.rewards.base import RewardResult, Verifier
from t1.rewards.penalties import is_garbage, is_repetitive, is_truncated
from t1.rewards.registry import BUILTIN_TASKS, get_verifier
from t1.rewards.timelimit import SoftTimeout, soft_limit
from t1.rewards.workers import WorkerPool

log = logging.getLogger("t1.rewards")

PENALTIES = ("truncated", "repetitive", "garbage", "failure")
# what a pool worker runs per item, and its start-up (Math-Verify inline, sympy imported)
SCORE_HANDLER = f"{__name__}:score_local"
WORKER_SETUP = "t1.rewards.math_verify_guard:prepare_worker"
# slack of the in-process soft limit beyond the verifier's own limit (which should fire first)
SOFT_SLACK_S = 1.0

_POOLS: dict[int, WorkerPool] = {}
_VERIFIERS: dict[tuple[str, float], Verifier] = {}


def score_rollout(
    text: str,
    reference: str,
    finish_reason: str | None,
    response_ids: Sequence[int] | None,
    verifier: Verifier,
    cfg: RewardConfig,
) -> RewardResult:
    """The reward of one response: the verifier's verdict, then penalties that override it."""
    try:
        verdict = verifier(text, reference)
    except Exception as exc:  # noqa: BLE001 - any verifier bug becomes a counted failure
        return failure_result(cfg, f"{type(exc).__name__}: {exc}")
    return apply_penalties(verdict, text, finish_reason, response_ids, cfg)


def apply_penalties(
    verdict: RewardResult,
    text: str,
    finish_reason: str | None,
    response_ids: Sequence[int] | None,
    cfg: RewardConfig,
) -> RewardResult:
    """Map a verdict to the configured rewards; the first enabled penalty that applies wins."""
    repetitive, rep_n = is_repetitive(
        text, response_ids, cfg.repetition_ngram, cfg.repetition_threshold
    )
    flags = {
        "truncated": is_truncated(finish_reason),
        "repetitive": repetitive,
        "garbage": is_garbage(verdict.answer, text, cfg.garbage_min_text_share),
    }
    values = {
        "truncated": cfg.truncation_penalty,
        "repetitive": cfg.repetition_penalty,
        "garbage": cfg.garbage_penalty,
    }
    penalty = next((name for name, hit in flags.items() if hit and values[name] is not None), None)
    score = cfg.correct_reward if verdict.correct else cfg.wrong_reward
    metrics = dict(verdict.metrics)
    metrics.update({f"{name}_flag": float(hit) for name, hit in flags.items()})
    metrics["rep_n"] = rep_n
    return RewardResult(
        score=values[penalty] if penalty is not None else score,
        correct=verdict.correct,
        penalty=penalty,
        answer=verdict.answer,
        metrics=metrics,
    )


def failure_result(cfg: RewardConfig, reason: str, timeout: bool = False) -> RewardResult:
    log.warning("reward failure (scored %s): %s", cfg.failure_reward, reason[:300])
    return RewardResult(
        score=cfg.failure_reward,
        correct=False,
        penalty="failure",
        metrics={"failure": 1.0, "timeout": float(timeout)},
    )


def score_batch(
    texts: Sequence[str],
    references: Sequence[str],
    finish_reasons: Sequence[str | None],
    response_ids: Sequence[Sequence[int] | None] | None,
    task: str,
    cfg: RewardConfig,
) -> list[RewardResult]:
    """Rewards of a batch of responses, in order. Never raises for what a model wrote."""
    n = len(texts)
    if len(references) != n or len(finish_reasons) != n:
        raise ValueError(
            f"score_batch: {n} texts, {len(references)} references, "
            f"{len(finish_reasons)} finish reasons"
        )
    ids = list(response_ids) if response_ids is not None else [None] * n
    if len(ids) != n:
        raise ValueError(f"score_batch: {n} texts but {len(ids)} response_ids")
    validate_reward_config(cfg, task)
    verifier = _verifier(task, cfg)
    pooled = cfg.workers > 0 and not getattr(verifier, "in_process", False) and _importable(task)
    if not pooled:
        limit = cfg.timeout_s + SOFT_SLACK_S
        return [
            _score_here(t, r, f, i, verifier, cfg, limit)
            for t, r, f, i in zip(texts, references, finish_reasons, ids)
        ]
    return _score_pooled(texts, references, finish_reasons, ids, task, verifier, cfg)


def _score_pooled(
    texts: Sequence[str],
    references: Sequence[str],
    finish_reasons: Sequence[str | None],
    ids: list,
    task: str,
    verifier: Verifier,
    cfg: RewardConfig,
) -> list[RewardResult]:
    """What the verifier's cheap `quick` path decides is scored here; the rest in the pool."""
    results: list[RewardResult | None] = [None] * len(texts)
    quick = getattr(verifier, "quick", None)
    for k, (text, ref) in enumerate(zip(texts, references)):
        try:
            verdict = quick(text, ref) if quick is not None else None
        except Exception:  # noqa: BLE001 - the worker will report it properly
            verdict = None
        if verdict is not None:
            results[k] = apply_penalties(verdict, text, finish_reasons[k], ids[k], cfg)
    todo = [k for k, r in enumerate(results) if r is None]
    items = [
        (task, texts[k], references[k], finish_reasons[k], _as_list(ids[k]), cfg) for k in todo
    ]
    outcomes = (
        _pool(cfg.workers).run(SCORE_HANDLER, items, cfg.timeout_s + SOFT_SLACK_S) if todo else []
    )
    for k, outcome in zip(todo, outcomes):
        if outcome.status == "ok":
            results[k] = outcome.value
        else:
            reason = str(outcome.value or "timed out")
            results[k] = failure_result(cfg, reason, timeout=outcome.status == "timeout")
    return [r for r in results if r is not None]


def _as_list(ids: Sequence[int] | None) -> list[int] | None:
    return None if ids is None else list(ids)


def score_local(
    task: str,
    text: str,
    reference: str,
    finish_reason: str | None,
    response_ids: Sequence[int] | None,
    cfg: RewardConfig,
) -> RewardResult:
    """One item in this process, the verifier built from `task` (what a pool worker runs)."""
    return score_rollout(text, reference, finish_reason, response_ids, _verifier(task, cfg), cfg)


def reward_metrics(results: Sequence[RewardResult]) -> dict[str, float]:
    """Rates for the training log: accuracy, mean score, answered, each penalty, timeouts."""
    n = max(len(results), 1)
    out = {
        "accuracy": sum(r.correct for r in results) / n,
        "score_mean": sum(r.score for r in results) / n,
        "answered_rate": sum(r.answer is not None for r in results) / n,
        "timeout_rate": sum(r.metrics.get("timeout", 0.0) for r in results) / n,
        "failures": float(sum(r.penalty == "failure" for r in results)),
    }
    for name in PENALTIES:
        out[f"{name}_rate"] = sum(r.penalty == name for r in results) / n
    return out


def validate_reward_config(cfg: RewardConfig, task: str | None = None) -> None:
    """`ConfigError` naming the key for values that can't work (call before training starts)."""
    checks = [
        (cfg.timeout_s > 0, "reward.timeout_s", "must be > 0"),
        (cfg.workers >= 0, "reward.workers", "must be >= 0"),
        (cfg.repetition_ngram >= 1, "reward.repetition_ngram", "must be >= 1"),
        (0 < cfg.repetition_threshold <= 1, "reward.repetition_threshold", "must be in (0, 1]"),
        (
            cfg.garbage_min_text_share is None or 0 <= cfg.garbage_min_text_share <= 1,
            "reward.garbage_min_text_share",
            "must be in [0, 1] or null",
        ),
    ]
    for ok, key, rule in checks:
        if not ok:
            raise ConfigError(f"{key} {rule}")
    _verifier(task or cfg.task, cfg)  # unknown task -> ConfigError listing the valid ones


def close_pools() -> None:
    """Stop the worker processes (they also stop when this process exits)."""
    for pool in _POOLS.values():
        pool.close()
    _POOLS.clear()


atexit.register(close_pools)


def _score_here(
    text: str,
    reference: str,
    finish_reason: str | None,
    response_ids: Sequence[int] | None,
    verifier: Verifier,
    cfg: RewardConfig,
    limit_s: float,
) -> RewardResult:
    try:
        with soft_limit(limit_s):
            return score_rollout(text, reference, finish_reason, response_ids, verifier, cfg)
    except SoftTimeout:
        return failure_result(cfg, f"verifier exceeded {limit_s:.1f} s", timeout=True)


def _verifier(task: str, cfg: RewardConfig) -> Verifier:
    """Built-in verifiers get the configured limit (and are cached); user factories no kwargs."""
    if task not in BUILTIN_TASKS:
        return get_verifier(task)
    key = (task, cfg.timeout_s)
    if key not in _VERIFIERS:
        _VERIFIERS[key] = get_verifier(task, timeout_s=cfg.timeout_s)
    return _VERIFIERS[key]


def _importable(task: str) -> bool:
    """Workers rebuild the verifier from its name: built-ins and "module:attr" only."""
    if task in BUILTIN_TASKS or ":" in task:
        return True
    log.warning("reward.task %r is registered in this process only: scoring in-process", task)
    return False


def _pool(size: int) -> WorkerPool:
    if size not in _POOLS:
        _POOLS[size] = WorkerPool(size, WORKER_SETUP)
    return _POOLS[size]
