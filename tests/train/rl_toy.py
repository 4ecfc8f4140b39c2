"""A toy RL task and a scripted engine shared by the RL trainer tests.

The task: answer with a digit first. A random tiny model does that about 10 % of the time
(10 digits in a ~100-character vocabulary), so a working trainer must raise the reward
quickly, and a wrong loss sign or advantage drives it to zero instead.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from t1.config import RLStage, TinyModelConfig, load_config
from t1.data.problems import Problem
from t1.rewards import RewardResult, register_verifier
from t1.rollout import Rollout, SamplingParams

TASK = "toy-digit-first"


class DigitFirst:
    """Correct when the response starts with a digit."""

    def __init__(self, **kwargs: object) -> None:
        pass

    def __call__(self, text: str, reference: str) -> RewardResult:
        ok = bool(text) and text[0].isdigit()
        return RewardResult(score=float(ok), correct=ok, answer=text[:1] or None)


register_verifier(TASK, DigitFirst)

TINY = TinyModelConfig(
    hidden_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    intermediate_size=128,
    max_position=128,
)


def toy_problems(n: int = 16) -> list[Problem]:
    return [Problem(id=str(i), prompt=f"q{i}", answer="0", task=TASK) for i in range(n)]


def toy_config(out: str, *overrides: str) -> RLStage:
    cfg = load_config(
        RLStage,
        None,
        [
            f"trainer.out={out}",
            "trainer.progress=false",
            "trainer.report_to=[]",
            "trainer.save_every=0",
            "trainer.sample_every=0",
            f"reward.task={TASK}",
            "reward.truncation_penalty=null",
            "reward.repetition_penalty=null",
            "reward.garbage_penalty=null",
            "sampling.max_new_tokens=4",
            "sampling.temperature=1.0",
            "rl.k=8",
            "rl.prompts_per_step=4",
            "rl.beta=0.0",
            "rl.entropy_coef=0.0",
            "optim.lr=0.01",
            "optim.schedule=constant",
            "optim.betas=[0.9, 0.99]",
            *overrides,
        ],
    )
    cfg.model.tiny = TINY
    return cfg


# Adam as plain gradient descent, for tests that compare two updates: its first step
# lr·g/(|g| + eps) moves by at most lr/eps·|Δg| when g moves by Δg, whatever g is; at the
# default eps = 1e-8 a rounding of a g near eps would move the step by ~lr. No clipping, so the
# gradients compared are the ones the optimiser used.
ADAM_AS_SGD = ("optim.eps=1.0", "optim.grad_clip=null")


def nudge(model: torch.nn.Module, scale: float) -> None:
    """Add scale·N(0, 1) noise to every parameter (seeded by its size): an anchor away from the
    policy, the same in every process."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))


class ScriptedEngine:
    """Deterministic responses that depend only on the prompt and the sample's index.

    The same global batch comes out however prompts are split across ranks, which lets a test
    compare an N-process update with the 1-process one.
    """

    def __init__(self, tokenizer, length: int = 5):
        self.tokenizer, self.length = tokenizer, length
        self.alphabet = "0123456789abcdef"

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> list[Rollout]:
        out = []
        for i, prompt in enumerate(prompts):
            for j in range(n):
                h = hashlib.sha256(f"{prompt}|{j}".encode()).hexdigest()
                size = 1 + int(h[0], 16) % self.length
                text = "".join(self.alphabet[int(c, 16)] for c in h[1 : 1 + size])
                ids = self.tokenizer(text, add_special_tokens=False).input_ids
                out.append(
                    Rollout(
                        prompt_index=i,
                        prompt_ids=self.tokenizer(prompt, add_special_tokens=False).input_ids,
                        response_ids=ids,
                        logprobs=[0.0] * len(ids),
                        finish_reason="stop",
                        text=text,
                    )
                )
        return out

    def update_weights(self, model) -> None:
        pass


def record_rollouts(trainer: Any) -> list:
    """The rollouts the trainer's engine returns from now on, as it returns them."""
    seen: list = []
    generate = trainer.engine.generate

    def recording(*args, **kwargs):
        out = generate(*args, **kwargs)
        seen.extend(out)
        return out

    trainer.engine.generate = recording
    return seen
