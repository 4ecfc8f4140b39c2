"""Rollout records and engines (HF transformers; vLLM imported lazily)."""

from t1.rollout.base import Rollout, RolloutEngine, SamplingParams

__all__ = ["Rollout", "RolloutEngine", "SamplingParams"]
