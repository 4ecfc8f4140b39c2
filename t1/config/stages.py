"""Configuration of the algorithms (RL, SFT, synthesis, evaluation, scaling) and one dataclass per
stage, the demo's included (see t1.config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from t1.config.sections import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    RewardConfig,
    RolloutConfig,
    SamplingConfig,
    TrainConfig,
    TrainerConfig,
)

# ----------------------------------------------------------------------------------------------
# Stage-specific sections
# ----------------------------------------------------------------------------------------------


@dataclass
class CurateConfig:
    # filter RL prompts by the starting model's pass rate before training
    enabled: bool = False
    # samples per prompt used to estimate the pass rate (paper: 16)
    n: int = 16
    # keep prompts with min_pass <= pass rate <= max_pass (paper: <= 0.3)
    min_pass: float = 0.0
    max_pass: float = 0.3
    temperature: float = 1.0


@dataclass
class RLConfig:
    # samples per prompt (paper: 64)
    k: int = 8
    prompts_per_step: int = 8
    # KL coefficient of the leave-one-out-normalised sequence KL in the advantage
    beta: float = 0.01
    kl_estimator: Literal["k1", "k2", "k3"] = "k1"
    # entropy bonus coefficient gamma in L = L_pg - gamma * H
    entropy_coef: float = 0.001
    # reference for the KL term: EMA of the policy (dynamic anchor), the initial policy, or none
    anchor: Literal["ema", "frozen", "none"] = "ema"
    # theta_ref <- alpha * theta_ref + (1 - alpha) * theta
    ema_alpha: float = 0.95
    # update the EMA anchor every N optimiser steps
    ema_every: int = 1
    # advantage baseline: T1's leave-one-out, GRPO's group normalisation, or Dr. GRPO's mean
    advantage: Literal["rloo", "grpo", "drgrpo"] = "rloo"
    # train on this many of the K samples per prompt (None: all)
    train_k: int | None = None
    select: Literal["all", "random", "balanced"] = "all"
    # drop prompts whose K rewards are all equal (no signal)
    drop_equal_groups: bool = False
    # PPO clipped-ratio loss when set; needed when updates_per_batch > 1
    clip_eps: float | None = None
    # optimiser steps taken on one rollout batch
    updates_per_batch: int = 1
    loss_agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "constant"] = (
        "token-mean"
    )
    # sequences per forward/backward pass of the learner
    micro_batch_size: int = 16
    # the learner skips responses whose advantage is 0 when there is no entropy bonus: their
    # loss term and its gradient are exactly 0 (the batch's token and row counts still include
    # them); ratio diagnostics then cover the responses it ran
    skip_zero_advantage: bool = True
    # log pi_theta of the sampled tokens for the KL and the PPO ratio: the sampler's own
    # (no extra forward pass; the HF engine reports log softmax(logits/T), what the learner
    # computes) or recomputed by the learner (a bf16 vLLM and the learner disagree); auto:
    # sampler with the HF engine, learner with vLLM
    old_logp: Literal["auto", "sampler", "learner"] = "auto"
    # truncated importance sampling: each token's policy-gradient term is multiplied by
    # min(pi_learner / pi_sampler, tis_cap), correcting for the sampler/learner mismatch
    # (null: off; e.g. 2.0). Costs the learner's log-prob pass when old_logp is sampler
    tis_cap: float | None = None
    # sampling temperature of the periodic held-out evaluation (trainer.eval_every)
    eval_temperature: float = 1.0
    curate: CurateConfig = field(default_factory=CurateConfig)


@dataclass
class SFTConfig:
    # passes over the training traces; the run stops after this many epochs or after
    # trainer.steps optimiser steps, whichever comes first (trainer.steps = 0: epochs only)
    epochs: int = 1
    # sequences per optimiser step (before packing)
    batch_size: int = 16
    # sequences longer than this many tokens are dropped (counted)
    max_len: int = 512
    # pack several sequences into rows as long as the micro-batch's longest one (loss is
    # unchanged); off: one sequence a row, sorted by length
    pack: bool = True
    # share of traces held out for the validation loss
    eval_fraction: float = 0.05
    # sequences per forward/backward pass; a step accumulates gradients over
    # max(optim.grad_accum, ceil(batch_size / micro_batch_size)) micro-batches
    micro_batch_size: int = 16


@dataclass
class SynthConfig:
    # synthetic task to generate problems for (countdown, linear, ...), or None to read data.train
    task: str | None = "countdown"
    # problems to generate
    n: int = 1000
    # failed attempts per trace: probabilities of 0, 1, 2, ... failures
    failures: list[float] = field(default_factory=lambda: [0.3, 0.4, 0.3])
    # clean: direct correct solutions only (ablation)
    style: Literal["trial-and-error", "clean"] = "trial-and-error"
    # drop traces longer than this many characters
    max_chars: int = 2000
    # difficulty knobs passed to the task generator
    task_args: dict[str, Any] = field(default_factory=dict)
    # where the traces go (JSONL); summary.json and the problem sets are written beside it
    out: str = "traces.jsonl"
    seed: int = 0
    # kinds of wrong attempts the task's solver makes (empty: every kind the task knows)
    mistakes: list[str] = field(default_factory=list)
    # one phrase is drawn before each check of an attempt ("" allowed: none)
    check_phrases: list[str] = field(
        default_factory=lambda: ["Wait, let me check.", "Let me check.", "Check:"]
    )
    # one phrase is drawn to open each attempt that follows a failed one ("" allowed: none)
    retry_phrases: list[str] = field(
        default_factory=lambda: ["Hmm, that's not right.", "Let me try again.", ""]
    )
    # more problem sets of a synthetic task, written beside `out` as NAME.jsonl, disjoint
    # from the trace problems (train.jsonl) and from each other, e.g. {rl: 500, test: 500}
    splits: dict[str, int] = field(default_factory=dict)
    # problems from data.train: the t1.rewards verifier that grades attempts
    verifier: str = "math"
    # problems from data.train: the model that makes attempts and writes critiques
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    # problems from data.train: when no sampled attempt is right, end the trace with the row's
    # worked solution (a GSM8K answer with reasoning before "#### N", a MATH `solution`),
    # after the model's wrong attempts and critiques, instead of dropping the problem
    reference_fallback: bool = True
    # problems from data.train: attempts sampled per problem at each of these temperatures
    temperatures: list[float] = field(default_factory=lambda: [0.6, 1.0])
    samples: int = 4
    max_new_tokens: int = 1024
    # problems from data.train: critic prompt for a wrong attempt; {problem}, {attempt} and
    # {answer} (the reference) are filled in
    critic_template: str = (
        "Problem:\n{problem}\n\nAttempt:\n{attempt}\n\nThe attempt's final answer is wrong "
        "(the correct answer is {answer}). In one to three sentences, point out the first step "
        "that is wrong and why. Do not state the correct final answer."
    )
    # problems from data.train: prompt asking the model to verify a right attempt (same fields)
    verify_template: str = (
        "Problem:\n{problem}\n\nSolution:\n{attempt}\n\nIts final answer, {answer}, is correct. "
        "In one to three sentences, re-check the key steps and confirm the answer."
    )
    critic_temperature: float = 0.7
    critic_max_new_tokens: int = 256


@dataclass
class EvalConfig:
    # samples per problem
    n: int = 1
    # k values for pass@k and maj@k
    ks: list[int] = field(default_factory=lambda: [1])
    # bootstrap resamples for the 95 % interval
    bootstrap: int = 1000
    # run directory that receives eval/<name>.json and eval/<name>.samples.jsonl
    out: str = "runs/eval"
    # name of the result files (None: the stem of data.eval)
    name: str | None = None
    # rich progress bar on a TTY
    progress: bool = True


@dataclass
class ScaleConfig:
    # thinking budgets in tokens; the largest is generated once, the rest are truncations
    budgets: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    # appended after the truncated thinking to force an answer (None: the task's default)
    suffix: str | None = None
    # tokens allowed for the forced answer
    answer_tokens: int = 16
    # model that writes the forced answer (None: the policy itself)
    summariser: str | None = None
    # also measure majority vote over k samples of budget b/k at equal total tokens
    parallel: bool = True
    # numbers of parallel samples k compared at equal total tokens (majority vote over k)
    parallel_ks: list[int] = field(default_factory=lambda: [2, 4])
    # samples per problem (None: the largest parallel k, or 1 without the parallel comparison)
    n: int | None = None
    # sequences per batch of the greedy forced-answer completion
    answer_batch_size: int = 32
    # bootstrap resamples for the 95 % intervals
    bootstrap: int = 1000
    # run directory that receives eval/scale.json and plots/scale.png + .csv
    out: str = "runs/scale"
    # rich progress bar on a TTY
    progress: bool = True


# ----------------------------------------------------------------------------------------------
# Stage configs (what a YAML file holds)
# ----------------------------------------------------------------------------------------------


@dataclass
class SynthStage:
    synth: SynthConfig = field(default_factory=SynthConfig)
    data: DataConfig = field(default_factory=DataConfig)


@dataclass
class SFTStage:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, warmup_steps=10))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(out="runs/sft"))
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class RLStage:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=1.2))
    reward: RewardConfig = field(default_factory=RewardConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(out="runs/rl"))
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class EvalStage:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0


@dataclass
class ScaleStage:
    # one or several models (checkpoints) drawn on one figure
    models: list[str] = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    seed: int = 0


@dataclass
class DemoData:
    # synthetic task and its difficulty knobs (see t1.data.tasks)
    task: str = "countdown"
    task_args: dict[str, Any] = field(
        default_factory=lambda: {"count": 5, "low": 1, "high": 9, "ops": "+", "pick": 2}
    )
    # problems whose trial-and-error traces train the SFT stage
    n_sft: int = 4000
    # RL prompt pool before curation
    n_rl: int = 600
    # held-out test problems (disjoint from both, checked)
    n_test: int = 500


@dataclass
class DemoEval:
    # samples per test problem
    n: int = 2
    temperature: float = 1.0
    max_new_tokens: int = 200


@dataclass
class DemoStage:
    data: DemoData = field(default_factory=DemoData)
    model: ModelConfig = field(default_factory=ModelConfig)
    # short, regular traces: a character-level model must learn them in minutes
    synth: SynthConfig = field(
        default_factory=lambda: SynthConfig(
            task="countdown",
            failures=[0.25, 0.35, 0.25, 0.15],
            check_phrases=["Check:"],
            retry_phrases=[""],
            max_chars=400,
        )
    )
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(epochs=4, batch_size=32, max_len=256))
    sft_optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=3e-3, warmup_steps=20, weight_decay=0.01)
    )
    rl: RLConfig = field(
        default_factory=lambda: RLConfig(
            k=8,
            # 16 prompts x 8 samples a step: at 8 prompts the seed-4 run (its SFT model the
            # weakest, 31 %) gained +7.5 points with 1 thread; at 16, +15.1 (README "Results")
            prompts_per_step=16,
            micro_batch_size=32,
            # off at demo scale: with it (configs/ablations/curate.yaml) held-out accuracy
            # was 2.6 points lower over seeds 0-2; with the -1 penalties also on, 18.4 lower
            # (seed 0)
            curate=CurateConfig(enabled=False, n=2, max_pass=0.75, temperature=1.0),
        )
    )
    # lr 1e-4: from the same SFT model, 90 steps at 3e-4 lost 7.9 points (KL spikes to 27
    # nats), 1e-4 gained 9.0 on 300 held-out problems
    rl_optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-4, schedule="constant", warmup_steps=5)
    )
    # sampling of the RL rollouts (paper: temperature 1.2)
    sampling: SamplingConfig = field(
        default_factory=lambda: SamplingConfig(temperature=1.2, max_new_tokens=200)
    )
    # no -1 penalties at demo scale: a wrong answer scores 0, so a retry chain that runs out of
    # budget (truncated, or no answer: garbage) scoring -1 taught the policy to commit early;
    # measured over seeds 0-2: +5.1 points of held-out accuracy without them (README "Results")
    reward: RewardConfig = field(
        default_factory=lambda: RewardConfig(
            task="countdown",
            truncation_penalty=None,
            repetition_penalty=None,
            garbage_penalty=None,
        )
    )
    # RL optimiser steps
    rl_steps: int = 90
    eval: DemoEval = field(default_factory=DemoEval)
    # truncation at each budget, and beside it majority vote over k = 2, 4 samples of budget b/k
    # (the same tokens spent in parallel): 4 samples a test problem
    scale: ScaleConfig = field(
        default_factory=lambda: ScaleConfig(budgets=[8, 16, 32, 64, 128, 200], parallel_ks=[2, 4])
    )
    seed: int = 0


STAGES: dict[str, type] = {
    "synth": SynthStage,
    "sft": SFTStage,
    "rl": RLStage,
    "eval": EvalStage,
    "scale": ScaleStage,
}
