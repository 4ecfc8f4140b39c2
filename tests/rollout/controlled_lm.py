"""Stand-in causal LMs whose next-token logits the tests choose, driven through the real engine;
and a stand-in wrapped projection.

They take the same forward arguments as an HF causal LM (ids, mask, positions, cache, use_cache,
logits_to_keep) and return `.logits`, so `HFEngine` and `compute_logprobs` run unchanged.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from transformers import GenerationConfig, LlamaConfig

BIG = 30.0  # a logit gap of 30 makes a token's probability 1 - O(e^-30)


class ControlledLM(torch.nn.Module):
    """Next-token logits are `table[position]` (the last row for later positions)."""

    def __init__(self, table: torch.Tensor, tokenizer: Any) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(table.float(), requires_grad=False)  # (S, V)
        vocab = table.shape[-1]
        self.config = LlamaConfig(
            vocab_size=vocab, hidden_size=8, num_hidden_layers=1, num_attention_heads=1
        )
        self.generation_config = GenerationConfig(
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
    ) -> SimpleNamespace:
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1]).expand_as(input_ids)
        pos = position_ids.clamp(max=self.table.shape[0] - 1)
        logits = self.table[pos]  # (B, q, V)
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return SimpleNamespace(logits=logits, past_key_values=past_key_values)


def fixed_logits_model(tokenizer: Any, logits_by_char: dict[str, float]) -> ControlledLM:
    """Every position predicts the same distribution: the given chars' logits, -inf elsewhere."""
    table = torch.full((1, len(tokenizer)), float("-inf"))
    for ch, value in logits_by_char.items():
        table[0, tokenizer.convert_tokens_to_ids(ch)] = value
    return ControlledLM(table, tokenizer)


def scripted_model(tokenizer: Any, script: list[int]) -> ControlledLM:
    """Position p predicts script[p] (with probability 1 - O(e^-30)); a prompt of length 1
    therefore gets the response script[0], script[1], ..."""
    table = torch.zeros((len(script), len(tokenizer)))
    table[torch.arange(len(script)), torch.tensor(script)] = BIG
    return ControlledLM(table, tokenizer)


class Doubled(torch.nn.Module):
    """A wrapped projection (as LoRA wraps one): the lean passes must call it, not fuse its weight."""

    def __init__(self, inner: torch.nn.Linear) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.inner(x)
