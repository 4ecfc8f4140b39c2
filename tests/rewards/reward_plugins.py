"""Misbehaving verifiers for the failure tests, importable by name ("reward_plugins:...") in the
worker processes too (pytest puts this folder on sys.path; workers inherit it)."""

from __future__ import annotations

import time

from t1.rewards.base import RewardResult


class Raising:
    def __call__(self, text: str, reference: str) -> RewardResult:
        if "boom" in text:
            raise RuntimeError("verifier bug")
        return RewardResult(score=1.0, correct=text == reference, answer=text)


class Hanging:
    def __call__(self, text: str, reference: str) -> RewardResult:
        if "hang" in text:
            while True:  # a pure-Python hang: the soft limit or a kill must end it
                time.sleep(0.01)
        return RewardResult(score=1.0, correct=text == reference, answer=text)
