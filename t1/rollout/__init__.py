"""Rollout records and engines (HF transformers; vLLM imported lazily).

Usage::

    engine = make_engine(cfg.rollout, model, tokenizer)
    rollouts = engine.generate(prompts, n=K, sampling=SamplingParams(...))
    batch = collate_rollouts(rollouts, tokenizer.pad_token_id)
    logp = compute_logprobs(model, batch, temperature=T)
"""

from __future__ import annotations

from typing import Any

from t1.errors import T1Error
from t1.rollout.base import Rollout, RolloutEngine, SamplingParams
from t1.rollout.batch import Batch, collate_rollouts
from t1.rollout.hf import HFEngine
from t1.rollout.logprobs import compute_logprobs


def sampling_params(cfg: Any, seed: int | None = None, **overrides: Any) -> SamplingParams:
    """`SamplingParams` from a `SamplingConfig` (fields overridable, e.g. max_new_tokens=16)."""
    values = dict(
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        min_p=cfg.min_p,
        max_new_tokens=cfg.max_new_tokens,
        stop=list(cfg.stop),
        seed=seed,
    )
    values.update(overrides)
    return SamplingParams(**values)


def make_engine(rollout_cfg: Any, model: Any, tokenizer: Any) -> RolloutEngine:
    """The engine named by `rollout.engine`: "hf" (shares `model`) or "vllm" (lazy import)."""
    if rollout_cfg.engine == "hf":
        threads = getattr(rollout_cfg, "hf_threads", None)
        return HFEngine(model, tokenizer, batch_size=rollout_cfg.batch_size, num_threads=threads)
    if rollout_cfg.engine == "vllm":
        try:
            from t1.rollout.vllm import VLLMEngine
        except ImportError as e:
            raise T1Error(
                f"rollout.engine=vllm needs vLLM and a CUDA GPU ({e}); "
                "install with `pip install t1-rl[vllm]` or use rollout.engine=hf"
            ) from None
        return VLLMEngine(rollout_cfg, model, tokenizer)
    raise T1Error(f"rollout.engine: unknown engine {rollout_cfg.engine!r} (use 'hf' or 'vllm')")


__all__ = [
    "Batch",
    "HFEngine",
    "Rollout",
    "RolloutEngine",
    "SamplingParams",
    "collate_rollouts",
    "compute_logprobs",
    "make_engine",
    "sampling_params",
]
