"""Batched greedy completion of many short continuations (the forced answers of `t1 scale`).

For inputs x_1..x_m (token ids) and a step budget T: left-pad a batch to width W, run one
prefill with positions counting real tokens only (pad positions are masked), then for
t = 1..T take y_t = argmax p(. | x, y_<t) over the KV cache; a row's answer is cut before its
first EOS. Left padding with the mask leaves each row's continuation what it would be alone
(tested). Inputs are sorted by length so a batch holds similar lengths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from t1.rollout.cache import cache_kwargs, make_cache, supports_logits_to_keep


class GreedyCompleter:
    """Short greedy completions of many inputs by the policy or a summariser model.

    A hand-written loop rather than `model.generate`, so that positions under left padding are
    explicit (and tested against one-at-a-time decoding) and no sampling settings of the
    model's generation config can leak in."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 32):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, max(1, batch_size)

    def encode(self, text: str) -> list[int]:
        """Ids of a piece of text inside a sequence (the suffix): no special tokens added."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def encode_prompt(self, text: str) -> list[int]:
        """Ids of a whole input, tokenised as the rollout engines tokenise prompts."""
        from t1.rollout.hf import encode_prompts

        return encode_prompts(self.tokenizer, [text])[0]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    @torch.no_grad()
    def complete(self, inputs: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
        """The greedy continuation of each input, cut before its first EOS."""
        from t1.rollout.hf import eos_ids

        eos = eos_ids(self.tokenizer, self.model)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos[0]
        was_training = self.model.training
        self.model.eval()
        out: list[list[int]] = [[] for _ in inputs]
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        try:
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                batch = self._batch([inputs[i] for i in idx], max_new_tokens, pad, eos)
                for i, ids in zip(idx, batch):
                    cut = [j for j, t in enumerate(ids) if t in eos]
                    out[i] = ids[: cut[0]] if cut else ids
        finally:
            self.model.train(was_training)
        return out

    def _batch(
        self, seqs: list[Sequence[int]], steps: int, pad: int, eos: list[int]
    ) -> list[list[int]]:
        """Greedy decode of one left-padded batch (positions count real tokens only); stops
        early once every row has produced an EOS."""
        device = next(self.model.parameters()).device
        width = max(len(q) for q in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, q in enumerate(seqs):
            ids[row, width - len(q) :] = torch.tensor(list(q), dtype=torch.long)
            mask[row, width - len(q) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, W)
        extra = {"logits_to_keep": 1} if supports_logits_to_keep(self.model) else {}
        cache = make_cache(self.model, capacity=width + steps)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            **cache_kwargs(self.model, cache),
            **extra,
        )
        nxt_pos = mask.sum(-1)  # (B,)
        eos_t = torch.tensor(eos, device=device)
        done = torch.zeros(len(seqs), dtype=torch.bool, device=device)
        tokens = []
        for step in range(steps):
            tok = out.logits[:, -1].argmax(-1)  # (B,)
            tokens.append(tok)
            done |= torch.isin(tok, eos_t)
            if step == steps - 1 or bool(done.all()):
                break
            mask = torch.cat([mask, mask.new_ones((len(seqs), 1))], dim=-1)
            out = self.model(
                input_ids=tok[:, None],
                attention_mask=mask,
                position_ids=nxt_pos[:, None],
                use_cache=True,
                **cache_kwargs(self.model, cache),
            )
            nxt_pos = nxt_pos + 1
        return torch.stack(tokens, dim=1).tolist()
