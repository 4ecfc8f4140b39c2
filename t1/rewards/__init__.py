"""The oracle: answer extraction, verifiers, penalties and the composite reward.

from t1.rewards import extract_answer, math_equal, get_verifier, score_batch
"""

from t1.rewards.base import RewardResult, Verifier
from t1.rewards.extraction import extract_answer, reference_answer
from t1.rewards.math_equal import math_equal
from t1.rewards.reward import (
    reward_metrics,
    score_batch,
    score_rollout,
    validate_reward_config,
)
from t1.rewards.verifiers import get_verifier, register_verifier, verifier_names

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
