"""Configuration sections shared by several stages: model, data, sampling, rollout, reward,
optimiser, trainer, distributed training (see t1.config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
