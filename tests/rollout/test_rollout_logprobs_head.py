"""compute_logprobs through the decoder and the chunked head equals the model's full-logits pass
(log-probs, entropies, every parameter's gradient), and only where the maths is the same."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from rounding import logprob_tolerance
from test_rollout_packed import SMALL, model_for, ragged_batch
from transformers.models.llama.modeling_llama import LlamaRMSNorm
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm

import t1.rollout.head as head
import t1.rollout.logprobs as logprobs
from t1.rollout import compute_logprobs

# In float64 (u = 2^-53 = 1.1e-16) the two passes differ only in the order of their sums (packed
# rows against dense ones, chunked head against one matmul, logsumexp against log_softmax):
# with dot products of at most 64 terms (the MLP width) of values below ~10, about 40 rounded
# steps from the embedding to a log-prob, and a gradient entry summing at most ~100 positions,
# the gap stays below 100 * 40 * 64 * 10 * 1.1e-16 = 2.8e-10: ATOL = 1e-9.
ATOL = 1e-9


def rms_norm_in_input_dtype(self, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.rms_norm(x, self.weight.shape, self.weight, self.variance_epsilon)


def outputs(model, batch, micro_batch_size: int, **kwargs):
    model.zero_grad(set_to_none=True)
    logp, ent = compute_logprobs(model, batch, 1.3, micro_batch_size, True, **kwargs)
    (logp.sum() - 0.1 * ent.sum()).backward()
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    return logp.detach(), ent.detach(), grads


def untie(model):
    """The same model with its own output matrix (Qwen2.5-7B and larger do not tie)."""
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone() * 1.5)
    return model


@pytest.mark.numerics
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize(
    "path, micro_batch_size", [("full", 9), ("shared", 4), ("packed", 4), ("packed", 12)]
)
def test_chunked_learner_pass_equals_the_full_logits_pass(
    tiny_tokenizer, arch, tied, path, micro_batch_size, monkeypatch
):
    share = path != "full"
    if path == "shared":  # each prompt once, the responses through the decoder module
        monkeypatch.setattr(logprobs, "supports_packed_learner", lambda model: False)
    # the models' RMSNorm modules compute in float32 whatever the input, which would round
    # float64 passes that group rows differently apart by float32 ulps: here they run the same
    # formula in the input's dtype, as the lean passes' F.rms_norm does
    for norm in (LlamaRMSNorm, Qwen2RMSNorm):
        monkeypatch.setattr(norm, "forward", rms_norm_in_input_dtype)
    model = model_for(tiny_tokenizer, arch).double()
    model = model if tied else untie(model)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    V = model.lm_head.weight.shape[0]
    monkeypatch.setattr(head, "HEAD_CHUNK_ELEMENTS", 5 * V)  # 5 positions a chunk: ragged
    calls = []
    real = logprobs.head_logprobs
    monkeypatch.setattr(logprobs, "head_logprobs", lambda *a: calls.append(a[0]) or real(*a))
    batch = ragged_batch(tiny_tokenizer.pad_token_id)
    full = outputs(model, batch, micro_batch_size, share_prompts=False, chunked_head=False)
    assert not calls
    chunked = outputs(model, batch, micro_batch_size, share_prompts=share)
    # one head call per micro-batch, on the response tokens only
    assert len(calls) == -(-len(batch) // micro_batch_size)
    assert sum(len(h) for h in calls) == batch.response_mask.sum()
    for a, b in zip(chunked[:2], full[:2]):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    assert len(chunked[2]) == len(full[2]) == len([p for p in model.parameters()])
    for a, b in zip(chunked[2], full[2]):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


@pytest.mark.numerics
def test_padding_is_zero_and_its_tokens_change_nothing(tiny_tokenizer):
    model = model_for(tiny_tokenizer, "llama").double()
    batch = ragged_batch(tiny_tokenizer.pad_token_id)
    pad = batch.response_mask == 0
    logp, ent, grads = outputs(model, batch, 5, share_prompts=False)
    assert torch.all(logp[pad] == 0) and torch.all(ent[pad] == 0)
    assert torch.all(logp[~pad] < 0)
    # other tokens where the attention mask hides them: nothing reads them
    ids = batch.input_ids.clone()
    ids[:, batch.prompt_len :][pad] = 7
    ids[batch.attention_mask == 0] = 9
    other = outputs(model, type(batch)(**{**vars(batch), "input_ids": ids}), 5, share_prompts=False)
    for a, b in zip([logp, ent, *grads], [other[0], other[1], *other[2]]):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


def test_the_model_and_its_layers_run_as_module_calls(tiny_tokenizer):
    # FSDP2 unshards the root's and each layer's parameters in hooks on their module calls
    # (tests/rollout/test_rollout_fsdp.py runs it); the head computes no logits there
    model = model_for(tiny_tokenizer, "llama")
    seen, heads = [], []
    modules = {"root": model, "decoder": model.model}
    modules.update({f"layer{i}": layer for i, layer in enumerate(model.model.layers)})
    for name, module in modules.items():
        module.register_forward_pre_hook(lambda *_, name=name: seen.append(name))
    model.lm_head.register_forward_hook(lambda m, a, out: heads.append(out.shape))
    batch = ragged_batch(tiny_tokenizer.pad_token_id)
    compute_logprobs(model, batch, 1.0, 16, share_prompts=False)
    assert seen == ["root", "decoder", "layer0", "layer1"]
    assert heads == [(len(batch), 0, model.config.vocab_size)]


@pytest.mark.numerics
def test_a_family_that_changes_its_logits_takes_its_own_forward(tiny_tokenizer):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(
        vocab_size=len(tiny_tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        final_logit_softcapping=2.0,  # small, so the capping changes every log-prob
        pad_token_id=tiny_tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = Gemma2ForCausalLM(config)
    torch.nn.init.normal_(model.lm_head.weight, std=1.0)  # logits well beyond the cap
    batch = ragged_batch(tiny_tokenizer.pad_token_id, k=1)
    with pytest.raises(ValueError, match="final_logit_softcapping=2.0"):
        compute_logprobs(model, batch, 1.0, chunked_head=True)
    with torch.no_grad():
        logp = compute_logprobs(model, batch, 1.0)
        logits = model(batch.input_ids, attention_mask=batch.attention_mask).logits
        P, R = batch.prompt_len, batch.response_mask.shape[1]
        ref = logits[:, P - 1 : P + R - 1].float().log_softmax(-1)
        ref = ref.gather(-1, batch.response_ids[..., None])[..., 0] * batch.response_mask
    # the model's forward on two paths (the learner's, this one), then logsumexp instead of
    # log_softmax: within one log-prob's bound of tests/rounding.py
    atol = logprob_tolerance(model, batch.input_ids)
    torch.testing.assert_close(logp, ref, atol=atol, rtol=0)
    uncapped = torch.nn.functional.linear(
        model.model(batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state,
        model.lm_head.weight,
    )
    assert not torch.allclose(uncapped, logits, atol=0.1)  # the capping is not a no-op


def test_unsupported_reasons_name_the_key_or_class():
    def stand_in(name: str, **config):
        return type(name, (), {"config": SimpleNamespace(**config)})()

    reason = head.chunked_head_unsupported(stand_in("CohereForCausalLM", logit_scale=0.0625))
    assert "config.logit_scale=0.0625" in reason
    reason = head.chunked_head_unsupported(stand_in("GraniteForCausalLM", logits_scaling=8.0))
    assert "config.logits_scaling=8.0" in reason
    reason = head.chunked_head_unsupported(stand_in("PhiForCausalLM"))
    assert "PhiForCausalLM is not one of" in reason


def test_fsdp_wrapper_classes_keep_their_family(tiny_tokenizer):
    # fully_shard swaps the class for FSDP<Name>(FSDPModule, Name); stand-in for FSDPModule
    model = model_for(tiny_tokenizer, "qwen2")
    mixin = type("FSDPModule", (), {})
    model.__class__ = type("FSDPQwen2ForCausalLM", (mixin, type(model)), {})
    assert head.model_family(model) == "Qwen2ForCausalLM"
    assert head.chunked_head_unsupported(model) is None
    assert SMALL["hidden_size"] == head.output_head(model)[0].shape[1]
