"""The memory plan: hand-computed bytes per item, phases, checks, and the activation count
against what autograd actually saves."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from t1.errors import ConfigError
from t1.train.memory import (
    GIB,
    ModelShape,
    Setting,
    check_fits,
    format_plan,
    layer_activation_bytes,
    memory_plan,
    plan_from_config,
)

# hidden 8, 2 layers, 2 heads of 4 (q width 8), 1 kv head (kv width 4), MLP 16, vocabulary 10
SHAPE = ModelShape(hidden=8, layers=2, heads=2, kv_heads=1, intermediate=16, vocab=10, tied=False)


def items(plan) -> dict[str, tuple[int, int]]:
    return {i.name: (i.device, i.host) for i in plan.items}


def test_parameter_counts_by_hand():
    # a layer: q 8x8 + k, v 8x4 each + o 8x8 = 64 + 64 + 64 = 192; MLP 3 x 8 x 16 = 384;
    # two norms 2 x 8 = 16: 592. Root: embeddings and head 2 x 10 x 8 + final norm 8 = 168.
    assert SHAPE.layer_params == 592 and SHAPE.root_params == 168
    assert SHAPE.params == 2 * 592 + 168 == 1352
    # q, k, v biases add 8 + 4 + 4 per layer; tying drops the head's 80
    biased = ModelShape(8, 2, 2, 1, 16, 10, tied=True, qkv_bias=True)
    assert biased.params == 2 * (592 + 16) + 88 == 1304


def test_qwen25_shapes_from_their_configs():
    # Qwen2.5-1.5B (Hub config.json): hidden 1536, 28 layers, 12 heads of 128, 2 kv heads,
    # MLP 8960, vocabulary 151 936, tied. A layer: q 1536^2 + bias 1536 = 2 360 832, k and v
    # 1536 x 256 + 256 = 393 472 each, o 1536^2 = 2 359 296, MLP 3 x 1536 x 8960 = 41 287 680,
    # norms 3072: 46 797 824; x 28 = 1 310 339 072; + embeddings 151 936 x 1536 = 233 373 696
    # + final norm 1536 = 1 543 714 304 (Qwen reports 1.54 B)
    config = dict(
        model_type="qwen2",
        hidden_size=1536,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        intermediate_size=8960,
        vocab_size=151_936,
        tie_word_embeddings=True,
    )
    shape = ModelShape.from_hf_config(config)
    assert shape.layer_params == 46_797_824 and shape.params == 1_543_714_304
    # the same from a config object
    llama = {k: v for k, v in config.items() if k != "model_type"}
    assert ModelShape.from_hf_config(LlamaConfig(**llama)).qkv_bias is False
    with pytest.raises(ConfigError, match="hidden_size"):
        ModelShape.from_hf_config({"vocab_size": 10})


def test_plan_items_by_hand():
    # 2 ranks, bfloat16 (c = 2), micro-batch 2 of length 3: T = 6 tokens
    setting = Setting(ranks_per_node=2, micro_batch_size=2, seq_len=3, engine="none", reserve=0)
    plan = memory_plan(SHAPE, setting)
    got = items(plan)
    # shards of 1352 parameters over 2 ranks: 4 x 676, 8 x 676
    assert got["weights"] == got["anchor"] == got["gradients"] == (2704, 0)
    assert got["optimizer"] == (5408, 0)
    # FSDP2: root 168 + 2 layers 1184, compute dtype, params and grads: 2 x 2 x 1352
    assert got["unsharded"] == (5408, 0)
    # per layer and token: 8 H + 8 c H + 4 c I + 8 + 4 heads = 64 + 128 + 128 + 8 + 8 = 336
    assert layer_activation_bytes(SHAPE, 2) == 336
    # 2 layers x (6 x 336 + mask 2 x 3^2 x 2 = 36) = 4104; final norm 6 x (8 x 8 + 4) = 408;
    # boolean mask 2 x 9 = 18: 4530
    assert got["activations"] == (4530, 0)
    # head: chunk = min(2^25 // 10, T) = 6: 6 x 10 x (8 + 4) = 720; weight gradient
    # 10 x 8 x (4 + 4) = 640; saved 6 x (2 x 8 + 8) = 144: 1504
    assert got["head"] == (1504, 0)
    # resident 2704 + 5408 + 2704 = 10816; learner 2704 + 5408 + 4530 + 1504 = 14146
    assert plan.phase("resident") == 10816 and plan.phase("learner") == 14146
    assert plan.device_total == 10816 + 14146


def test_checkpointing_offload_and_one_rank():
    base = dict(micro_batch_size=2, seq_len=3, engine="none", reserve=0)
    # layer inputs 2 x 6 x 2 x 8 = 192, one layer 6 x 336 + 36 = 2052, final 408, mask 18
    ckpt = items(
        memory_plan(SHAPE, Setting(ranks_per_node=2, activation_checkpointing=True, **base))
    )
    assert ckpt["activations"] == (192 + 2052 + 408 + 18, 0)
    off = items(
        memory_plan(SHAPE, Setting(ranks_per_node=2, cpu_offload=True, anchor_on_cpu=True, **base))
    )
    assert off["weights"] == off["anchor"] == off["gradients"] == (0, 2704)
    assert off["optimizer"] == (0, 5408)
    # one rank without FSDP2: whole shards (4 x 1352 = 5408) and the compute copy 2 x 1352
    one = items(memory_plan(SHAPE, Setting(**base)))
    assert one["weights"] == (5408, 0) and one["unsharded"] == (2704, 0)
    # 3 ranks: shards round up, 4 x 1352 / 3 = 1802.67 -> 1803
    assert items(memory_plan(SHAPE, Setting(ranks_per_node=3, **base)))["weights"] == (1803, 0)
    # float32: the weight gradient accumulates in place, 4 x 10 x 8 = 320;
    # 6 x 10 x (8 + 8) = 960; saved 6 x (4 x 8 + 8) = 240
    fp32 = items(memory_plan(SHAPE, Setting(compute_dtype="float32", **base)))
    assert fp32["head"] == (960 + 320 + 240, 0)
    # full logits instead: 6 x 10 x (2 x 2 + 16) = 1200
    assert items(memory_plan(SHAPE, Setting(chunked_head=False, **base)))["logits"] == (1200, 0)


def test_engine_phases():
    base = dict(ranks_per_node=2, micro_batch_size=2, seq_len=3, reserve=0, device_memory=100_000)
    # vLLM at 0.25 of 100 000 bytes: 25 000; asleep during the learner: max(14146, 25000)
    plan = memory_plan(SHAPE, Setting(gpu_memory_utilization=0.25, **base))
    # asleep at level 2 vLLM discards its weights: nothing is parked on the host
    assert items(plan)["engine"] == (25_000, 0)
    assert plan.device_total == 10816 + 25_000
    awake = memory_plan(SHAPE, Setting(gpu_memory_utilization=0.25, engine_sleeps=False, **base))
    assert awake.device_total == 10816 + 14146 + 25_000
    # HF engine, 3 rows: weights 2 x 1352 = 2704; KV 3 x 3 x 2 layers x 2 x 1 x 4 x 2 = 288
    hf = memory_plan(SHAPE, Setting(engine="hf", engine_rows=3, engine_sleeps=False, **base))
    assert items(hf)["engine"] == (2704 + 288, 0)
    assert hf.time_shared and hf.device_total == 10816 + 14146


def test_check_fits_raises_one_line_with_the_plan():
    base = dict(micro_batch_size=2, seq_len=3, reserve=0, gpu_memory_utilization=0.25)
    check_fits(memory_plan(SHAPE, Setting(device_memory=10**6, **base)))
    with pytest.raises(ConfigError) as err:  # peak 10816 + 25000 > 30000
        check_fits(memory_plan(SHAPE, Setting(device_memory=30_000, **base)))
    message = str(err.value)
    assert "\n" not in message and "does not fit" in message
    assert all(name in message for name in ("weights", "optimizer", "activations", "engine"))
    # vLLM's share, 0.25 x 10 000 = 2500 bytes, below its own weights (2 x 1352 bytes)
    with pytest.raises(ConfigError, match="cannot hold its"):
        check_fits(memory_plan(SHAPE, Setting(device_memory=10_000, **base)))


def test_bad_settings_are_config_errors():
    for bad in (
        dict(compute_dtype="int8"),
        dict(engine="sglang"),
        dict(micro_batch_size=0, engine="none"),
        dict(engine="vllm", device_memory=0),
        dict(engine="vllm", device_memory=GIB, gpu_memory_utilization=1.5),
    ):
        with pytest.raises(ConfigError):
            Setting(**bad)


def test_plan_from_config_and_table():
    config = LlamaConfig(
        vocab_size=10, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1,
    )  # fmt: skip
    plan = plan_from_config(config, micro_batch_size=2, seq_len=3, engine="none", reserve=0)
    assert plan.shape == replace(SHAPE, head_dim=4)  # LlamaConfig states its head_dim
    assert plan.device_total == memory_plan(SHAPE, plan.setting).device_total
    table = format_plan(plan)
    assert table.splitlines()[0].split()[:3] == ["item", "device", "GiB"]
    assert "activations" in table and "peak" in table


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_activation_count_matches_what_autograd_saves(dtype):
    # The decoder's forward on a padded batch, counting every distinct tensor autograd saves
    # except the parameters. The formula leaves out rope's cos and sin (2 x 16 x c bytes per
    # token, < 0.7 % of the ~9 700 counted here) and counts the boolean mask that no layer saves
    # (b L^2 = 18 KB, 1 %): within 3 %, and 5 % for the rounding of those shares.
    config = LlamaConfig(
        vocab_size=100, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(dtype).train()
    params = {p.data_ptr() for p in model.parameters()}
    b, L = 2, 96
    ids = torch.randint(0, 100, (b, L))
    mask = torch.ones(b, L, dtype=torch.long)
    mask[0, :5] = 0
    saved: dict[tuple[int, torch.dtype], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.data_ptr() not in params:
            saved[(t.data_ptr(), t.dtype)] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.model(input_ids=ids, attention_mask=mask)
    name = "bfloat16" if dtype == torch.bfloat16 else "float32"
    setting = Setting(compute_dtype=name, micro_batch_size=b, seq_len=L, engine="none")
    planned = items(plan_from_config(config, **vars(setting)))["activations"][0]
    assert abs(sum(saved.values()) / planned - 1) < 0.05
