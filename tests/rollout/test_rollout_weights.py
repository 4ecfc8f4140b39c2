"""`iter_full_weights`: whole tensors under checkpoint names, from plain and FSDP2 modules."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

from t1.models import build_char_tokenizer, build_tiny_model
from t1.rollout.weights import checkpoint_name, iter_full_weights

sys.path.insert(0, str(Path(__file__).parent))
from fsdp_weights_child import SHARDED  # noqa: E402
from two_ranks import run_two_ranks  # noqa: E402


def test_plain_module_yields_each_parameter_once_in_module_order(tiny_model):
    got = list(iter_full_weights(tiny_model))
    assert [n for n, _ in got] == [n for n, _ in tiny_model.named_parameters()]
    # the lm_head is tied to the embedding: one tensor, sent once
    assert "lm_head.weight" not in dict(got) and tiny_model.config.tie_word_embeddings
    for (_, sent), p in zip(got, tiny_model.parameters()):
        assert torch.equal(sent, p) and not sent.requires_grad


def test_dtype_casts_and_leaves_the_module_alone(tiny_model):
    before = [p.detach().clone() for p in tiny_model.parameters()]
    got = list(iter_full_weights(tiny_model, dtype=torch.bfloat16))
    assert all(t.dtype == torch.bfloat16 for _, t in got)
    for (_, sent), p in zip(got, before):
        assert torch.equal(sent, p.to(torch.bfloat16))
    assert all(p.dtype == torch.float32 for p in tiny_model.parameters())


def test_wrapper_segments_are_removed_from_names(tiny_model):
    plain = [n for n, _ in tiny_model.named_parameters()]
    layers = tiny_model.model.layers
    for i, layer in enumerate(layers):
        layers[i] = checkpoint_wrapper(layer)  # activation checkpointing renames its params
    assert any("_checkpoint_wrapped_module" in n for n, _ in tiny_model.named_parameters())
    assert [n for n, _ in iter_full_weights(tiny_model)] == plain
    assert checkpoint_name("_orig_mod.model.norm.weight") == "model.norm.weight"


def test_fsdp2_shards_come_back_whole_on_every_rank(tmp_path):
    """Two gloo processes shard one seeded model with fully_shard; each receives every full
    tensor, equal to the unsharded model's, in fp32 and cast to bf16."""
    run_two_ranks(Path(__file__).parent / "fsdp_weights_child.py", str(tmp_path))
    reference = build_tiny_model(build_char_tokenizer(SHARDED.alphabet), SHARDED, seed=0)
    expected = [(n, p.detach()) for n, p in reference.named_parameters()]
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank-{rank}.pt")
        assert len(got["sharded"]) == len(expected)  # every parameter was a DTensor shard
        for key, cast in (("full", None), ("bf16", torch.bfloat16)):
            assert [n for n, _ in got[key]] == [n for n, _ in expected]
            for (name, t), (_, want) in zip(got[key], expected):
                want = want if cast is None else want.to(cast)
                # a gather copies bytes: exactly equal, casts included (cast, then gathered)
                assert t.shape == want.shape and torch.equal(t, want), name
