"""The memory plan: bytes per rank of the learner, the EMA anchor, the rollout engine and the
activations, before anything is loaded; and a clear error when they cannot fit a device.

P parameters, N = ranks_per_node x nodes ranks (FSDP2 shards over all of them), c bytes per
element of the compute dtype (bfloat16: 2), L = the learner's sequence length (prompt +
response), b its micro-batch, T = b x L tokens. Per rank (the 4s below are the float32 masters'
bytes; c with `train.pure_low_precision`):

    weights      4 P / N       fp32 master shard
    optimizer    8 P / N       AdamW's exp_avg and exp_avg_sq, fp32 shards
    anchor       4 P / N       the EMA anchor's fp32 shard (on the host with anchor_on_cpu)
    gradients    4 P / N       fp32 shards (reduce-scatter in fp32); the learner phase only
    unsharded    2 c (R + 2 Y) under FSDP2: the root's parameters R (embeddings, final norm,
                               untied head), which FSDP2 keeps unsharded through forward and
                               backward, and two decoder layers of Y parameters (the running
                               one and the prefetched one), in the compute dtype, with as much
                               again for their unsharded gradients before the reduce-scatter;
                 c P           without FSDP2 (one rank): the compute-dtype copy of the model
    activations  T A (per layer, kept for backward; see `layer_activation_bytes`) x layers, or
                 with activation checkpointing T c H x layers (the layers' inputs) + T A (one
                 layer recomputed in backward); plus the final norm's T (4 + 2 c) H and the
                 padded batch's boolean attention mask b L^2
    head         the chunked output head (`t1.rollout.head`): chunk V (8 + 2 c) for a chunk's
                 logits, probabilities and their gradient, V H (4 + 2 c) for the weight's
                 gradient accumulated in fp32 with a per-chunk product (4 V H in fp32), and
                 T (c H + 8) saved; without it the full logits, T V (2 c + 16): the
                 logits, their fp32 copy and the tempered one, and their gradients (in
                 float32 benchmarks/memory.py measured 22.5 V bytes per position: 2 c + 16 = 24)
    engine       vLLM: gpu_memory_utilization x the device's memory (its weights, KV cache,
                 graphs; asleep at level 2 it holds nothing, not even on the host);
                 HF: the whole model gathered in the compute dtype, P c, and its KV cache,
                 rows x L x layers x 2 x kv_heads x head_dim x c
    reserve      CUDA context, NCCL buffers and allocator fragmentation: an allowance

LoRA (`lora_rank` r > 0, t1.models.lora): A adapter parameters, r (in + out) per target
projection (`ModelShape.adapter_params`). The base is frozen in the compute dtype and only the
adapters train, so weights are c P / N + 4 A / N, gradients 4 A / N, optimizer 8 A / N and the
anchor (the EMA adapters, t1.train.anchor) 4 A / N; unsharded, FSDP2 gathers the adapters with
their layers and reduces only their gradients, and without FSDP2 the compute copy is the
adapters' alone (c A); each layer keeps A x (r values a target) per token for backward; the
frozen output head accumulates no weight gradient.

With CPU offload (FSDP2's `CPUOffloadPolicy`) weights, gradients and optimizer states live on
the host instead. The rollout and the learner take turns when the engine sleeps between steps
(vLLM's sleep mode) or is the HF engine: the device then holds the resident items plus the
larger of the two phases (the RL trainer frees the gradients and empties torch's CUDA cache
before the engine wakes); otherwise both at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from t1.errors import ConfigError
from t1.rollout.head import head_chunk_size

GIB = 1024**3
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
ENGINES = ("vllm", "hf", "none")
# model.lora.target_modules' default: every attention and MLP projection
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# CUDA context (~0.5 GiB), NCCL buffers and the allocator's fragmentation, per device
DEFAULT_RESERVE = 4 * GIB


@dataclass(frozen=True)
class ModelShape:
    """A Llama/Qwen2-style decoder: the sizes the plan needs."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool
    # Qwen2 has biases on q, k and v; Llama does not
    qkv_bias: bool = False
    head_dim: int | None = None

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def layer_params(self) -> int:
        """q, k, v, o projections (+ q, k, v biases), gate, up, down, and two norms."""
        q, kv = self.heads * self.head_size, self.kv_heads * self.head_size
        attn = self.hidden * (q + 2 * kv) + q * self.hidden
        bias = q + 2 * kv if self.qkv_bias else 0
        return attn + bias + 3 * self.hidden * self.intermediate + 2 * self.hidden

    def adapter_params(self, rank: int, targets: tuple[str, ...] = ()) -> int:
        """LoRA parameters of one layer: r (in + out) for each target projection."""
        q, kv, H, inter = (
            self.heads * self.head_size,
            self.kv_heads * self.head_size,
            self.hidden,
            self.intermediate,
        )
        sizes = {
            "q_proj": H + q,
            "k_proj": H + kv,
            "v_proj": H + kv,
            "o_proj": q + H,
            "gate_proj": H + inter,
            "up_proj": H + inter,
            "down_proj": inter + H,
        }
        unknown = [t for t in targets if t not in sizes]
        if unknown:
            raise ConfigError(f"memory plan: unknown LoRA target(s) {unknown}; use {sorted(sizes)}")
        return rank * sum(sizes[t] for t in targets)

    @property
    def root_params(self) -> int:
        """Embeddings, the final norm and (untied) the output head."""
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    @property
    def params(self) -> int:
        return self.layers * self.layer_params + self.root_params

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any] | Any) -> ModelShape:
        """From an HF config object or its config.json as a dict (Llama, Qwen2, Mistral, ...)."""
        get = config.get if isinstance(config, Mapping) else lambda k, d=None: getattr(config, k, d)
        missing = [k for k in ("hidden_size", "num_hidden_layers", "vocab_size") if get(k) is None]
        if missing:
            raise ConfigError(f"model config lacks {', '.join(missing)}: cannot plan memory")
        heads = get("num_attention_heads")
        model_type = str(get("model_type", ""))
        return cls(
            hidden=get("hidden_size"),
            layers=get("num_hidden_layers"),
            heads=heads,
            kv_heads=get("num_key_value_heads") or heads,
            intermediate=get("intermediate_size"),
            vocab=get("vocab_size"),
            tied=bool(get("tie_word_embeddings", False)),
            qkv_bias=model_type.startswith("qwen2") or bool(get("attention_bias", False)),
            head_dim=get("head_dim"),
        )


def layer_activation_bytes(shape: ModelShape, c: int) -> int:
    """Bytes a decoder layer keeps for backward per token: HF Llama/Qwen2, SDPA attention.

    Counted from what autograd saves (tests/train/test_memory.py measures it): each RMSNorm
    keeps its input in fp32 (4 H), its rsqrt (4) and the normalised value in the compute dtype
    (c H); the q/k/v and gate/up projections keep their input, the norm's output (c H each);
    attention keeps q, k and v after rope and its output, k and v repeated to all heads when a
    padding mask is passed (4 c H), and its logsumexp (4 per head); the output projection reads
    the attention's output in place; the MLP keeps gate, up, silu(gate) and their product
    (4 c I). Sum: 8 H + 8 c H + 4 c I + 8 + 4 heads. The padding mask, in the compute dtype per
    layer, is counted apart (b L^2 c per layer, `Setting`).
    """
    H = shape.hidden
    return 8 * H + 8 * c * H + 4 * c * shape.intermediate + 8 + 4 * shape.heads


@dataclass(frozen=True)
class Setting:
    """What the plan depends on besides the model's shape (module docstring)."""

    ranks_per_node: int = 1
    nodes: int = 1
    compute_dtype: str = "bfloat16"
    # bytes of a stored weight, gradient shard or AdamW state: 4 (float32 masters), or the
    # compute dtype's with `train.pure_low_precision`
    master_bytes: int = 4
    micro_batch_size: int = 1
    # the learner's sequence length: prompt + response tokens
    seq_len: int = 1024
    activation_checkpointing: bool = False
    # FSDP2's CPUOffloadPolicy: weights, gradients and optimizer states on the host
    cpu_offload: bool = False
    anchor: bool = True
    anchor_on_cpu: bool = False
    # "vllm", "hf" or "none"
    engine: str = "vllm"
    gpu_memory_utilization: float = 0.5
    # vLLM's tensor-parallel group: each rank's engine holds 1/tp of the weights
    tensor_parallel_size: int = 1
    # vLLM sleeps between rollouts (the HF engine always yields the device to the learner)
    engine_sleeps: bool = True
    # rows the HF engine decodes at once (its KV cache)
    engine_rows: int = 64
    # the learner's chunked output head (`t1.rollout.head`); False: full logits
    chunked_head: bool = True
    # FSDP2 even on one rank; None: FSDP2 when there is more than one rank, else the model's
    # compute-dtype copy (autocast) beside the fp32 master weights
    fsdp: bool | None = None
    # bytes of one device's memory: vLLM's share is a fraction of it; 0: unknown, no check
    device_memory: int = 0
    reserve: int = DEFAULT_RESERVE
    # LoRA adapters of this rank on these projections (0: full-weight training)
    lora_rank: int = 0
    lora_targets: tuple[str, ...] = LORA_TARGETS

    def __post_init__(self) -> None:
        if self.compute_dtype not in DTYPE_BYTES:
            raise ConfigError(
                f"compute dtype {self.compute_dtype!r}: use one of {sorted(DTYPE_BYTES)}"
            )
        if self.engine not in ENGINES:
            raise ConfigError(f"engine {self.engine!r}: use one of {ENGINES}")
        sizes = (self.ranks_per_node, self.nodes, self.micro_batch_size, self.seq_len)
        if min(*sizes, self.tensor_parallel_size, self.engine_rows) < 1:
            raise ConfigError(
                "ranks_per_node, nodes, micro_batch_size, seq_len, tensor_parallel_size and "
                "engine_rows must be >= 1"
            )
        if self.engine == "vllm" and not (
            0 < self.gpu_memory_utilization < 1 and self.device_memory > 0
        ):
            raise ConfigError("a vLLM plan needs 0 < gpu_memory_utilization < 1 and device_memory")


@dataclass(frozen=True)
class Item:
    name: str
    device: int  # bytes on each device
    host: int  # bytes in host memory, per rank
    # "resident" (always held), "learner" (forward/backward), "engine" (rollout)
    phase: str
    note: str = ""


@dataclass
class MemoryPlan:
    items: list[Item]
    # bytes of one device's memory; 0 when unknown (no check)
    device_memory: int
    # whether the rollout and the learner take turns on the device
    time_shared: bool
    setting: Setting
    shape: ModelShape

    def phase(self, name: str) -> int:
        return sum(i.device for i in self.items if i.phase == name)

    @property
    def device_total(self) -> int:
        """Peak bytes per device: resident + both phases, or the larger when they take turns."""
        learner, engine = self.phase("learner"), self.phase("engine")
        busy = max(learner, engine) if self.time_shared else learner + engine
        return self.phase("resident") + busy

    @property
    def host_total(self) -> int:
        return sum(i.host for i in self.items)


def _shards(shape: ModelShape, s: Setting) -> list[Item]:
    N, P = s.ranks_per_node * s.nodes, shape.params
    # LoRA: A trained parameters; the frozen base's c bytes a parameter join the weights
    A = shape.layers * shape.adapter_params(s.lora_rank, s.lora_targets)
    trained, frozen = (A, DTYPE_BYTES[s.compute_dtype] * P) if s.lora_rank else (P, 0)
    what = "adapters" if s.lora_rank else "shard"

    def shard(per_param: int, on_host: bool, name: str, phase: str, note: str, more=0) -> Item:
        size = -(-(per_param * trained + more) // N)
        return Item(name, 0 if on_host else size, size if on_host else 0, phase, note)

    m = s.master_bytes
    kind = "fp32" if m == 4 else f"{s.compute_dtype} (pure)"
    base = (
        f"{s.compute_dtype} frozen base + {kind} adapters"
        if s.lora_rank
        else f"{kind} master shard"
    )
    states = f"AdamW, 2 {kind} states" + (", adapters" if s.lora_rank else "")
    items = [
        shard(m, s.cpu_offload, "weights", "resident", base, more=frozen),
        shard(2 * m, s.cpu_offload, "optimizer", "resident", states),
    ]
    if s.anchor:
        items.append(shard(m, s.anchor_on_cpu, "anchor", "resident", f"EMA, {kind} {what}"))
    items.append(Item("reserve", s.reserve, 0, "resident", "CUDA context, NCCL, fragmentation"))
    items.append(shard(m, s.cpu_offload, "gradients", "learner", f"{kind} {what}"))
    return items


def _compute_items(shape: ModelShape, s: Setting) -> list[Item]:
    c, H, V = DTYPE_BYTES[s.compute_dtype], shape.hidden, shape.vocab
    tokens = s.micro_batch_size * s.seq_len
    fsdp = s.ranks_per_node * s.nodes > 1 if s.fsdp is None else s.fsdp
    adapters = shape.adapter_params(s.lora_rank, s.lora_targets)  # one layer's; 0 without LoRA
    if fsdp and s.lora_rank:  # gathered root and 2 layers, gradients for their adapters only
        size = c * (shape.root_params + 2 * (shape.layer_params + adapters)) + 2 * c * adapters
        note = "root + 2 layers, +adapter grads"
    elif fsdp:
        size, note = 2 * c * (shape.root_params + 2 * shape.layer_params), "root + 2 layers, +grads"
    elif s.lora_rank:
        size, note = c * shape.layers * adapters, "adapters, compute dtype"
    elif s.master_bytes != c:  # autocast's compute-dtype copies of the float32 weights
        size, note = c * shape.params, "whole model, compute dtype"
    else:
        size, note = 0, "none: the weights are in the compute dtype"
    items = [Item("unsharded", size, 0, "learner", note)]
    # LoRA: each target's A x (r values) kept for B's gradient
    per_layer = layer_activation_bytes(shape, c) + c * s.lora_rank * len(s.lora_targets)
    # each layer whose activations are kept also keeps the padding mask in the compute dtype
    layer_mask = s.micro_batch_size * s.seq_len**2 * c
    if s.activation_checkpointing:  # the layers' inputs, and one layer recomputed
        kept, note = shape.layers * c * H * tokens + per_layer * tokens + layer_mask, "checkpointed"
    else:
        kept, note = shape.layers * (per_layer * tokens + layer_mask), "every layer's"
    final = tokens * ((4 + 2 * c) * H + 4)  # the final norm's fp32 input, rsqrt and output
    mask = s.micro_batch_size * s.seq_len**2  # the boolean padding mask, built once
    items.append(Item("activations", kept + final + mask, 0, "learner", note))
    if s.chunked_head:
        chunk = min(head_chunk_size(V), tokens)
        accumulate = V * H * (4 + 2 * c) if c < 4 else 4 * V * H
        accumulate *= not s.lora_rank  # a frozen head (LoRA) has no weight gradient
        size = chunk * V * (8 + 2 * c) + accumulate + tokens * (c * H + 8)
        items.append(Item("head", size, 0, "learner", f"chunks of {chunk} positions"))
    else:
        # the logits, their fp32 copy, the tempered copy, and as many gradients in backward
        items.append(Item("logits", tokens * V * (2 * c + 16), 0, "learner", "full (tokens, V)"))
    return items


def engine_weight_bytes(shape: ModelShape, s: Setting) -> int:
    """The rollout engine's copy of the weights on one device, in the compute dtype."""
    tp = s.tensor_parallel_size if s.engine == "vllm" else 1
    return -(-shape.params * DTYPE_BYTES[s.compute_dtype] // tp)


def _engine_item(shape: ModelShape, s: Setting) -> Item:
    weights = engine_weight_bytes(shape, s)
    if s.engine == "vllm":
        # sleep level 2 (t1.rollout.vllm) discards the weights: nothing is parked on the host
        share = int(s.gpu_memory_utilization * s.device_memory)
        note = f"vLLM, {s.gpu_memory_utilization:g} of the device, tp {s.tensor_parallel_size}"
        return Item("engine", share, 0, "engine", note)
    if s.engine == "hf":
        c = DTYPE_BYTES[s.compute_dtype]
        kv = s.engine_rows * s.seq_len * shape.layers * 2 * shape.kv_heads * shape.head_size * c
        return Item("engine", weights + kv, 0, "engine", f"HF, whole model, {s.engine_rows} rows")
    return Item("engine", 0, 0, "engine", "none")


def memory_plan(shape: ModelShape, setting: Setting) -> MemoryPlan:
    """Bytes per rank of each item (module docstring), and how the phases share the device."""
    items = _shards(shape, setting) + _compute_items(shape, setting)
    items.append(_engine_item(shape, setting))
    time_shared = setting.engine == "hf" or setting.engine_sleeps
    return MemoryPlan(items, setting.device_memory, time_shared, setting, shape)


def plan_from_config(model_config: Mapping[str, Any] | Any, **setting: Any) -> MemoryPlan:
    """The plan for an HF model config (object or config.json dict); keywords: `Setting`'s."""
    return memory_plan(ModelShape.from_hf_config(model_config), Setting(**setting))


def format_plan(plan: MemoryPlan) -> str:
    """A table: one row per item, GiB on each device and in host memory per rank."""
    rows = [f"{'item':<12} {'device GiB':>10} {'host GiB':>9}  phase     note"]
    for i in plan.items:
        rows.append(
            f"{i.name:<12} {i.device / GIB:>10.2f} {i.host / GIB:>9.2f}  {i.phase:<9} {i.note}"
        )
    turns = "take turns" if plan.time_shared else "run together"
    how = "no rollout engine" if plan.setting.engine == "none" else f"rollout and learner {turns}"
    rows.append(
        f"{'peak':<12} {plan.device_total / GIB:>10.2f} {plan.host_total / GIB:>9.2f}  {how}"
    )
    if plan.device_memory:
        rows.append(f"{'device':<12} {plan.device_memory / GIB:>10.2f}")
    return "\n".join(rows)


def summary(plan: MemoryPlan) -> str:
    """The plan on one line: each item's device GiB, the peak and the device's memory."""
    parts = [f"{i.name} {i.device / GIB:.1f}" for i in plan.items if i.device]
    return (
        f"{', '.join(parts)} GiB; peak {plan.device_total / GIB:.1f} GiB "
        f"of {plan.device_memory / GIB:.1f} GiB"
    )


def check_fits(plan: MemoryPlan) -> None:
    """Raise a one-line `ConfigError` with the plan when its peak exceeds the device's memory,
    or when vLLM's share cannot hold its own copy of the weights."""
    s = plan.setting
    if s.engine == "vllm":
        share = int(s.gpu_memory_utilization * s.device_memory)
        weights = engine_weight_bytes(plan.shape, s)
        if share <= weights:
            raise ConfigError(
                f"vLLM's share of the device, {share / GIB:.1f} GiB (gpu_memory_utilization "
                f"{s.gpu_memory_utilization:g}), cannot hold its {weights / GIB:.1f} GiB of "
                f"weights and a KV cache: raise rollout.gpu_memory_utilization or "
                f"rollout.tensor_parallel_size ({s.tensor_parallel_size})"
            )
    if plan.device_memory and plan.device_total > plan.device_memory:
        raise ConfigError(
            f"the memory plan does not fit one device: {summary(plan)}. Try "
            "train.activation_checkpointing, a smaller rl.micro_batch_size, more ranks, "
            "the anchor or FSDP2's CPU offload on the host, or a lower "
            "rollout.gpu_memory_utilization"
        )
