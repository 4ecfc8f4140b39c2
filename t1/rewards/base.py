"""The oracle's records: `RewardResult` and the `Verifier` interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class RewardResult:
    # the reward the learner sees (penalties override correctness)
    score: float
    # the verifier's verdict on the final answer, before penalties
    correct: bool
    # which penalty replaced the score: "truncated" | "repetitive" | "garbage" | "failure" | None
    penalty: str | None = None
    # the answer the verifier extracted (None when there was none)
    answer: str | None = None
    # per-component numbers for the logs (e.g. {"timeout": 1.0})
    metrics: dict[str, float] = field(default_factory=dict)


class Verifier(Protocol):
    """Grades a response against a reference. Pure: never executes the text, never raises."""

    def __call__(self, text: str, reference: str) -> RewardResult: ...


def verdict(correct: bool, answer: str | None, **metrics: float) -> RewardResult:
    """A verifier's result: score 1.0 / 0.0 with `correct` (penalties are applied later)."""
    return RewardResult(
        score=1.0 if correct else 0.0, correct=correct, answer=answer, metrics=dict(metrics)
    )
