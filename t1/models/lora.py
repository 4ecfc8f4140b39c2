"""LoRA adapters on a causal LM through peft (Hu et al., "LoRA", arXiv 2106.09685).

A target projection y = W x + b becomes

    y = W x + b + s · B A dropout(x),     A: (r, in), B: (out, r), s = alpha / r

with W, b frozen and only A, B trained. B starts at zero (A Kaiming-uniform, peft's default), so
the adapted model starts as the base model. `add_adapters` injects peft's `lora.Linear` layers
into the model in place (`peft.inject_adapter_in_model`) instead of wrapping it in a
`PeftModel`: the model keeps its class, its `.model` decoder, its `lm_head` and its
`_no_split_modules`, so the chunked output head, the lean passes (a LoRA projection runs as its
own module there) and FSDP2's per-layer sharding read it as before. A projection becomes a
module with `base_layer` (the frozen nn.Linear) and the adapters `lora_A.default`,
`lora_B.default`; its parameters are named `...q_proj.base_layer.weight`,
`...q_proj.lora_A.default.weight`, `...q_proj.lora_B.default.weight`.

What leaves the learner carries merged weights under the base names (`merged_entries`):

    ...q_proj.weight = W + s · B A        (computed in float32, then cast once)

the rollout engine's weights (t1.rollout.weights) and the merged `final/` folder. A peft adapter
folder (`adapter_entries`) names the adapters as peft's `save_pretrained` does
(`base_model.model.<module>.lora_A.weight`), so `PeftModel.from_pretrained(base, folder)` loads it.

Checkpoints hold the adapters only (`trained_tensors`). The base is the model the run started
from: its `ModelConfig` and a fingerprint of its weights travel with the checkpoint
(`AdapterSpec`), are checked on resume, and let `t1.models.loading` rebuild base ⊕ adapters when
a checkpoint is loaded as a model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from t1.config import LoraConfig, ModelConfig, TinyModelConfig
from t1.errors import ConfigError, T1Error
from t1.models.sharded import is_sharded

# the attribute on a model that carries its adapters' description (set by `add_adapters`)
SPEC = "_t1_lora"
# peft's name for the one adapter t1 trains
ADAPTER = "default"
BASE, A, B = "base_layer", "lora_A", "lora_B"
# a peft adapter folder's key prefix (PeftModelForCausalLM -> LoraModel -> the causal LM)
PEFT_PREFIX = "base_model.model."
# relative agreement of two fingerprints of the same weights (`fingerprint`)
FINGERPRINT_RTOL = 1e-5
# elements a fingerprint converts to float64 at a time (128 MiB)
FINGERPRINT_CHUNK = 1 << 24

Gather = Callable[[torch.Tensor, torch.dtype | None], torch.Tensor]


@dataclass
class AdapterSpec:
    """What a model's adapters are and which base they sit on (JSON-ready)."""

    rank: int
    alpha: float
    target_modules: list[str]
    dropout: float
    save: str
    # the `model` section the base was loaded from (checkpoints loaded as models rebuild it)
    base: dict[str, Any]
    # `fingerprint` of the base weights: the same base on resume and when loading
    fingerprint: list[float]

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def lora_config(self) -> LoraConfig:
        return LoraConfig(
            rank=self.rank,
            alpha=self.alpha,
            target_modules=list(self.target_modules),
            dropout=self.dropout,
            save=self.save,
        )


def spec_of(model: Any) -> AdapterSpec | None:
    """The adapters' description of a model that has them (None: a full-weight model)."""
    return getattr(model, SPEC, None)


def has_adapters(model: Any) -> bool:
    return spec_of(model) is not None


def check_lora_config(lora: LoraConfig) -> None:
    """Values that cannot train, rejected before anything is loaded (each names its key)."""
    if not lora.enabled:
        return
    if lora.rank < 0:
        raise ConfigError(f"model.lora.rank={lora.rank} must be >= 0 (0 or null: no LoRA)")
    if not lora.alpha > 0:
        raise ConfigError(f"model.lora.alpha={lora.alpha} must be > 0")
    if not 0.0 <= lora.dropout < 1.0:
        raise ConfigError(f"model.lora.dropout={lora.dropout} must be in [0, 1)")
    if not lora.target_modules:
        raise ConfigError("model.lora.target_modules is empty: name the projections to adapt")


@torch.no_grad()
def fingerprint(model: torch.nn.Module) -> list[float]:
    """[elements, Σ|w|, Σw²] over the parameters that are not adapters, in float64.

    Sums of positive terms: n terms round to a relative error of at most n·2^-53 (2^-20 at
    n = 2^33, a 8 B model), far inside `FINGERPRINT_RTOL`, whatever the summation order (thread
    counts, devices); another model's weights differ far more.
    """
    n, l1, l2 = 0, 0.0, 0.0
    for name, p in model.named_parameters():
        if is_adapter_name(name):
            continue
        for chunk in p.detach().reshape(-1).split(FINGERPRINT_CHUNK):  # bounded float64 copies
            w = chunk.double()
            n, l1, l2 = n + w.numel(), l1 + float(w.abs().sum()), l2 + float(w.square().sum())
    return [float(n), l1, l2]


def same_fingerprint(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=FINGERPRINT_RTOL, abs_tol=1e-30) for x, y in zip(a, b)
    )


def _base_dict(base: ModelConfig) -> dict[str, Any]:
    """The `model` section as JSON, a local path made absolute (a checkpoint may be read from
    another working directory)."""
    out = dataclasses.asdict(base)
    out.pop("lora", None)
    if base.path != "tiny" and Path(base.path).expanduser().exists():
        out["path"] = str(Path(base.path).expanduser().resolve())
    return out


def base_config(spec: AdapterSpec, dtype: str) -> ModelConfig:
    """The `ModelConfig` of a spec's base model, loading in `dtype` on the CPU."""
    fields = dict(spec.base)
    tiny = TinyModelConfig(**fields.pop("tiny", {}))
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    kept = {k: v for k, v in fields.items() if k in known}
    kept.update(tiny=tiny, dtype=dtype, device="cpu")
    return dataclasses.replace(ModelConfig(), **kept)


def add_adapters(
    model: torch.nn.Module, lora: LoraConfig, base: ModelConfig, seed: int
) -> torch.nn.Module:
    """LoRA adapters injected into `model` in place (module docstring); the base frozen.

    A no-op when `lora` is off or the model has adapters already. A's initialisation is drawn
    from a generator seeded by `seed` (every rank and every restart draws the same adapters) and
    the global RNG is left as it was. The adapters are float32 (masters); the base keeps its
    dtype. The model must not be sharded yet (FSDP2 then shards base and adapters together).
    """
    if not lora.enabled or has_adapters(model):
        return model
    check_lora_config(lora)
    if is_sharded(model):
        raise ConfigError("model.lora: adapters must be added before the model is sharded")
    prints = fingerprint(model)
    _inject(model, lora)
    _init_adapters(model, seed)
    spec = AdapterSpec(
        rank=int(lora.rank),
        alpha=float(lora.alpha),
        target_modules=list(lora.target_modules),
        dropout=float(lora.dropout),
        save=lora.save,
        base=_base_dict(base),
        fingerprint=prints,
    )
    setattr(model, SPEC, spec)
    return model


def _inject(model: torch.nn.Module, lora: LoraConfig) -> None:
    """peft's `lora.Linear` on every target projection; only linear targets are accepted."""
    # peft is an optional extra (`pip install t1-rl[lora]`): imported only when LoRA is on
    try:
        import peft
        from peft.tuners.lora import Linear as LoraLinear
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        raise ConfigError("model.lora needs peft: pip install 't1-rl[lora]'") from None
    config = peft.LoraConfig(
        r=int(lora.rank),
        lora_alpha=lora.alpha,
        target_modules=list(lora.target_modules),
        lora_dropout=lora.dropout,
        bias="none",
    )
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            peft.inject_adapter_in_model(config, model, adapter_name=ADAPTER)
        except ValueError as e:
            raise ConfigError(f"model.lora.target_modules: {e}") from None
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer) and not isinstance(module, LoraLinear):
            raise ConfigError(
                f"model.lora.target_modules: {name} is a {type(module.get_base_layer()).__name__};"
                " t1 trains LoRA on linear projections only"
            )
    for name, p in model.named_parameters():
        adapter = is_adapter_name(name)
        p.requires_grad_(adapter)
        if adapter:
            p.data = p.data.float()


def is_adapter_name(name: str) -> bool:
    return f".{A}." in name or f".{B}." in name


@torch.no_grad()
def _init_adapters(model: torch.nn.Module, seed: int) -> None:
    """A ~ Kaiming-uniform(a = √5) as peft draws it, from a seeded CPU generator; B = 0."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if f".{A}." in name:
            fresh = torch.empty(p.shape, dtype=torch.float32)
            torch.nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=gen)
            p.copy_(fresh)
        elif f".{B}." in name:
            p.zero_()


def split_name(name: str) -> tuple[str, str, str] | None:
    """`prefix.base_layer.rest` / `prefix.lora_A.default.rest` -> (prefix, part, rest)."""
    for part in (BASE, A, B):
        key = f".{part}."
        if key in name:
            prefix, rest = name.split(key, 1)
            if part != BASE:
                rest = rest.removeprefix(f"{ADAPTER}.")
            return prefix, part, rest
    return None


def merged_entries(
    model: torch.nn.Module,
    entries: Iterable[tuple[str, torch.Tensor]],
    dtype: torch.dtype | None,
    gather: Gather,
) -> Iterator[tuple[str, torch.Tensor]]:
    """(base name, whole tensor) with every adapted weight merged: W + s·B A (module docstring).

    `entries`: (name, tensor or DTensor) in module order (`named_parameters()` or a state
    dict); `gather(t, dtype)` makes a whole tensor (collective for a DTensor: every rank runs
    the iterator to the end). A layer's base entries are held until its A and B have come,
    so at most one layer's weight, A and B are whole at a time. The sum is float32 (A and B
    gathered as float32, the masters), cast once to `dtype` (None: the base weight's).
    """
    spec = spec_of(model)
    flips = _fan_in_fan_out(model)
    held: dict[str, dict[str, torch.Tensor]] = {}
    for name, value in entries:
        parts = split_name(name)
        if parts is None:
            yield name, gather(value, dtype)
            continue
        prefix, part, rest = parts
        slot = held.setdefault(prefix, {})
        if part == BASE:
            slot[rest] = gather(value, None)
        else:
            slot[part] = gather(value, torch.float32)
        if not {"weight", A, B} <= slot.keys():
            continue
        delta = slot.pop(B) @ slot.pop(A) * spec.scaling  # (out, in)
        weight = slot.pop("weight")
        merged = weight.float() + (delta.T if prefix in flips else delta)
        yield f"{prefix}.weight", merged.to(dtype or weight.dtype)
        for key, tensor in slot.items():  # the base layer's bias
            yield f"{prefix}.{key}", tensor.to(dtype or tensor.dtype)
        del held[prefix]
    if held:
        raise T1Error(f"LoRA merge: the adapters of {sorted(held)} were incomplete")


def _fan_in_fan_out(model: torch.nn.Module) -> set[str]:
    """Adapted layers whose weight is stored (in, out) (GPT-2's Conv1D): B A is transposed."""
    return {n for n, m in model.named_modules() if getattr(m, "fan_in_fan_out", False)}


def adapter_entries(model: torch.nn.Module, gather: Gather) -> Iterator[tuple[str, torch.Tensor]]:
    """(peft name, whole float32 tensor) of each adapter, as peft's `save_pretrained` names it."""
    for name, p in model.named_parameters():
        if is_adapter_name(name):
            yield PEFT_PREFIX + name.replace(f".{ADAPTER}.", "."), gather(p.detach(), None)


def peft_config(spec: AdapterSpec) -> Any:
    """peft's LoraConfig of the adapters (its `save_pretrained` writes adapter_config.json)."""
    import peft  # optional extra: only a LoRA run gets here

    return peft.LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        target_modules=list(spec.target_modules),
        lora_dropout=spec.dropout,
        bias="none",
        task_type="CAUSAL_LM",
        base_model_name_or_path=spec.base.get("path"),
    )


def trained_names(model: torch.nn.Module) -> set[str]:
    """The names of the parameters the optimiser updates."""
    return {n for n, p in model.named_parameters() if p.requires_grad}


def trained_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint's `model/` holds: every weight, or a LoRA model's adapters only."""
    from t1.models.dcp import model_tensors

    tensors = model_tensors(model)
    if not has_adapters(model):
        return tensors
    keep = trained_names(model)
    return {k: v for k, v in tensors.items() if k in keep}


def load_trained_tensors(model: torch.nn.Module, folder: Path) -> None:
    """`trained_tensors` read back from `folder` into `model` (any number of processes)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    from t1.models.dcp import load_tensors

    state = trained_tensors(model)
    load_tensors(folder, state)
    set_model_state_dict(model, state, options=StateDictOptions(strict=False))


def check_same_base(model: torch.nn.Module, saved: dict[str, Any] | None, where: Any) -> None:
    """A checkpoint's adapters (`saved`: its AdapterSpec as a dict) fit this model's base."""
    spec = spec_of(model)
    if (saved is None) != (spec is None):
        has, lacks = ("LoRA adapters", "full weights") if saved else ("full weights", "LoRA")
        raise T1Error(
            f"{where} holds {has} but this run trains {lacks} (model.lora.rank): resume with "
            "the settings it was saved with"
        )
    if spec is None:
        return
    for key in ("rank", "alpha", "target_modules"):
        if saved[key] != getattr(spec, key):
            raise T1Error(
                f"{where}: model.lora.{key}={saved[key]!r} there, {getattr(spec, key)!r} now"
            )
    if not same_fingerprint(saved["fingerprint"], spec.fingerprint):
        raise T1Error(
            f"{where}: the base model's weights differ from those the adapters were trained on "
            f"({saved['base'].get('path')}): load the same base (model.path)"
        )


@torch.no_grad()
def merge_adapters_(model: torch.nn.Module) -> torch.nn.Module:
    """An unsharded LoRA model made plain in place: W += s·B A, each `lora.Linear` replaced by
    its base layer (what `merged_entries` yields, as modules)."""
    spec = spec_of(model)
    if spec is None:
        return model
    flips = _fan_in_fan_out(model)
    for name, module in list(model.named_modules()):
        if not hasattr(module, BASE) or not hasattr(module, A):
            continue
        base = getattr(module, BASE)
        delta = module.lora_B[ADAPTER].weight.float() @ module.lora_A[ADAPTER].weight.float()
        delta = delta * spec.scaling
        base.weight.copy_(base.weight.float() + (delta.T if name in flips else delta))
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, base)
    delattr(model, SPEC)
    return model.requires_grad_(True)
