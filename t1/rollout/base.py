"""The `Rollout` record and the `RolloutEngine` protocol every backend implements.

The actor (an engine) generates; the learner recomputes log-probs; the oracle (t1.rewards)
grades. Every backend returns the same record, so trainers never know which one ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    min_p: float = 0.0
    max_new_tokens: int = 256
    # generation stops after any of these strings; the text is cut right after the stop string
    stop: list[str] = field(default_factory=list)
    # None: a fresh draw; an int makes a call reproducible
    seed: int | None = None


@dataclass
class Rollout:
    """One sampled response to one prompt."""

    # index of the prompt in the list given to `generate` (the K samples of a prompt share it)
    prompt_index: int
    prompt_ids: list[int]
    response_ids: list[int]
    # log-prob of each response token under the tempered sampling distribution (len == response_ids)
    logprobs: list[float]
    finish_reason: Literal["stop", "length"]
    # decoded response (special tokens removed, cut after a stop string)
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class RolloutEngine(Protocol):
    def generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> list[Rollout]:
        """`n` samples for each prompt (already formatted text), grouped: prompt 0's n, then 1's..."""
        ...

    def update_weights(self, model: Any) -> None:
        """Load the learner's current weights before the next `generate`."""
        ...
