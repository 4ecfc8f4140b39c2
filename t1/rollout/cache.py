"""A KV cache that grows in place: amortised O(1) copying per generated token.

transformers' `DynamicLayer` appends with `torch.cat`, copying the whole cache at every step
(O(S^2) bytes over a response of S tokens). `GrowingLayer` keeps a buffer with spare room
(doubling when full) and hands attention a view of its filled part. Everything else — mask
sizes, `batch_select_indices`, sliding-window layers — behaves as transformers expects, because
the layer stays a `DynamicLayer` whose `keys`/`values` are the filled views.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class GrowingLayer(DynamicLayer):
    """`DynamicLayer` over a preallocated buffer with spare capacity."""

    # the first allocation holds this many positions (the prompt plus max_new_tokens)
    capacity = 64
    _kbuf: torch.Tensor | None = None
    _vbuf: torch.Tensor | None = None
    _len = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._kbuf = self._vbuf = None
        self._len = 0

    def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, need: int) -> None:
        capacity = max(need, 2 * (self._kbuf.shape[-2] if self._kbuf is not None else 0))
        capacity = max(capacity, self.capacity)
        kshape = (*key_states.shape[:-2], capacity, key_states.shape[-1])
        vshape = (*value_states.shape[:-2], capacity, value_states.shape[-1])
        kbuf = key_states.new_empty(kshape)
        vbuf = value_states.new_empty(vshape)
        if self._kbuf is not None and self._len:
            kbuf[..., : self._len, :] = self._kbuf[..., : self._len, :]
            vbuf[..., : self._len, :] = self._vbuf[..., : self._len, :]
        self._kbuf, self._vbuf = kbuf, vbuf

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start = self._len
        need = start + key_states.shape[-2]
        if self._kbuf is None or need > self._kbuf.shape[-2]:
            self._grow(key_states, value_states, need)
        self._kbuf[..., start:need, :] = key_states
        self._vbuf[..., start:need, :] = value_states
        self._len = need
        self.keys = self._kbuf[..., :need, :]
        self.values = self._vbuf[..., :need, :]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._kbuf is None:
            return
        self._kbuf = _select_rows(self._kbuf, indices, self._len)
        self._vbuf = _select_rows(self._vbuf, indices, self._len)
        self.keys = self._kbuf[..., : self._len, :]
        self.values = self._vbuf[..., : self._len, :]

    def reset(self) -> None:
        super().reset()
        self._kbuf = self._vbuf = None
        self._len = 0


def _select_rows(buf: torch.Tensor, indices: torch.Tensor, filled: int) -> torch.Tensor:
    """`buf[indices]`, copying only the filled positions when they are under half the buffer."""
    if 2 * filled >= buf.shape[-2]:
        return buf[indices]
    out = buf.new_empty((len(indices), *buf.shape[1:]))
    out[..., :filled, :] = buf[indices, ..., :filled, :]
    return out


def growing_layer(capacity: int) -> GrowingLayer:
    layer = GrowingLayer()
    layer.capacity = capacity
    return layer


def make_cache(model: Any, capacity: int = 64, growing: bool = True) -> DynamicCache:
    """A `DynamicCache` for `model` whose plain full-attention layers grow in place.

    `capacity` (prompt + new tokens) sizes the first allocation, so a generation that stays
    within it never reallocates.
    """
    cache = DynamicCache(config=model.config)
    if growing:
        cache.layers = [
            growing_layer(capacity) if type(x) is DynamicLayer else x for x in cache.layers
        ]
    return cache


def forward_params(model: Any) -> frozenset[str]:
    """The keyword arguments `model.forward` takes (empty when its signature can't be read)."""
    try:
        return frozenset(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return frozenset()


def supports_logits_to_keep(model: Any) -> bool:
    """Whether `model.forward` can skip the lm_head on positions whose logits nobody reads."""
    return "logits_to_keep" in forward_params(model)


def cache_kwargs(model: Any, cache: Any) -> dict[str, Any]:
    """`cache` under the name `model.forward` takes it: `cache` from transformers 5.24,
    `past_key_values` before (the old name is removed in 5.40); {} when it takes neither."""
    params = forward_params(model)
    for name in ("cache", "past_key_values"):
        if name in params:
            return {name: cache}
    return {}
