"""The memory plan at start-up: `t1 rl` and `t1 sft` plan each rank's memory from the model's
config alone (`t1.train.memory` holds the arithmetic) and stop before loading any weight when
the plan does not fit.

    plan_rl(cfg, info, problems)      # `t1 rl`, every rank, before the model is loaded
    plan_sft(cfg, info)               # `t1 sft`

What it is checked against:
- on a GPU, the device's total memory (`torch.cuda.get_device_properties`): a plan whose peak
  exceeds it is a one-line `ConfigError` listing the plan, and so is a vLLM share too small
  for its own weights (`check_fits`);
- on CPU, only a warning when the ranks of this host together plan more than the host's
  available memory (/proc/meminfo MemAvailable). A GPU has exactly its memory and nothing else
  uses it; host memory is shared with other processes, swap and the page cache, and the plan
  counts what CUDA kernels keep (its activation bytes, a reserve for the CUDA context), so on
  CPU it is an estimate, and a hard stop could refuse a run that fits.
Rank 0 writes the plan into the run directory (memory_plan.json, memory_plan.txt). On a GPU the
table is printed; on CPU one line, and only when the peak reaches 1 GiB (the tiny CPU demo
prints nothing).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from t1.errors import ConfigError
from t1.models.loading import load_tokenizer, model_config
from t1.rollout.head import HEAD_FAMILIES, LOGIT_MODIFIERS
from t1.train.distributed import DistInfo
from t1.train.memory import (
    DTYPE_BYTES,
    GIB,
    LORA_TARGETS,
    MemoryPlan,
    ModelShape,
    Setting,
    check_fits,
    format_plan,
    memory_plan,
    summary,
)
from t1.train.sharding import use_fsdp

# a CPU plan below this peak is not printed (its files are still written)
QUIET_BELOW = GIB


def launch_shape(info: DistInfo) -> tuple[int, int]:
    """(ranks per node, nodes) of this launch: torchrun's LOCAL_WORLD_SIZE, else one node."""
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", info.world))
    return per_node, max(1, info.world // max(per_node, 1))


def chunked_head(model_config: Mapping[str, Any] | Any) -> bool:
    """Whether the RL learner takes the chunked output head for this model
    (`t1.rollout.head.chunked_head_unsupported`, read from an HF config or config.json dict)."""
    if isinstance(model_config, Mapping):
        get = model_config.get
    else:
        get = lambda key: getattr(model_config, key, None)  # noqa: E731
    for key in LOGIT_MODIFIERS:
        value = get(key)
        if value is not None and value != 1.0:
            return False
    archs = get("architectures")
    if archs:
        return archs[0] in HEAD_FAMILIES
    families = {name.removesuffix("ForCausalLM").lower() for name in HEAD_FAMILIES}
    return (get("model_type") or "") in families


def rl_setting(cfg: Any, ranks_per_node: int, nodes: int, seq_len: int, **more: Any) -> Setting:
    """The plan's `Setting` for an `RLStage` config; `more`: device_memory, reserve, ..."""
    vllm = cfg.rollout.engine == "vllm"
    return Setting(
        ranks_per_node=ranks_per_node,
        nodes=nodes,
        compute_dtype=cfg.model.dtype,
        master_bytes=_master_bytes(cfg),
        micro_batch_size=cfg.rl.micro_batch_size,
        seq_len=seq_len,
        activation_checkpointing=cfg.train.activation_checkpointing,
        cpu_offload=cfg.train.cpu_offload,
        anchor=cfg.rl.anchor != "none",
        anchor_on_cpu=cfg.train.anchor_on_cpu,
        engine=cfg.rollout.engine,
        gpu_memory_utilization=cfg.rollout.gpu_memory_utilization,
        tensor_parallel_size=cfg.rollout.tensor_parallel_size if vllm else 1,
        engine_sleeps=cfg.rollout.sleep_between_steps,
        engine_rows=cfg.rollout.batch_size,
        fsdp=use_fsdp(cfg.train, ranks_per_node * nodes),
        **_lora(cfg),
        **more,
    )


def sft_setting(cfg: Any, ranks_per_node: int, nodes: int, **more: Any) -> Setting:
    """The plan's `Setting` for an `SFTStage` config: rows of sft.max_len tokens, no anchor, no
    engine, and the full logits (the SFT loss reads the model's own logits)."""
    more.setdefault("chunked_head", False)
    return Setting(
        ranks_per_node=ranks_per_node,
        nodes=nodes,
        compute_dtype=cfg.model.dtype,
        master_bytes=_master_bytes(cfg),
        micro_batch_size=cfg.sft.micro_batch_size,
        seq_len=cfg.sft.max_len,
        activation_checkpointing=cfg.train.activation_checkpointing,
        cpu_offload=cfg.train.cpu_offload,
        anchor=False,
        engine="none",
        fsdp=use_fsdp(cfg.train, ranks_per_node * nodes),
        **_lora(cfg),
        **more,
    )


def _lora(cfg: Any) -> dict[str, Any]:
    """model.lora's part of the plan: the adapters' rank and target projections."""
    lora = cfg.model.lora
    if not lora.enabled:
        return {}
    return {"lora_rank": int(lora.rank), "lora_targets": tuple(lora.target_modules)}


def _plannable(cfg: Any) -> bool:
    """False (and says so) when model.lora targets a module the plan has no shape for."""
    lora = cfg.model.lora
    unknown = sorted(set(lora.target_modules) - set(LORA_TARGETS)) if lora.enabled else []
    if unknown:
        print(f"t1: no memory plan: the plan knows no shape for the LoRA targets {unknown}")
    return not unknown


def _master_bytes(cfg: Any) -> int:
    """Bytes of a stored weight or AdamW state: float32, or the compute dtype's when pure."""
    return DTYPE_BYTES[cfg.model.dtype] if cfg.train.pure_low_precision else 4


def host_available() -> int:
    """Bytes of host memory available to new allocations (MemAvailable; else free pages)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def device_memory(device: torch.device) -> int:
    """Total bytes of one GPU; 0 on CPU (the plan then makes no device check)."""
    if device.type != "cuda":
        return 0
    return torch.cuda.get_device_properties(device).total_memory


def plan_run(
    setting: Setting, shape: ModelShape, info: DistInfo, run_dir: Path | None, command: str
) -> MemoryPlan:
    """Plan, write (rank 0), print and check, as the module docstring says; every rank runs it
    (each stops alone on its own device's memory, before loading anything)."""
    total = device_memory(info.device)
    on_gpu = total > 0
    if on_gpu:
        setting = dataclasses.replace(setting, device_memory=total)
    else:  # host memory: no CUDA context to reserve; a vLLM share needs a size to take from
        vllm_share_of = host_available() if setting.engine == "vllm" else 0
        setting = dataclasses.replace(setting, reserve=0, device_memory=vllm_share_of)
    plan = memory_plan(shape, setting)
    if info.main:
        _write(plan, run_dir)
        _show(plan, command, on_gpu, run_dir)
    if on_gpu:
        check_fits(plan)
    else:
        _warn_host(plan, command)
    return plan


def _write(plan: MemoryPlan, run_dir: Path | None) -> None:
    if run_dir is None:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "memory_plan.txt").write_text(format_plan(plan) + "\n")
    (run_dir / "memory_plan.json").write_text(json.dumps(plan_json(plan), indent=1) + "\n")


def plan_json(plan: MemoryPlan) -> dict[str, Any]:
    """The plan as JSON: bytes per item, the peak, the model's shape and the settings."""
    return {
        "items": [dataclasses.asdict(i) for i in plan.items],
        "device_total": plan.device_total,
        "host_total": plan.host_total,
        "device_memory": plan.device_memory,
        "time_shared": plan.time_shared,
        "parameters": plan.shape.params,
        "shape": dataclasses.asdict(plan.shape),
        "setting": dataclasses.asdict(plan.setting),
    }


def _show(plan: MemoryPlan, command: str, on_gpu: bool, run_dir: Path | None) -> None:
    where = f" ({run_dir / 'memory_plan.txt'})" if run_dir is not None else ""
    s = plan.setting
    head = (
        f"t1 {command}: memory plan per rank, {_count(plan.shape.params)} parameters, "
        f"{s.ranks_per_node * s.nodes} ranks, micro-batch {s.micro_batch_size} x {s.seq_len}"
    )
    if on_gpu:
        print(f"{head}{where}:\n{format_plan(plan)}", flush=True)
    elif plan.device_total >= QUIET_BELOW:
        print(f"{head}: peak {plan.device_total / GIB:.1f} GiB of host memory{where}", flush=True)


def _count(n: int) -> str:
    """1543714304 -> '1.54 B', 134515008 -> '135 M'."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return str(n)


def _warn_host(plan: MemoryPlan, command: str) -> None:
    s = plan.setting
    need = s.ranks_per_node * (plan.device_total + plan.host_total)
    available = host_available()
    if need > available:
        warnings.warn(
            f"t1 {command}: the memory plan's {s.ranks_per_node} process(es) on this host need "
            f"~{need / GIB:.1f} GiB and {available / GIB:.1f} GiB is available ({summary(plan)})",
            stacklevel=2,
        )


def model_shape(model_cfg: Any) -> tuple[ModelShape, Any] | None:
    """(shape, HF config) of the model `model_cfg` names, read without its weights; None (with a
    warning) for a config the plan cannot read (not a Llama/Qwen2-style decoder)."""
    config = model_config(model_cfg)
    try:
        return ModelShape.from_hf_config(config), config
    except (ConfigError, TypeError) as e:
        warnings.warn(f"no memory plan for {model_cfg.path}: {e}", stacklevel=2)
        return None


def plan_rl(cfg: Any, info: DistInfo, problems: list) -> MemoryPlan | None:
    """`t1 rl`'s plan: the learner's length is the longest prompt + sampling.max_new_tokens."""
    from t1.train.rl_setup import prompt_lengths

    found = model_shape(cfg.model)
    if found is None or not _plannable(cfg):
        return None
    shape, config = found
    lengths = prompt_lengths(cfg, load_tokenizer(cfg.model), problems) if problems else [0]
    seq_len = max(lengths) + cfg.sampling.max_new_tokens
    per_node, nodes = launch_shape(info)
    setting = rl_setting(cfg, per_node, nodes, seq_len, chunked_head=chunked_head(config))
    return plan_run(setting, shape, info, Path(cfg.trainer.out), "rl")


def plan_sft(cfg: Any, info: DistInfo) -> MemoryPlan | None:
    """`t1 sft`'s plan: rows of sft.max_len tokens."""
    found = model_shape(cfg.model)
    if found is None or not _plannable(cfg):
        return None
    per_node, nodes = launch_shape(info)
    return plan_run(sft_setting(cfg, per_node, nodes), found[0], info, Path(cfg.trainer.out), "sft")
