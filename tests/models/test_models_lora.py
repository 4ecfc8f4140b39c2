"""LoRA adapters (t1.models.lora): injection, merged weights, and every log-prob path of the
learner on an adapted model against the merged model's."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))

from rounding import bound, logprob_terms, path_magnitude  # noqa: E402

from t1.config import LoraConfig, ModelConfig, TinyModelConfig  # noqa: E402
from t1.errors import ConfigError  # noqa: E402
from t1.models import build_char_tokenizer, build_tiny_model  # noqa: E402
from t1.models.lora import (  # noqa: E402
    add_adapters,
    fingerprint,
    has_adapters,
    merge_adapters_,
    same_fingerprint,
    spec_of,
)
from t1.rollout import compute_logprobs  # noqa: E402
from t1.rollout.batch import Batch  # noqa: E402
from t1.rollout.fastpath import supports_packed_learner  # noqa: E402
from t1.rollout.head import chunked_head_unsupported  # noqa: E402
from t1.rollout.logprobs import supports_shared_prompts  # noqa: E402
from t1.rollout.weights import iter_full_weights  # noqa: E402

peft = pytest.importorskip("peft", reason="LoRA needs the `lora` extra (peft); CI installs it")

TINY = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                       intermediate_size=64, max_position=64)  # fmt: skip
RANK, ALPHA = 4, 8.0
LORA = LoraConfig(rank=RANK, alpha=ALPHA)


def tiny(arch: str = "llama", seed: int = 0) -> tuple[torch.nn.Module, object]:
    tok = build_char_tokenizer(TINY.alphabet)
    cfg = TinyModelConfig(**{**TINY.__dict__, "arch": arch})
    return build_tiny_model(tok, cfg, seed=seed), tok


def adapted(arch: str = "llama", lora: LoraConfig = LORA) -> torch.nn.Module:
    """A tiny model with adapters whose B is not zero (as after training)."""
    model, _ = tiny(arch)
    add_adapters(model, lora, ModelConfig(), seed=1)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    return model


def test_adapters_are_injected_frozen_base_float32_and_seeded():
    model, _ = tiny()
    rng = torch.get_rng_state()
    add_adapters(model, LORA, ModelConfig(), seed=3)
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is left as it was
    assert type(model).__name__ == "LlamaForCausalLM" and has_adapters(model)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    # 2 layers x 7 projections x (A, B)
    assert len(names) == 2 * 7 * 2 and all(
        ".lora_A.default." in n or ".lora_B." in n for n in names
    )
    assert "model.layers.0.self_attn.q_proj.base_layer.weight" in dict(model.named_parameters())
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n in names)
    # B = 0: the adapted model is the base model; A is drawn from the seed
    assert all(not p.any() for n, p in model.named_parameters() if ".lora_B." in n)
    twin, _ = tiny()
    add_adapters(twin, LORA, ModelConfig(), seed=3)
    a = dict(model.named_parameters())
    assert all(torch.equal(a[n], p) for n, p in twin.named_parameters())
    assert spec_of(model).scaling == ALPHA / RANK
    assert add_adapters(model, LORA, ModelConfig(), seed=9) is model  # idempotent


def test_zero_b_adapters_give_the_base_models_logprobs_exactly():
    base, tok = tiny()
    model = add_adapters(copy.deepcopy(base), LORA, ModelConfig(), seed=0)
    batch = _batch(len(tok))
    with torch.no_grad():
        # B A x = 0 exactly, and y + 0 = y: bit for bit
        assert torch.equal(compute_logprobs(model, batch), compute_logprobs(base, batch))


def test_bad_lora_settings_name_their_key():
    model, _ = tiny()
    with pytest.raises(ConfigError, match="model.lora.target_modules"):
        add_adapters(model, LoraConfig(rank=4, target_modules=["nope_proj"]), ModelConfig(), 0)
    with pytest.raises(ConfigError, match="linear projections only"):
        add_adapters(model, LoraConfig(rank=4, target_modules=["embed_tokens"]), ModelConfig(), 0)
    for bad, key in [({"rank": -1}, "rank"), ({"alpha": 0.0}, "alpha"), ({"dropout": 1.0}, "dropout"),
                     ({"target_modules": []}, "target_modules")]:  # fmt: skip
        with pytest.raises(ConfigError, match=f"model.lora.{key}"):
            add_adapters(tiny()[0], LoraConfig(**{"rank": 4, **bad}), ModelConfig(), 0)
    assert not has_adapters(add_adapters(tiny()[0], LoraConfig(rank=0), ModelConfig(), 0))


def _batch(vocab: int, b: int = 6, P: int = 5, R: int = 7) -> Batch:
    """K = 3 responses to each of 2 prompts, with ragged response lengths."""
    gen = torch.Generator().manual_seed(0)
    prompts = torch.randint(6, vocab, (b // 3, P), generator=gen).repeat_interleave(3, 0)
    ids = torch.cat([prompts, torch.randint(6, vocab, (b, R), generator=gen)], dim=1)
    mask = torch.ones(b, R)
    for i in range(b):
        mask[i, 3 + i % 4 :] = 0
    am = torch.ones_like(ids)
    am[:, P:] = mask.long()
    pos = (am.cumsum(1) - 1).clamp_min(0)
    return Batch(ids, am, pos, P, mask)


def _tolerance(model: torch.nn.Module, ids: torch.Tensor) -> float:
    """Two float32 evaluations of a log-prob (tests/rounding.py): the model's terms, and per
    adapted projection the adapter's A x (in_features terms), B (A x) (r terms), the scaling and
    the add; the merged weight W + s·B A rounds its r-term sums once more. At the largest
    magnitude on the adapted model's path (A and B are nn.Linear: their |w|·|x| counted)."""
    c = model.config
    per_layer = 7 * (c.hidden_size + c.intermediate_size + 2 * RANK + 3)
    n = logprob_terms(c, ids.shape[1]) + c.num_hidden_layers * per_layer
    return bound(n, path_magnitude(model, ids))


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_adapted_logprobs_equal_the_merged_models_on_every_path(arch):
    model = adapted(arch).eval()
    merged = merge_adapters_(copy.deepcopy(model))
    assert not has_adapters(merged) and type(merged.model.layers[0].mlp.up_proj) is torch.nn.Linear
    # every fast path applies to the adapted model: the chunked head, shared prompts, packing
    assert chunked_head_unsupported(model) is None
    assert supports_shared_prompts(model) and supports_packed_learner(model)
    batch = _batch(model.config.vocab_size)
    atol = _tolerance(model, batch.input_ids)
    with torch.no_grad():
        want = compute_logprobs(merged, batch, 0.9, share_prompts=False, chunked_head=False)
        for share in (True, False):
            for head in (True, False):
                got = compute_logprobs(model, batch, 0.9, share_prompts=share, chunked_head=head)
                torch.testing.assert_close(got, want, rtol=0, atol=atol)
    assert float((want * batch.response_mask).abs().sum()) > 0


def test_a_peft_model_wrapper_gives_its_causal_lms_logprobs():
    model = adapted()
    merged = merge_adapters_(copy.deepcopy(model))
    base, _ = tiny()
    config = peft.LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=LORA.target_modules)
    wrapped = peft.get_peft_model(base, config)
    trained = {n.replace(".default", ""): p for n, p in model.named_parameters()}
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            key = name.removeprefix("base_model.model.").replace(".default", "")
            p.copy_(trained[key])
    batch = _batch(model.config.vocab_size)
    with torch.no_grad():
        got = compute_logprobs(wrapped, batch)
        want = compute_logprobs(merged, batch)
    torch.testing.assert_close(got, want, rtol=0, atol=_tolerance(model, batch.input_ids))


def test_engine_weights_are_merged_under_the_base_names():
    model = adapted()
    merged = merge_adapters_(copy.deepcopy(model))
    got = dict(iter_full_weights(model))
    want = dict(merged.named_parameters())
    assert got.keys() == want.keys()  # no lora_A/lora_B, no base_layer segment
    for name, tensor in got.items():
        # both W + s·(B A) in float32, the same ops: bit for bit
        assert torch.equal(tensor, want[name]), name
    bf16 = dict(iter_full_weights(model, torch.bfloat16))
    assert all(t.dtype == torch.bfloat16 for t in bf16.values())
    assert torch.equal(bf16["model.layers.1.mlp.down_proj.weight"],
                       want["model.layers.1.mlp.down_proj.weight"].bfloat16())  # fmt: skip


def test_fingerprint_tells_bases_apart():
    a, b = tiny(seed=0)[0], tiny(seed=1)[0]
    assert same_fingerprint(fingerprint(a), fingerprint(copy.deepcopy(a)))
    assert not same_fingerprint(fingerprint(a), fingerprint(b))
    # the adapters are not part of it: a trained adapter leaves the base's fingerprint as it was
    assert same_fingerprint(fingerprint(adapted()), fingerprint(tiny()[0]))
