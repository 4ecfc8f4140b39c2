"""The oracle: answer extraction, verifiers, penalties and the composite reward.

from t1.rewards import extract_answer, math_equal, get_verifier, score_batch

Modules, each importing only those above it (tests/rewards/test_layout.py checks it):

    base, timelimit, workers        records; the soft time limit; killable worker processes
    arith, latex_eval, normalize    safe readers of arithmetic, LaTeX and numbers
    phrases, extraction             the final answer a response commits to
    fast_equal                      equal / different without sympy, or "don't know"
    math_verify_guard               Math-Verify under a hard time limit, in any thread
    math_equal                      fast path, then Math-Verify
    verifiers, countdown,           one verifier per task
    multiple_choice
    registry                        verifiers by name
    penalties, reward               penalties; the composite reward and batch scoring
"""

from t1.rewards.base import RewardResult, Verifier
from t1.rewards.extraction import extract_answer, reference_answer
from t1.rewards.math_equal import math_equal
from t1.rewards.registry import get_verifier, register_verifier, verifier_names
from t1.rewards.reward import (
    reward_metrics,
    score_batch,
    score_rollout,
    validate_reward_config,
)

__all__ = [
    "RewardResult",
    "Verifier",
    "extract_answer",
    "get_verifier",
    "math_equal",
    "reference_answer",
    "register_verifier",
    "reward_metrics",
    "score_batch",
    "score_rollout",
    "validate_reward_config",
    "verifier_names",
]
