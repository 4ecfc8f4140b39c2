"""Prompt curation (T1, arXiv 2501.11651): keep RL prompts the starting model finds hard.

The paper samples 16 answers per prompt and keeps prompts solved at most 30 % of the time,
after dropping prompts whose reference answer can't be extracted. Here the range and n are
configurable (`rl.curate`), and the report says how many survived and why the rest went.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from t1.data.problems import Problem
from t1.models.prompts import format_prompts
from t1.rollout import SamplingParams


@dataclass
class CurationReport:
    total: int = 0
    kept: int = 0
    unparseable: int = 0
    too_easy: int = 0
    too_hard: int = 0
    # pass rate of every prompt that was sampled, by problem id
    pass_rates: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"curation kept {self.kept}/{self.total} prompts "
            f"(dropped: {self.unparseable} unparseable reference, {self.too_easy} too easy, "
            f"{self.too_hard} too hard)"
        )


def parseable(problem: Problem, task: str) -> bool:
    """A reference the verifier can read (synthetic tasks: a well-formed spec)."""
    from t1.rewards import get_verifier

    verifier = get_verifier(task)
    check = getattr(verifier, "reference_ok", None)
    if check is not None:
        return bool(check(problem.answer))
    return bool(str(problem.answer).strip())


def curate_prompts(
    engine: Any,
    tokenizer: Any,
    problems: list[Problem],
    curate_cfg: Any,
    sampling: SamplingParams,
    reward_cfg: Any,
    data_cfg: Any,
    batch_prompts: int = 32,
) -> tuple[list[Problem], CurationReport]:
    """Sample `curate_cfg.n` answers per prompt and keep those within the pass-rate range."""
    from t1.rewards.reward import score_batch

    report = CurationReport(total=len(problems))
    candidates = []
    for p in problems:
        if parseable(p, reward_cfg.task):
            candidates.append(p)
        else:
            report.unparseable += 1
    kept: list[Problem] = []
    n = curate_cfg.n
    for start in range(0, len(candidates), batch_prompts):
        chunk = candidates[start : start + batch_prompts]
        prompts = format_prompts(tokenizer, chunk, data_cfg)
        rollouts = engine.generate(prompts, n, sampling)
        results = score_batch(
            [r.text for r in rollouts],
            [chunk[r.prompt_index].answer for r in rollouts],
            [r.finish_reason for r in rollouts],
            [r.response_ids for r in rollouts],
            reward_cfg.task,
            reward_cfg,
        )
        for i, p in enumerate(chunk):
            rate = sum(res.correct for res in results[i * n : (i + 1) * n]) / n
            report.pass_rates[p.id] = rate
            if rate < curate_cfg.min_pass:
                report.too_hard += 1
            elif rate > curate_cfg.max_pass:
                report.too_easy += 1
            else:
                kept.append(p)
    report.kept = len(kept)
    return kept, report
