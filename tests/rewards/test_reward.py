"""score_rollout / score_batch / reward_metrics: penalties, failures, pools."""

from __future__ import annotations

import json
import threading
import time

import pytest

from t1.config import RewardConfig
from t1.errors import ConfigError
from t1.rewards import get_verifier
from t1.rewards.reward import (
    close_pools,
    reward_metrics,
    score_batch,
    score_rollout,
    validate_reward_config,
)

REF_24 = json.dumps({"target": 24, "numbers": [3, 5, 7, 1]})
RIGHT = "Answer: (7-3)*(5+1)"


def _one(text: str, finish: str = "stop", ids: list[int] | None = None, **cfg_kw: object):
    cfg = RewardConfig(task="countdown", **cfg_kw)
    return score_rollout(text, REF_24, finish, ids, get_verifier("countdown"), cfg)


def test_correct_wrong_and_penalties_override() -> None:
    assert (_one(RIGHT).score, _one(RIGHT).penalty) == (1.0, None)
    assert _one("Answer: 3+5+7+1").score == 0.0
    truncated = _one(RIGHT, finish="length")
    assert (truncated.score, truncated.penalty, truncated.correct) == (-1.0, "truncated", True)
    looping = _one(RIGHT, ids=[1, 2, 3] * 50)  # rep-20 = 1 - 3/131 > 0.5
    assert (looping.score, looping.penalty) == (-1.0, "repetitive")
    garbage = _one("I give up")
    assert (garbage.score, garbage.penalty) == (-1.0, "garbage")


def test_penalty_order_and_switches() -> None:
    both = _one("no answer", finish="length")
    assert both.penalty == "truncated"  # truncation outranks garbage
    assert both.metrics["garbage_flag"] == 1.0
    off = _one("no answer", finish="length", truncation_penalty=None, garbage_penalty=-0.5)
    assert (off.penalty, off.score) == ("garbage", -0.5)
    none = _one("no answer", finish="length", truncation_penalty=None, garbage_penalty=None)
    assert (none.penalty, none.score) == (None, 0.0)


def test_configured_rewards() -> None:
    assert _one(RIGHT, correct_reward=2.0).score == 2.0
    assert _one("Answer: 1+2", wrong_reward=-0.25).score == -0.25


def test_raising_verifier_is_a_failure() -> None:
    cfg = RewardConfig(task="reward_plugins:Raising", failure_reward=-0.3)
    out = score_batch(["ok", "boom"], ["ok", "x"], ["stop", "stop"], None, cfg.task, cfg)
    assert out[0].correct and out[0].penalty is None
    assert (out[1].score, out[1].penalty) == (-0.3, "failure")
    metrics = reward_metrics(out)
    assert metrics["failure_rate"] == 0.5 and metrics["failures"] == 1.0


def test_hanging_verifier_in_process_is_cut_by_the_soft_limit() -> None:
    cfg = RewardConfig(task="reward_plugins:Hanging", timeout_s=0.2)
    start = time.monotonic()
    out = score_batch(["hang", "ok"], ["x", "ok"], ["stop"] * 2, None, cfg.task, cfg)
    assert time.monotonic() - start < 3.0  # limit 0.2 + 1.0 s slack
    assert out[0].penalty == "failure" and out[0].metrics["timeout"] == 1.0
    assert out[1].correct


def test_bad_reference_is_counted_not_raised() -> None:
    cfg = RewardConfig(task="countdown")
    out = score_batch([RIGHT], ["not json"], ["stop"], None, "countdown", cfg)
    assert out[0].penalty == "failure"


def test_metrics_rates() -> None:
    results = [_one(RIGHT), _one("Answer: 1+2"), _one("x"), _one(RIGHT, finish="length")]
    m = reward_metrics(results)
    # correct: RIGHT twice (truncation keeps correct=True) -> 2/4
    assert m["accuracy"] == 0.5
    # scores 1, 0, -1, -1 -> mean -0.25
    assert m["score_mean"] == -0.25
    assert (m["garbage_rate"], m["truncated_rate"], m["answered_rate"]) == (0.25, 0.25, 0.75)


def test_validation_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="reward.timeout_s"):
        validate_reward_config(RewardConfig(timeout_s=0))
    with pytest.raises(ConfigError, match="reward.repetition_threshold"):
        validate_reward_config(RewardConfig(repetition_threshold=1.5))
    with pytest.raises(ConfigError, match="unknown task 'mth'"):
        validate_reward_config(RewardConfig(task="mth"))
    with pytest.raises(ValueError, match="2 texts, 1 references"):
        score_batch(["a", "b"], ["a"], ["stop", "stop"], None, "math", RewardConfig())


def test_score_batch_from_a_thread() -> None:
    # the math verifier's hard limit must work off the main thread (no signal.alarm)
    cfg = RewardConfig(task="math", timeout_s=1.0)
    out: list = []
    texts = ["\\boxed{\\frac{1}{2}}", "\\boxed{9999999!}", "\\boxed{x<3}"]
    refs = ["0.5", "1", "3>x"]  # fast path, killed at the limit, Math-Verify
    thread = threading.Thread(
        target=lambda: out.extend(score_batch(texts, refs, ["stop"] * 3, None, "math", cfg))
    )
    thread.start()
    thread.join(timeout=60)
    assert [r.correct for r in out] == [True, False, True]
    assert [r.metrics["slow_path"] for r in out] == [0.0, 1.0, 1.0]
    assert out[1].metrics["timeout"] == 1.0


def test_pool_matches_in_process_and_survives_hangs() -> None:
    texts = ["\\boxed{\\frac{1}{2}}", "\\boxed{2}", "none", "\\boxed{(x+1)^2}", "\\boxed{x<3}"]
    refs = ["0.5", "3", "1", "x^2+2x+1", "3>x"]  # the last one needs Math-Verify (a worker)
    reasons = ["stop", "stop", "stop", "length", "stop"]
    serial = score_batch(texts, refs, reasons, None, "math", RewardConfig(task="math"))
    try:
        pooled = score_batch(texts, refs, reasons, None, "math", RewardConfig(workers=2))
        assert [(r.score, r.penalty, r.correct) for r in pooled] == [
            (r.score, r.penalty, r.correct) for r in serial
        ]
        assert [r.score for r in pooled] == [1.0, 0.0, -1.0, -1.0, 1.0]
        slow = score_batch(
            ["\\boxed{9999999!}"],
            ["1"],
            ["stop"],
            None,
            "math",
            RewardConfig(workers=2, timeout_s=1.0),
        )
        assert not slow[0].correct and slow[0].metrics["timeout"] == 1.0
        cfg = RewardConfig(task="reward_plugins:Hanging", workers=2, timeout_s=0.5)
        start = time.monotonic()
        out = score_batch(["ok", "hang", "ok"], ["ok"] * 3, ["stop"] * 3, None, cfg.task, cfg)
        assert time.monotonic() - start < 10.0
        assert [r.penalty for r in out] == [None, "failure", None]
        assert out[1].metrics["timeout"] == 1.0
    finally:
        close_pools()
