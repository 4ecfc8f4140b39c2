"""Attempters: where the attempts (and the checks of attempts) in a trace come from.

An `Attempter` gives, for a batch of problems, a pool of attempts per problem, and for chosen
(problem, attempt, verdict) triples the text of the check: a critique of a wrong attempt or a
verification of a right one. Grading is not its job: `t1.data.synth` grades every attempt with
the task's verifier, so a pool may hold anything.

    TaskAttempter    a synthetic task's programmatic solver and its realistic mistakes;
                     rule-based checks (every arithmetic statement true)
    ModelAttempter   any model through a `RolloutEngine`, sampled at several temperatures;
                     checks written by the same engine from the critic / verify prompt templates

It also says how its pieces are laid out: `inner` joins attempt and check, `sep` joins
attempts, `answer_line` writes the final answer, `clean` a direct solution.

`reference_attempt` turns a problem's worked reference solution (a GSM8K answer with its
"#### N" tail, a MATH solution) into an attempt, which trace synthesis uses as the last attempt
when no sampled one is right.
"""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Any, Protocol

from t1.data.problems import Problem, reduce_gsm8k
from t1.data.tasks import Attempt, Task
from t1.errors import ConfigError

# GSM8K's calculator annotations, "48/2 = <<48/2=24>>24": a model should not learn to write them
_CALCULATOR = re.compile(r"<<[^<>\n]*>>")


class Attempter(Protocol):
    # the t1.rewards verifier that grades this attempter's attempts
    verifier_task: str
    # joins an attempt and its check, and consecutive attempts
    inner: str
    sep: str

    def attempts(self, problems: list[Problem], rng: random.Random) -> list[list[Attempt]]:
        """A pool of attempts for each problem (right and wrong, in any order)."""
        ...

    def checks(
        self, problems: list[Problem], attempts: list[Attempt], correct: list[bool]
    ) -> list[str]:
        """The check of each attempt: a critique where not correct, else a verification."""
        ...

    def answer_line(self, answer: str) -> str: ...

    def clean(self, problem: Problem, attempt: Attempt) -> str:
        """A direct solution from a right attempt (the "clean" ablation)."""
        ...


class TaskAttempter:
    """A synthetic task's solver: one correct attempt plus `n_wrong` distinct mistakes."""

    inner = " "
    sep = "\n"

    def __init__(self, task: Task, n_wrong: int, mistakes: list[str] | None = None) -> None:
        unknown = sorted(set(mistakes or ()) - set(task.mistake_kinds))
        if unknown:
            raise ConfigError(
                f"synth.mistakes: {unknown} are not mistakes of task '{task.name}' "
                f"(valid: {', '.join(task.mistake_kinds)})"
            )
        self.task = task
        self.verifier_task = task.verifier or task.name
        self.n_wrong = n_wrong
        self.mistakes = list(mistakes or task.mistake_kinds)

    def _wrongs(self, problem: Problem, correct: Attempt | None, rng: random.Random) -> list:
        """Up to n_wrong wrong attempts, distinct from each other and from `correct`.

        Distinct means a different text and a different `data["key"]` (the task's notion of the
        same attempt: "7+9" and "9+7" are one), else a different answer.
        """
        out: list[Attempt] = []
        seen = {correct.text, correct.data.get("key", correct.answer)} if correct else set()
        for _ in range(6 * self.n_wrong):
            if len(out) >= self.n_wrong:
                break
            attempt = self.task.wrong_attempt(problem, rng, rng.choice(self.mistakes))
            if attempt is None:
                continue
            key = attempt.data.get("key", attempt.answer)
            if attempt.text in seen or key in seen:
                continue
            seen.update((attempt.text, key))
            out.append(attempt)
        return out

    def attempts(self, problems: list[Problem], rng: random.Random) -> list[list[Attempt]]:
        pools = []
        for problem in problems:
            correct = self.task.solve(problem, rng)
            pools.append([*self._wrongs(problem, correct, rng), *([correct] if correct else [])])
        return pools

    def checks(
        self, problems: list[Problem], attempts: list[Attempt], correct: list[bool]
    ) -> list[str]:
        return [
            self.task.verification(p, a) if ok else self.task.critique(p, a)
            for p, a, ok in zip(problems, attempts, correct, strict=True)
        ]

    def answer_line(self, answer: str) -> str:
        return self.task.answer_line(answer)

    def clean(self, problem: Problem, attempt: Attempt) -> str:
        return self.task.clean_solution(problem, attempt)


def fill(template: str, **fields: str) -> str:
    """Replace {name} placeholders by plain substitution (model text may hold braces)."""
    for name, value in fields.items():
        template = template.replace("{" + name + "}", value)
    return template


class ModelAttempter:
    """Attempts sampled from a model at several temperatures; critiques by the same model.

    `engine` is any `RolloutEngine`; `format_prompt(text) -> str` turns a problem into the
    model's prompt (t1.models.build_prompt with the run's DataConfig, by default);
    `format_check(text) -> str` does the same for a critic or verification request, which is
    not a problem and so takes no problem template (default: `format_prompt`).
    """

    inner = "\n\n"
    sep = "\n\n"
    answer_prefix = "Final answer: \\boxed{"

    def __init__(
        self, engine: Any, format_prompt: Any, synth_cfg: Any, format_check: Any = None
    ) -> None:
        self.engine = engine
        self.format_prompt = format_prompt
        self.format_check = format_check or format_prompt
        self.cfg = synth_cfg
        self.verifier_task = synth_cfg.verifier

    def _sampling(self, temperature: float, max_new_tokens: int, rng: random.Random) -> Any:
        from t1.rollout.base import SamplingParams

        seed = rng.randrange(2**31)
        return SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)

    def attempts(self, problems: list[Problem], rng: random.Random) -> list[list[Attempt]]:
        prompts = [self.format_prompt(p.prompt_input) for p in problems]
        pools: list[list[Attempt]] = [[] for _ in problems]
        for temperature in self.cfg.temperatures:
            sampling = self._sampling(temperature, self.cfg.max_new_tokens, rng)
            for r in self.engine.generate(prompts, self.cfg.samples, sampling):
                text = r.text.strip()
                if r.finish_reason == "length" or not text:
                    continue  # a cut-off attempt has no answer to grade or critique
                attempt = Attempt(text, None, "model", {"temperature": temperature})
                pools[r.prompt_index].append(attempt)
        return pools

    def checks(
        self, problems: list[Problem], attempts: list[Attempt], correct: list[bool]
    ) -> list[str]:
        if not problems:
            return []
        prompts = []
        for p, a, ok in zip(problems, attempts, correct, strict=True):
            template = self.cfg.verify_template if ok else self.cfg.critic_template
            user = fill(template, problem=p.prompt, attempt=a.text, answer=p.answer)
            prompts.append(self.format_check(user))
        rng = random.Random(self.cfg.seed)
        sampling = self._sampling(self.cfg.critic_temperature, self.cfg.critic_max_new_tokens, rng)
        out = [""] * len(prompts)
        for r in self.engine.generate(prompts, 1, sampling):
            out[r.prompt_index] = r.text.strip()
        return out

    def answer_line(self, answer: str) -> str:
        return f"{self.answer_prefix}{answer}}}"

    def clean(self, problem: Problem, attempt: Attempt) -> str:
        return attempt.text


def model_attempter(synth_cfg: Any, data_cfg: Any) -> ModelAttempter:
    """A `ModelAttempter` for `synth.model` through `synth.rollout` (t1.models, t1.rollout)."""
    from t1.models import build_prompt, load_model
    from t1.rollout import make_engine

    model, tokenizer = load_model(synth_cfg.model)
    engine = make_engine(synth_cfg.rollout, model, tokenizer)
    # a critique request is asked as written: the problem template (a preset's "reason step by
    # step, answer in \\boxed{}") is for problems
    plain = dataclasses.replace(data_cfg, prompt_template="{prompt}")
    return ModelAttempter(
        engine,
        lambda text: build_prompt(tokenizer, text, data_cfg),
        synth_cfg,
        lambda text: build_prompt(tokenizer, text, plain),
    )


def rewrite_reference(solution: str) -> str:
    """A worked reference solution as an attempt's text: GSM8K's calculator annotations
    dropped and its "#### N" tail turned into a boxed answer; a MATH solution as written.

    >>> rewrite_reference("48/2 = <<48/2=24>>24 in May.\\n#### 24")
    '48/2 = 24 in May.\\nSo the answer is \\\\boxed{24}.'
    """
    text = _CALCULATOR.sub("", solution).strip()
    answer = reduce_gsm8k(text)
    if answer is not None:
        body = text[: text.rindex("####")].rstrip()
        text = f"{body}\nSo the answer is \\boxed{{{answer}}}."
    return text


def reference_attempt(problem: Problem) -> Attempt | None:
    """The problem's worked solution (meta["solution"]) as an attempt, or None without one."""
    solution = problem.meta.get("solution")
    if not isinstance(solution, str) or not solution.strip():
        return None
    return Attempt(rewrite_reference(solution), None, "reference")
