"""The memory plan (`t1.train.memory`) of the Qwen2.5 GPU configurations, per rank.

    python benchmarks/memory_plan.py            # the four configurations, one table each
    python benchmarks/memory_plan.py --check    # and exit 1 if one does not fit

Arithmetic, not a measurement: the byte counts of `t1.train.memory` for the real model shapes
(the models' config.json on the Hugging Face Hub, cited below) at the paper's RL lengths
(prompts up to 512 tokens + 8192 new tokens: L = 8704), bfloat16 compute, fp32 master weights,
AdamW and EMA anchor, the chunked output head. An "80 GB" GPU counts as 79 GiB (an H100 80GB
reports ~79.1 GiB of total memory to torch). Each configuration shows the settings that make it
fit; "without checkpointing" shows why `train.activation_checkpointing` is needed at L = 8704.
"""

from __future__ import annotations

import argparse

from t1.errors import ConfigError
from t1.train.memory import GIB, check_fits, format_plan, plan_from_config

# config.json fields of the Qwen2.5 base models (the Instruct models share them)
QWEN25 = {
    # https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct/blob/main/config.json
    "Qwen2.5-1.5B": dict(model_type="qwen2", hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, intermediate_size=8960, vocab_size=151_936,
                         tie_word_embeddings=True),
    # https://huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/main/config.json
    "Qwen2.5-7B": dict(model_type="qwen2", hidden_size=3584, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, intermediate_size=18_944, vocab_size=152_064,
                       tie_word_embeddings=False),
    # https://huggingface.co/Qwen/Qwen2.5-14B-Instruct/blob/main/config.json
    "Qwen2.5-14B": dict(model_type="qwen2", hidden_size=5120, num_hidden_layers=48, num_attention_heads=40,
                        num_key_value_heads=8, intermediate_size=13_824, vocab_size=152_064,
                        tie_word_embeddings=False),
    # https://huggingface.co/Qwen/Qwen2.5-32B/blob/main/config.json
    "Qwen2.5-32B": dict(model_type="qwen2", hidden_size=5120, num_hidden_layers=64, num_attention_heads=40,
                        num_key_value_heads=8, intermediate_size=27_648, vocab_size=152_064,
                        tie_word_embeddings=False),
}  # fmt: skip
DEVICE = 79 * GIB
COMMON = dict(compute_dtype="bfloat16", seq_len=512 + 8192, device_memory=DEVICE)

CASES = [
    ("Qwen2.5-1.5B", "1 x 80 GB", dict(ranks_per_node=1, micro_batch_size=8,
        activation_checkpointing=True, gpu_memory_utilization=0.45)),
    ("Qwen2.5-7B", "8 x 80 GB", dict(ranks_per_node=8, micro_batch_size=8,
        activation_checkpointing=True, gpu_memory_utilization=0.5)),
    ("Qwen2.5-14B", "8 x 80 GB", dict(ranks_per_node=8, micro_batch_size=2,
        activation_checkpointing=True, gpu_memory_utilization=0.5, tensor_parallel_size=2)),
    ("Qwen2.5-32B", "4 nodes x 8 x 80 GB", dict(ranks_per_node=8, nodes=4, micro_batch_size=4,
        activation_checkpointing=True, gpu_memory_utilization=0.55, tensor_parallel_size=2)),
]  # fmt: skip


def describe(setting: dict) -> str:
    keys = ("micro_batch_size", "activation_checkpointing", "gpu_memory_utilization")
    more = ("tensor_parallel_size", "anchor_on_cpu", "cpu_offload")
    shown = [f"{k}={setting[k]}" for k in keys] + [
        f"{k}={setting[k]}" for k in more if k in setting
    ]
    return ", ".join(shown) + ", vLLM sleeping between rollouts"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a configuration fails")
    args = parser.parse_args()
    failed = False
    for name, where, setting in CASES:
        plan = plan_from_config(QWEN25[name], **COMMON, **setting)
        print(f"## {name} on {where}: {plan.shape.params / 1e9:.2f} B parameters")
        print(f"{describe(setting)}; L = {COMMON['seq_len']}\n")
        print(format_plan(plan))
        try:
            check_fits(plan)
            print("fits\n")
        except ConfigError as e:
            failed = True
            print(f"DOES NOT FIT: {e}\n")
        bare = plan_from_config(
            QWEN25[name], **COMMON, **{**setting, "activation_checkpointing": False}
        )
        print(
            f"without checkpointing: peak {bare.device_total / GIB:.1f} GiB "
            f"(activations {dict((i.name, i.device) for i in bare.items)['activations'] / GIB:.1f}"
            " GiB)\n"
        )
    if args.check and failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
