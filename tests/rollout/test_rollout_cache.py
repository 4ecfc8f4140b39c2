"""GrowingLayer holds exactly what transformers' DynamicLayer holds, through growth and selection."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from transformers.cache_utils import DynamicLayer

from t1.rollout.cache import cache_kwargs, growing_layer, make_cache, supports_logits_to_keep


def test_growing_layer_matches_dynamic_layer():
    gen = torch.Generator().manual_seed(0)
    ours, ref = growing_layer(capacity=8), DynamicLayer()
    # (new positions, rows kept afterwards): 5 + 1 + 1 = 7 fits the first 8 slots, + 4 = 11
    # forces a growth to 16; selections happen with 6 of 8 filled (a full copy) and 11 of 16
    schedule = [(5, None), (1, [3, 1, 2]), (1, None), (4, [2, 0]), (1, None)]
    rows, length = 4, 0
    for q, keep in schedule:
        k = torch.randn(rows, 2, q, 3, generator=gen)
        v = torch.randn(rows, 2, q, 3, generator=gen)
        ko, vo = ours.update(k, v)
        kr, vr = ref.update(k, v)
        length += q
        assert torch.equal(ko, kr) and torch.equal(vo, vr)
        assert ours.get_seq_length() == ref.get_seq_length() == length
        if keep is not None:
            ours.batch_select_indices(torch.tensor(keep))
            ref.batch_select_indices(torch.tensor(keep))
            rows = len(keep)
            assert torch.equal(ours.keys, ref.keys) and torch.equal(ours.values, ref.values)


def test_selection_copies_only_filled_part_when_small():
    layer = growing_layer(capacity=64)
    k = torch.arange(4 * 1 * 3 * 2, dtype=torch.float32).view(4, 1, 3, 2)
    layer.update(k, k.clone())
    layer.batch_select_indices(torch.tensor([1, 3]))
    assert torch.equal(layer.keys, k[[1, 3]])
    nxt = torch.ones(2, 1, 1, 2)
    keys, _ = layer.update(nxt, nxt)
    assert torch.equal(keys, torch.cat([k[[1, 3]], nxt], dim=-2))


def test_cache_goes_under_the_name_the_forward_takes(tiny_model):
    def old_style(input_ids, past_key_values=None, use_cache=False): ...

    def new_style(input_ids, cache=None, use_cache=False, logits_to_keep=0): ...

    marker = object()
    assert cache_kwargs(SimpleNamespace(forward=old_style), marker) == {"past_key_values": marker}
    assert cache_kwargs(SimpleNamespace(forward=new_style), marker) == {"cache": marker}
    assert cache_kwargs(SimpleNamespace(forward=lambda input_ids: None), marker) == {}
    assert supports_logits_to_keep(SimpleNamespace(forward=new_style))
    assert not supports_logits_to_keep(SimpleNamespace(forward=old_style))
    # the installed transformers: whichever name it uses, the model's own cache gets filled
    cache = make_cache(tiny_model)
    tiny_model(
        input_ids=torch.tensor([[5, 6, 7]]), use_cache=True, **cache_kwargs(tiny_model, cache)
    )
    assert cache.get_seq_length() == 3
