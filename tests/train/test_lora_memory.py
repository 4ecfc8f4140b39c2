"""The memory plan with LoRA (t1.train.memory): hand-computed items, and the single-GPU 7B config
fits one 80 GB GPU where its full-weight twin does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from t1.config import RLStage, load_config
from t1.errors import ConfigError
from t1.train.memory import (
    GIB,
    LORA_TARGETS,
    ModelShape,
    Setting,
    check_fits,
    format_plan,
    memory_plan,
)
from t1.train.rl import check_rl_config

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "qwen2.5_7b_lora_rl_1gpu.yaml"
# hidden 8, 2 layers, 2 heads of 4 (q width 8), 1 kv head (kv width 4), MLP 16, vocabulary 10
SHAPE = ModelShape(hidden=8, layers=2, heads=2, kv_heads=1, intermediate=16, vocab=10, tied=False)
# https://huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/main/config.json
QWEN25_7B = ModelShape(hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18_944,
                       vocab=152_064, tied=False, qkv_bias=True)  # fmt: skip
# an 80 GB GPU as torch reports it (~79.1 GiB), as benchmarks/memory_plan.py counts it
DEVICE = 79 * GIB


def items(plan) -> dict[str, tuple[int, int]]:
    return {i.name: (i.device, i.host) for i in plan.items}


def test_adapter_counts_by_hand():
    # r (in + out): q 8 + 8, k 8 + 4, v 8 + 4, o 8 + 8, gate 8 + 16, up 8 + 16, down 16 + 8 = 128 r
    assert SHAPE.adapter_params(2, ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                    "up_proj", "down_proj")) == 256  # fmt: skip
    assert SHAPE.adapter_params(2, ("q_proj", "v_proj")) == 2 * (16 + 12)
    # Qwen2.5-7B at rank 64 on all seven: 64 x (2 x 7168 + 2 x (3584 + 512) + 3 x 22 528)
    # = 64 x 90 112 = 5 767 168 per layer, x 28 = 161 480 704
    assert 28 * QWEN25_7B.adapter_params(64, LORA_TARGETS) == 161_480_704
    with pytest.raises(ConfigError, match="unknown LoRA target"):
        SHAPE.adapter_params(2, ("wq",))


def test_lora_plan_items_by_hand():
    # 2 ranks, bfloat16 (c = 2), micro-batch 2 of length 3 (T = 6), rank 2 on all seven
    # projections: A = 2 layers x 256 = 512 adapter values, P = 1352 base parameters
    s = Setting(ranks_per_node=2, micro_batch_size=2, seq_len=3, engine="none", reserve=0,
                lora_rank=2)  # fmt: skip
    got = items(memory_plan(SHAPE, s))
    # (2 x 1352 frozen base + 4 x 512 adapters) / 2 ranks
    assert got["weights"] == ((2 * 1352 + 4 * 512) // 2, 0) == (2376, 0)
    assert got["optimizer"] == (8 * 512 // 2, 0)
    assert got["anchor"] == got["gradients"] == (4 * 512 // 2, 0)  # the EMA adapters
    # FSDP2: root 168 + 2 x (layer 592 + its adapters 256) gathered, + 2 layers' adapter grads
    assert got["unsharded"] == (2 * (168 + 2 * (592 + 256)) + 2 * 2 * 256, 0) == (4752, 0)
    # per layer and token 336 (test_memory.py) + A x for 7 targets: c r 7 = 28; 2 layers x
    # (6 x 364 + mask 36) = 4440; final norm 408; boolean mask 18
    assert got["activations"] == (4440 + 408 + 18, 0)
    # the chunked head, one chunk of the 6 positions: 6 x V 10 x (8 + 2c) + T (c H + 8) = 864,
    # and no (V, H) weight gradient: the head is frozen (full weights add 10 x 8 x (4 + 2c))
    assert got["head"] == (6 * 10 * 12 + 6 * (2 * 8 + 8), 0) == (864, 0)
    full = items(memory_plan(SHAPE, Setting(ranks_per_node=2, micro_batch_size=2, seq_len=3,
                                            engine="none", reserve=0)))  # fmt: skip
    assert full["head"] == (864 + 10 * 8 * 8, 0)
    # one rank without FSDP2: the base is already in the compute dtype, only the adapters are
    # copied to it (c x 512)
    alone = items(memory_plan(SHAPE, Setting(micro_batch_size=2, seq_len=3, engine="none",
                                             reserve=0, lora_rank=2)))  # fmt: skip
    assert alone["unsharded"] == (2 * 512, 0)


def _setting(cfg: RLStage, lora: bool) -> Setting:
    """The plan's settings as the config sets them (prompts up to 512 tokens)."""
    return Setting(
        compute_dtype=cfg.model.dtype,
        micro_batch_size=cfg.rl.micro_batch_size,
        seq_len=512 + cfg.sampling.max_new_tokens,
        activation_checkpointing=cfg.train.activation_checkpointing,
        engine=cfg.rollout.engine,
        gpu_memory_utilization=cfg.rollout.gpu_memory_utilization,
        engine_sleeps=cfg.rollout.sleep_between_steps,
        device_memory=DEVICE,
        lora_rank=cfg.model.lora.rank if lora else 0,
        lora_targets=tuple(cfg.model.lora.target_modules),
    )


def test_the_single_gpu_7b_lora_config_fits_one_80gb_gpu():
    cfg = load_config(RLStage, CONFIG)
    check_rl_config(cfg, 1)
    assert cfg.model.lora.enabled and cfg.train.fsdp == "auto"  # one process: no sharding
    plan = memory_plan(QWEN25_7B, _setting(cfg, lora=True))
    print(format_plan(plan))
    check_fits(plan)
    got = items(plan)
    # 7.62 B parameters: the base in bf16 (15.2 GB) + 161 M float32 adapters
    assert abs(QWEN25_7B.params - 7_615_616_512) == 0
    assert got["weights"][0] == 2 * 7_615_616_512 + 4 * 161_480_704
    assert got["anchor"][0] == 4 * 161_480_704  # vs 4 x 7.6 B = 28.4 GiB for a full anchor
    assert plan.device_total < 60 * GIB
    # the same run with full weights needs fp32 masters, AdamW and anchor: 16 bytes a parameter
    full = memory_plan(QWEN25_7B, _setting(cfg, lora=False))
    with pytest.raises(ConfigError, match="does not fit"):
        check_fits(full)
    saved = items(full)["anchor"][0] - got["anchor"][0]
    print(f"anchor: full copy {items(full)['anchor'][0] / GIB:.1f} GiB, EMA adapters "
          f"{got['anchor'][0] / GIB:.2f} GiB ({saved / GIB:.1f} GiB saved)")  # fmt: skip
