"""Typed configuration: one dataclass per stage, loaded from YAML, overridden by dotted arguments.

    t1 rl configs/tiny.yaml rl.k=32 optim.lr=1e-5

Unknown keys and wrong types raise `ConfigError`, whose message names the key and the nearest
valid key; the CLI turns it into a one-line error and exit code 2.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from t1.errors import ConfigError
from t1.presets import apply_preset

# ----------------------------------------------------------------------------------------------
# Sections shared by several stages
# ----------------------------------------------------------------------------------------------


@dataclass
class TinyModelConfig:
    # architecture family of a model built from scratch
    arch: Literal["llama", "qwen2"] = "llama"
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    # longest sequence (prompt + response) the model accepts
    max_position: int = 512
    # characters of the character-level tokenizer, in addition to the special tokens
    alphabet: str = "0123456789+-*/=()<>[]{}.,:;?!'\"#%&$^_|\\ \nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class LoraConfig:
    # LoRA adapters (peft) on the target projections for `t1 rl` and `t1 sft`: the base weights
    # are frozen (kept in model.dtype), only the adapters train; 0 or null: full-weight training
    rank: int | None = 0
    # the adapters' output is scaled by alpha / rank (32 with rank 64: 0.5)
    alpha: float = 32.0
    # names of the linear modules that get adapters (the attention and MLP projections of
    # Llama/Qwen2/Mistral); an empty list is an error
    target_modules: list[str] = field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )
    # dropout on the adapters' input while the model is in training mode (t1 sft; t1 rl keeps
    # its policy in eval mode, so its log-probs are the sampler's distribution)
    dropout: float = 0.0
    # RUN/final: "merged" an HF folder with W + (alpha/rank) B A, "adapter" a peft adapter
    # folder (adapter_config.json, adapter_model.safetensors), "both" the merged folder with
    # the adapter folder in final/adapter/
    save: Literal["merged", "adapter", "both"] = "merged"

    @property
    def enabled(self) -> bool:
        return bool(self.rank)


@dataclass
class ModelConfig:
    # an HF folder, a hub id, a .gguf file, a run directory or checkpoint, or "tiny" (built fresh)
    path: str = "tiny"
    # name of the GGUF file inside `path` when `path` is a folder holding one
    gguf_file: str | None = None
    # the dtype the model computes in; training keeps float32 master weights and AdamW states
    # whatever this says (train.pure_low_precision keeps them in this dtype instead)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # "auto" picks cuda when available, else cpu
    device: str = "auto"
    # settings of a model built from scratch (path == "tiny")
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    # seed of the random initialisation of a model built from scratch (path == "tiny")
    seed: int = 0
    # cache a GGUF file's dequantised weights as an HF folder under ~/.cache/t1 (T1_CACHE overrides)
    cache_gguf: bool = True
    # train LoRA adapters instead of every weight (t1 rl, t1 sft)
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class DataConfig:
    # training problems (RL, synth) or traces (SFT): a JSONL, JSON, parquet, arrow or CSV file, a
    # `save_to_disk` folder, or a Hub dataset id (read with `datasets`; HF_DATASETS_OFFLINE=1
    # reads the local cache only)
    train: str | None = None
    # held-out problems for evaluation, in any form data.train takes
    eval: str | None = None
    # data.train's split, subset (config name) and file inside a Hub dataset repo (e.g.
    # sft.jsonl); split None: the only split, else "train"
    split: str | None = None
    subset: str | None = None
    files: str | None = None
    # the same for data.eval; split None: the only split, else "test"; without data.train
    # (t1 eval, t1 scale) data.split, subset and files serve where these are unset
    eval_split: str | None = None
    eval_subset: str | None = None
    eval_files: str | None = None
    # column holding the problem text, the chat list, the reference answer, the SFT response;
    # None: the usual names (see t1.data.fields); a dotted name reads a nested field
    prompt_field: str | None = None
    messages_field: str | None = None
    answer_field: str | None = None
    response_field: str | None = None
    # column holding a multiple-choice row's options (None: `choices` or `options`, or GPQA's
    # own columns; see t1.data.choices)
    choices_field: str | None = None
    # skip malformed rows (counted and reported) instead of stopping at the first one
    skip_bad_rows: bool = False
    # keep at most this many training problems (or SFT traces) / evaluation problems (None: all)
    max_train: int | None = None
    max_eval: int | None = None
    # instruction, answer format and verifier chosen together (t1.presets): math, aime, amc,
    # omni_math, qwen_math, deepscaler, gsm8k, gpqa, or none; keys set explicitly win
    preset: str | None = None
    # format of the user turn; {prompt} is the problem text
    prompt_template: str = "{prompt}"
    # system message for chat models (None: none)
    system_prompt: str | None = None
    # wrap prompts in the tokenizer's chat template: "auto" uses it when the tokenizer has one
    chat_template: Literal["auto", "on", "off"] = "auto"


@dataclass
class SamplingConfig:
    temperature: float = 1.0
    top_p: float = 1.0
    min_p: float = 0.0
    max_new_tokens: int = 256
    # generation stops after any of these strings (kept in the text)
    stop: list[str] = field(default_factory=list)


@dataclass
class RolloutConfig:
    engine: Literal["hf", "vllm"] = "hf"
    # sequences per generate call of the HF engine
    batch_size: int = 64
    # HF engine on CPU: intra-op threads while generating (null: 1 below 20 M parameters, else as set)
    hf_threads: int | None = None
    # vLLM: share of GPU memory for weights and KV cache when colocated with the learner
    gpu_memory_utilization: float = 0.4
    # vLLM: GPUs per rollout engine; that many consecutive ranks share one engine, its prompts
    # and its seed (the world size must be a multiple)
    tensor_parallel_size: int = 1
    # vLLM: after each rollout, sleep at level 2 (weights and KV cache released; the next
    # weight update refills them) so the learner can use the memory
    sleep_between_steps: bool = True


@dataclass
class RewardConfig:
    # verifier: math (boxed or free form), gsm8k, countdown, linear, ... (see t1.rewards)
    task: str = "math"
    correct_reward: float = 1.0
    wrong_reward: float = 0.0
    # penalties override the correctness reward; None switches one off (paper: -1 each)
    truncation_penalty: float | None = -1.0
    repetition_penalty: float | None = -1.0
    garbage_penalty: float | None = -1.0
    # a response repeats when more than `repetition_threshold` of its n-grams of this many tokens
    # (words when no token ids are given) are repeats: rep-n = 1 - distinct/total n-grams
    repetition_ngram: int = 20
    repetition_threshold: float = 0.5
    # garbage also covers mostly-noise text: share of text-like characters below this (None: off)
    garbage_min_text_share: float | None = None
    # hard time limit of one verification, in seconds
    timeout_s: float = 2.0
    # processes for batch scoring (0: score in this process)
    workers: int = 0
    # reward of a sample whose verifier raised or hung
    failure_reward: float = 0.0


@dataclass
class OptimConfig:
    lr: float = 1e-5
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    warmup_steps: int = 0
    schedule: Literal["cosine", "constant", "linear"] = "cosine"
    # the learning rate decays to lr * min_lr_ratio at the last step
    min_lr_ratio: float = 0.1
    # clip the global gradient norm to this (None: no clipping)
    grad_clip: float | None = 1.0
    # micro-batches accumulated per optimiser step
    grad_accum: int = 1


@dataclass
class TrainerConfig:
    # optimiser steps
    steps: int = 100
    seed: int = 0
    # run directory
    out: str = "runs/run"
    log_every: int = 1
    # checkpoint every N steps (0: only at the end)
    save_every: int = 50
    # keep the newest N complete checkpoints (0: all)
    keep_last: int = 2
    # write sample rollouts every N steps (0: never)
    sample_every: int = 10
    # evaluate on the held-out set every N steps (0: only at the end, if data.eval is set)
    eval_every: int = 0
    # stop after this many consecutive steps with a NaN/inf loss or gradient
    max_bad_steps: int = 3
    # rich progress bar on a TTY
    progress: bool = True
    # trackers that receive the step metrics besides metrics.jsonl: TensorBoard (RUN/tb/) and
    # Weights & Biases (extra `wandb`; WANDB_PROJECT, WANDB_MODE, WANDB_DIR... are honoured)
    report_to: list[Literal["tensorboard", "wandb"]] = field(
        default_factory=lambda: ["tensorboard"]
    )


@dataclass
class TrainConfig:
    # shard the learner (policy, EMA anchor, SFT model) with FSDP2 per decoder layer: "auto" does
    # when torchrun starts more than one process, true also in one process (for cpu_offload),
    # false never (then each of N processes holds the whole model and gradients are summed)
    fsdp: bool | Literal["auto"] = "auto"
    # dtype of the gradient reduction over processes (FSDP2's reduce-scatter)
    reduce_dtype: Literal["float32", "bfloat16"] = "float32"
    # weights and AdamW states in model.dtype instead of float32 masters with model.dtype as the
    # compute dtype: half the memory, but in bfloat16 updates smaller than the weights' rounding
    # step (lr 5e-7 on weights ~0.02) are lost; warns
    pure_low_precision: bool = False
    # recompute each decoder layer's activations in backward instead of keeping them
    activation_checkpointing: bool = False
    # FSDP2 CPU offload: sharded weights, gradients and AdamW states in CPU memory, the optimiser
    # step on CPU (needs FSDP: train.fsdp true, or auto under torchrun)
    cpu_offload: bool = False
    # keep the EMA anchor's shards in CPU memory; its forward gathers them a layer at a time
    # (needs FSDP)
    anchor_on_cpu: bool = False


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
            prompts_per_step=8,
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


# ----------------------------------------------------------------------------------------------
# Loading, overriding, checking
# ----------------------------------------------------------------------------------------------


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """(key, type, default, comment) of every leaf key, for `t1 SUB --help`."""
    return _describe_section(cls(), "")


def _describe_section(section: Any, prefix: str) -> list[tuple[str, str, str, str]]:
    cls = type(section)
    comments = _field_comments(cls)
    rows = []
    for f in dataclasses.fields(cls):
        tp = _hints(cls)[f.name]
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(tp):
            rows.extend(_describe_section(value, prefix + f.name + "."))
        else:
            rows.append((prefix + f.name, _type_name(tp), repr(value), comments.get(f.name, "")))
    return rows


def _field_comments(cls: type) -> dict[str, str]:
    """The `# comment` lines right above each field in the class source."""
    import inspect

    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    out, pending = {}, []
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
        elif ":" in stripped and not stripped.startswith(("def ", '"')):
            name = stripped.split(":", 1)[0].strip()
            if name.isidentifier() and pending:
                out[name] = " ".join(pending)
            pending = []
        else:
            pending = []
    return out


def dotted_keys(cls: type, prefix: str = "") -> list[str]:
    """Every valid dotted key of a dataclass, sections included."""
    keys = []
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        keys.append(key)
        tp = _hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            keys.extend(dotted_keys(tp, key + "."))
    return keys


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _nearest(key: str, cls: type) -> str:
    """' (did you mean ...)' with the valid key closest to `key`, by its last part first."""
    candidates = dotted_keys(cls)
    leaf = key.rsplit(".", 1)[-1]
    by_leaf: dict[str, str] = {}
    for c in candidates:
        by_leaf.setdefault(c.rsplit(".", 1)[-1], c)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:
        leaves = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6)
        close = [by_leaf[leaves[0]]] if leaves else []
    if not close:
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.0)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return str(tp).replace("typing.", "")
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`, converting where lossless (int -> float)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    bad = ConfigError(
        f"config key '{key}': expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"
    )
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad
        return _build(tp, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise bad
    if origin is Literal:
        if value in args:
            return value
        raise bad
    if tp is type(None):
        if value is None:
            return None
        raise bad
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise bad
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.lower()]
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 1e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    raise bad


def _build(
    cls: type, data: dict, prefix: str = "", root: type | None = None, base: Any = None
) -> Any:
    """Set the keys of `data` on `base` (the section's defaults as the stage declares them)."""
    root = root or cls
    obj = base if base is not None else cls()
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for name, value in data.items():
        key = prefix + str(name)
        if name not in names:
            raise ConfigError(f"unknown config key '{key}'{_nearest(key, root)}")
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"config key '{key}': expected a mapping (section), got {value!r}"
                )
            value = _build(tp, value, key + ".", root, getattr(obj, name))
        else:
            value = _coerce(value, tp, key)
        setattr(obj, name, value)
    return obj


class _Loader(yaml.SafeLoader):
    """YAML whose booleans are YAML 1.2's, true and false: `on`, `off`, `yes`, `no` stay text,
    so `data.chat_template: on` is the string a Literal field expects."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# YAML 1.1's other boolean words, which a bool field still takes
_BOOL_WORDS = {"yes": True, "on": True, "no": False, "off": False}


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def _takes_text(tp: Any, text: str) -> bool:
    """Whether an override's text is its value as written: a str field, or a Literal naming it.

    ("model.path=123" is the path "123", "data.chat_template=on" the string "on".)
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is str:
        return True
    if origin is Literal:
        return text in args
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in ("null", "~"):
            return False
        return any(_takes_text(a, text) for a in args)
    return False


def _parse_override(item: str, cls: type) -> tuple[list[str], Any]:
    """(key path, value) of one `key=value`; the value is read as the key's type expects."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form key=value")
    key, text = item.split("=", 1)
    key = key.strip()
    path = key.split(".")
    tp: Any = cls
    for i, part in enumerate(path):
        if not dataclasses.is_dataclass(tp) or part not in _hints(tp):
            raise ConfigError(f"unknown config key '{key}'{_nearest(key, cls)}")
        tp = _hints(tp)[part]
        if i < len(path) - 1 and typing.get_origin(tp) is dict:
            return path[: i + 1], {".".join(path[i + 1 :]): _yaml(text)}
    if _takes_text(tp, text):
        return path, text
    try:
        return path, _yaml(text)
    except yaml.YAMLError:
        return path, text


def _set_path(data: dict, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        node = data.get(part)
        if not isinstance(node, dict):
            node = data[part] = {}
        data = node
    if isinstance(value, dict) and isinstance(data.get(path[-1]), dict):
        data[path[-1]].update(value)
    else:
        data[path[-1]] = value


def _legacy_tensorboard(data: dict, value: Any) -> None:
    """`trainer.tensorboard: BOOL`, which `trainer.report_to` replaced: true puts TensorBoard in
    the list, false takes it out, so configs and run directories written before still load."""
    if not isinstance(value, bool):
        raise ConfigError(
            f"config key 'trainer.tensorboard' (replaced by 'trainer.report_to'): expected bool, "
            f"got {value!r}; write e.g. trainer.report_to=[tensorboard,wandb]"
        )
    warnings.warn(
        "config key 'trainer.tensorboard' is replaced by 'trainer.report_to' "
        "(e.g. trainer.report_to=[tensorboard,wandb]); read as such",
        FutureWarning,
        stacklevel=4,
    )
    trainer = data.setdefault("trainer", {})
    report = trainer.get("report_to", ["tensorboard"]) if isinstance(trainer, dict) else None
    if isinstance(report, list):  # anything else is left for the type check to report
        rest = [r for r in report if r != "tensorboard"]
        trainer["report_to"] = ["tensorboard", *rest] if value else rest


def _legacy_key(cls: type, data: dict, item: str | None = None) -> bool:
    """Read a replaced key of the file's `data` (item None) or of the override `item` into
    `data` (in place); True when `item` was one."""
    if "trainer" not in _hints(cls):
        return False
    if item is None:
        trainer = data.get("trainer")
        if isinstance(trainer, dict) and "tensorboard" in trainer:
            _legacy_tensorboard(data, trainer.pop("tensorboard"))
        return False
    key, _, text = item.partition("=")
    if key.strip() != "trainer.tensorboard":
        return False
    try:
        _legacy_tensorboard(data, yaml.safe_load(text))
    except yaml.YAMLError:
        _legacy_tensorboard(data, text)
    return True


def load_config(cls: type, path: str | Path | None = None, overrides: list[str] = ()) -> Any:
    """Build a stage config from a YAML file (optional) and `key.sub=value` overrides."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = _yaml(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{p}{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections")
        data = loaded or {}
    _legacy_key(cls, data)
    for item in overrides:
        if _legacy_key(cls, data, item):
            continue
        keys, value = _parse_override(item, cls)
        _set_path(data, keys, value)
    return apply_preset(_build(cls, data), _dotted(data))


def _dotted(data: dict, prefix: str = "") -> set[str]:
    """Every dotted key written in a nested mapping ("data", "data.preset", ...)."""
    keys = set()
    for name, value in data.items():
        keys.add(prefix + str(name))
        if isinstance(value, dict):
            keys |= _dotted(value, f"{prefix}{name}.")
    return keys


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically (a resume command reads it back)."""
    import os

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)
