"""Scripted stand-ins for the actor and the forced-answer writer, so evaluation and scaling maths
can be checked against hand-computed values without a trained model."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from t1.config import DataConfig, RewardConfig
from t1.eval.evaluate import evaluate
from t1.rollout.base import Rollout, SamplingParams


@dataclass
class FakeProblem:
    id: str
    prompt: str
    answer: str
    task: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class ScriptedEngine:
    """A deterministic RolloutEngine: sample j of prompt i is `script(i, j)`, one character per
    token (the char tokenizer), cut at `max_new_tokens` with finish reason "length"."""

    batch_size = 64

    def __init__(self, tokenizer: Any, script: Callable[[int, int], str]):
        self.tokenizer, self.script = tokenizer, script
        self.calls: list[tuple[int, int, int]] = []  # (prompts, n, max_new_tokens)
        self._seen = 0

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> list[Rollout]:
        self.calls.append((len(prompts), n, sampling.max_new_tokens))
        out = []
        for i, prompt in enumerate(prompts):
            prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=False)
            for j in range(n):
                ids = self.tokenizer.encode(
                    self.script(self._seen + i, j), add_special_tokens=False
                )
                finish = "stop"
                if len(ids) > sampling.max_new_tokens:
                    ids, finish = ids[: sampling.max_new_tokens], "length"
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                out.append(Rollout(i, prompt_ids, ids, [0.0] * len(ids), finish, text))
        self._seen += len(prompts)
        return out

    def update_weights(self, model: Any) -> None:
        pass


def evaluate_script(
    tokenizer: Any,
    problems: Sequence[Any],
    script: Sequence[Sequence[str]],
    task: str,
    max_new: int,
) -> dict[str, Any]:
    """`evaluate()` of the scripted samples `script[i][j]` of problem i (4 each; k = 1, 2, 4)."""
    return evaluate(
        ScriptedEngine(tokenizer, lambda i, j: script[i][j]),
        tokenizer,
        problems,
        task,
        SamplingParams(max_new_tokens=max_new, seed=0),
        n=4,
        ks=[1, 2, 4],
        reward_cfg=RewardConfig(task=task),
        data_cfg=DataConfig(chat_template="off"),
        bootstrap=200,
        progress=False,
    )


class ReadingCompleter:
    """Writes the forced answer as a reader of the kept thinking would: the last integer in the
    input before the suffix, closed with "}" ("0}" when there is none). Records its inputs."""

    def __init__(self, tokenizer: Any, suffix: str):
        self.tokenizer, self.suffix = tokenizer, suffix
        self.inputs: list[list[int]] = []

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def encode_prompt(self, text: str) -> list[int]:
        return self.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def complete(self, inputs: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
        out = []
        for ids in inputs:
            self.inputs.append(list(ids))
            text = self.decode(ids)
            assert text.endswith(self.suffix)
            numbers = re.findall(r"\d+", text[: -len(self.suffix)])
            out.append(self.encode((numbers[-1] if numbers else "0") + "}")[:max_new_tokens])
        return out
