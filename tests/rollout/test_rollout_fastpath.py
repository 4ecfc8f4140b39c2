"""The lean decode step gives the model's own forward logits (Llama and Qwen2, with padding;
fused projections with the attention scale folded in and unfused ones; batched-matmul and SDPA
attention; rope from the table and from the model's rotary module)."""

from __future__ import annotations

import pytest
import torch
from controlled_lm import Doubled
from rounding import bound, logprob_tolerance, path_magnitude

import t1.rollout.fastpath as fastpath
from t1.config import TinyModelConfig
from t1.models import build_tiny_model
from t1.rollout import HFEngine, SamplingParams, collate_rollouts
from t1.rollout.cache import cache_kwargs, make_cache
from t1.rollout.fastpath import DecodePlan, decode_step, supports_fast_decode

SMALL = dict(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64)


def prefill(model, ids: torch.Tensor, mask: torch.Tensor):
    cache = make_cache(model, capacity=ids.shape[1] + 4)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            **cache_kwargs(model, cache),
        )
    return cache, mask.sum(-1)


@pytest.mark.numerics
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("route", ["fused-bmm-table", "unfused-sdpa"])
def test_decode_step_equals_model_forward(tiny_tokenizer, arch, padded, route, monkeypatch):
    model = build_tiny_model(tiny_tokenizer, TinyModelConfig(arch=arch, **SMALL), seed=1).eval()
    if arch == "qwen2":  # give the q/k/v biases Qwen2 has (zero at init) a value
        for block in model.model.layers:
            torch.nn.init.normal_(block.self_attn.q_proj.bias, std=0.5)
            torch.nn.init.normal_(block.self_attn.k_proj.bias, std=0.5)
    assert supports_fast_decode(model)
    ids = torch.randint(6, 90, (3, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    if padded:
        mask[0, :3] = 0
        mask[2, :1] = 0
    fast_cache, pos = prefill(model, ids, mask)
    ref_cache, _ = prefill(model, ids, mask)
    nxt = torch.tensor([11, 12, 13])
    full_mask = torch.cat([mask, torch.ones(3, 1, dtype=mask.dtype)], dim=-1)
    if route == "unfused-sdpa":
        monkeypatch.setattr(fastpath, "FUSE_MAX_PARAMS", 0)
    with torch.no_grad():
        plan = DecodePlan(model, max_position=None if route == "unfused-sdpa" else 8)
        if route == "unfused-sdpa":
            plan.bmm_attention = False
        # fused weights carry the attention scale; rope comes from the table when it has one
        folded = route != "unfused-sdpa"
        assert (plan.attn_scale == 1.0) == folded and (plan.rope_table is not None) == folded
        fast = decode_step(plan, nxt, pos, fast_cache, full_mask if padded else None)
        ref = model(
            input_ids=nxt[:, None],
            attention_mask=full_mask if padded else None,
            position_ids=pos[:, None],
            **cache_kwargs(model, ref_cache),
        ).logits[:, -1]
    # two paths to a logit, within a log-prob's bound (tests/rounding.py: n roundings at magnitude
    # m differ by <= n·EPS32·m; n: logprob_terms, m: path_magnitude)
    seq = torch.cat([ids, nxt[:, None]], dim=1)
    torch.testing.assert_close(fast, ref, rtol=0, atol=logprob_tolerance(model, seq))
    # the new position's layer-0 keys: an RMS norm and a projection (hidden terms each) and 8
    # elementwise steps (the norm's scalings, rope, bias), at magnitude <= m
    n = 2 * model.config.hidden_size + 8
    atol = bound(n, path_magnitude(model, seq))
    torch.testing.assert_close(
        fast_cache.layers[0].keys, ref_cache.layers[0].keys, rtol=0, atol=atol
    )


def test_training_mode_and_other_models_use_their_forward(tiny_model):
    assert supports_fast_decode(tiny_model.eval())
    assert not supports_fast_decode(tiny_model.train())
    assert not supports_fast_decode(torch.nn.Linear(2, 2))


@pytest.mark.numerics
def test_engine_same_output_with_and_without_fast_path(tiny_model, tiny_tokenizer):
    engine = HFEngine(tiny_model, tiny_tokenizer)
    sp = SamplingParams(temperature=1.0, max_new_tokens=12, seed=5)
    prompts = ["<user>1+1<assistant>", "<user>22*3=?<assistant>"]
    fast = engine.generate(prompts, 3, sp)
    engine.fast_decode = False
    slow = engine.generate(prompts, 3, sp)
    assert [r.response_ids for r in fast] == [r.response_ids for r in slow]
    # two paths to a log-prob, within tests/rounding.py's bound
    atol = logprob_tolerance(tiny_model, collate_rollouts(fast, 0).input_ids)
    for a, b in zip(fast, slow):
        assert a.logprobs == pytest.approx(b.logprobs, rel=0, abs=atol)


@pytest.mark.numerics
def test_wrapped_projections_run_as_their_own_modules(tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer, TinyModelConfig(**SMALL), seed=2).eval()
    for block in model.model.layers:
        block.self_attn.k_proj = Doubled(block.self_attn.k_proj)
        block.mlp.up_proj = Doubled(block.mlp.up_proj)
    ids = torch.randint(6, 90, (2, 5), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    fast_cache, pos = prefill(model, ids, mask)
    ref_cache, _ = prefill(model, ids, mask)
    nxt = torch.tensor([7, 8])
    with torch.no_grad():
        fast = decode_step(DecodePlan(model), nxt, pos, fast_cache, None)
        ref = model(
            input_ids=nxt[:, None], position_ids=pos[:, None], **cache_kwargs(model, ref_cache)
        ).logits[:, -1]
    # two paths to a logit, within a log-prob's bound (tests/rounding.py)
    atol = logprob_tolerance(model, torch.cat([ids, nxt[:, None]], dim=1))
    torch.testing.assert_close(fast, ref, rtol=0, atol=atol)


@pytest.mark.numerics
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_lean_prefill_equals_model_forward(tiny_tokenizer, arch):
    """Left-padded prompts: the same last logits, and the same cache at every real position."""
    model = build_tiny_model(tiny_tokenizer, TinyModelConfig(arch=arch, **SMALL), seed=3).eval()
    ids = torch.randint(6, 90, (3, 6), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    mask[2, :5] = 0  # a one-token prompt
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    ref_cache = make_cache(model, capacity=8)
    with torch.no_grad():
        ref = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            **cache_kwargs(model, ref_cache),
        ).logits[:, -1]
        cache = make_cache(model, capacity=8)
        plan = DecodePlan(model, max_position=8)
        lean = fastpath.prefill_logits(plan, cache, ids, positions, mask)
    # two paths to a logit, and to every key and value (a prefix of a logit's path): within a
    # log-prob's bound (tests/rounding.py: n roundings at magnitude m differ by <= n·EPS32·m)
    atol = logprob_tolerance(model, ids)
    torch.testing.assert_close(lean, ref, rtol=0, atol=atol)
    real = mask.bool()
    for mine, theirs in zip(cache.layers, ref_cache.layers):
        for a, b in ((mine.keys, theirs.keys), (mine.values, theirs.values)):
            a, b = a.transpose(1, 2)[real], b.transpose(1, 2)[real]
            torch.testing.assert_close(a, b, rtol=0, atol=atol)
