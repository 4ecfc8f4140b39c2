"""The memory plan (`t1.train.memory`) of every shipped GPU configuration, per rank.

    python benchmarks/memory_plan.py             # one table per configuration
    python benchmarks/memory_plan.py --markdown  # the summary table README.md shows
    python benchmarks/memory_plan.py --check     # and exit 1 if one does not fit

Arithmetic, not a measurement: each YAML in configs/ that trains a Qwen2.5 model on GPUs,
planned by the function `t1 rl` / `t1 sft` runs at start-up (`t1.train.plan.rl_setting`,
`sft_setting`) with the model's real shape (`t1.train.known_models`, from the Hub's
config.json) and the hardware the config is written for (`GPU_CONFIGS`). RL sequences are the
longest prompt, taken as 512 tokens, + the config's sampling.max_new_tokens (the paper's 8192);
SFT rows are sft.max_len. An "80 GB" GPU counts as 79 GiB (an H100 80GB reports ~79.1 GiB of
total memory to torch). "without checkpointing" shows why `train.activation_checkpointing` is
on at these lengths.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import yaml

from t1.config import RLStage, SFTStage, load_config
from t1.errors import ConfigError
from t1.train.known_models import KNOWN_MODELS
from t1.train.memory import GIB, MemoryPlan, ModelShape, check_fits, format_plan, memory_plan
from t1.train.plan import chunked_head, rl_setting, sft_setting

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEVICE = 79 * GIB
PROMPT_TOKENS = 512
# (config, model, GPUs per node, nodes): the hardware each GPU config is written for
GPU_CONFIGS = [
    ("t1_paper_sft.yaml", "Qwen2.5-1.5B", 1, 1),
    ("t1_paper_rl.yaml", "Qwen2.5-1.5B", 1, 1),
    ("qwen2.5_7b_rl_8gpu.yaml", "Qwen2.5-7B", 8, 1),
    ("qwen2.5_7b_lora_rl_1gpu.yaml", "Qwen2.5-7B", 1, 1),
    ("qwen2.5_math_rl_gpu.yaml", "Qwen2.5-14B", 8, 1),
    ("qwen2.5_32b_rl_4x8gpu.yaml", "Qwen2.5-32B", 8, 4),
]


def load_stage(path: Path) -> RLStage | SFTStage:
    """An SFT config (it has an `sft` section) or an RL one."""
    sections = yaml.safe_load(path.read_text()) or {}
    return load_config(SFTStage if "sft" in sections else RLStage, path)


def config_plan(
    name: str, model: str, per_node: int, nodes: int, device: int = DEVICE, **change: object
) -> MemoryPlan:
    """The start-up plan of configs/`name` for `model` on `per_node` x `nodes` GPUs of `device`
    bytes; `change`: Setting fields to vary (e.g. activation_checkpointing=False)."""
    cfg = load_stage(CONFIGS / name)
    config = KNOWN_MODELS[model]
    shape = ModelShape.from_hf_config(config)
    if isinstance(cfg, SFTStage):
        setting = sft_setting(cfg, per_node, nodes, device_memory=device)
    else:
        seq_len = PROMPT_TOKENS + cfg.sampling.max_new_tokens
        setting = rl_setting(
            cfg, per_node, nodes, seq_len, device_memory=device, chunked_head=chunked_head(config)
        )
    return memory_plan(shape, dataclasses.replace(setting, **change))


def _gib(n: int) -> str:
    return f"{n / GIB:.1f}"


def markdown() -> str:
    """One row per GPU config: the settings that matter and the planned GiB per GPU."""
    rows = [
        "| config | model | GPUs | micro-batch x L | vLLM share, TP | resident | learner "
        "| engine | peak GiB / GPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, model, per_node, nodes in GPU_CONFIGS:
        plan = config_plan(name, model, per_node, nodes)
        s = plan.setting
        gpus = f"{per_node}" if nodes == 1 else f"{nodes} x {per_node}"
        engine = (
            f"{s.gpu_memory_utilization:g}, {s.tensor_parallel_size}" if s.engine == "vllm" else "-"
        )
        rows.append(
            f"| `{name}` | {model} | {gpus} | {s.micro_batch_size} x {s.seq_len} | {engine} "
            f"| {_gib(plan.phase('resident'))} | {_gib(plan.phase('learner'))} "
            f"| {_gib(plan.phase('engine'))} | **{_gib(plan.device_total)}** of 79 |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a configuration fails")
    parser.add_argument("--markdown", action="store_true", help="print README's summary table")
    args = parser.parse_args()
    if args.markdown:
        print(markdown())
        return
    failed = False
    for name, model, per_node, nodes in GPU_CONFIGS:
        plan = config_plan(name, model, per_node, nodes)
        gpus = f"{per_node} x 80 GB" if nodes == 1 else f"{nodes} nodes x {per_node} x 80 GB"
        print(f"## configs/{name}: {model} ({plan.shape.params / 1e9:.2f} B) on {gpus}")
        print(f"micro-batch {plan.setting.micro_batch_size} x L = {plan.setting.seq_len}\n")
        print(format_plan(plan))
        try:
            check_fits(plan)
            print("fits\n")
        except ConfigError as e:
            failed = True
            print(f"DOES NOT FIT: {e}\n")
        bare = config_plan(name, model, per_node, nodes, activation_checkpointing=False)
        activations = {i.name: i.device for i in bare.items}["activations"]
        print(
            f"without checkpointing: peak {_gib(bare.device_total)} GiB "
            f"(activations {_gib(activations)} GiB)\n"
        )
    if args.check and failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
