"""Rollouts to learner tensors: prompts left-padded, responses right-padded, one shared column.

    row i:  [pad ... pad | prompt_i][response_i | pad ... pad]
             <---------- P -------><----------- R ------------>

Response token j of every row sits at column P + j, so the logits that predict the responses
are columns P-1 .. P+R-2 of every row and no per-row gather is needed. Position ids count real
tokens only (a row's first prompt token is position 0 whatever its padding), which makes the
learner's forward pass padding-invariant and equal to the engine's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from t1.rollout.base import Rollout


@dataclass
class Batch:
    # (N, P + R) token ids, pad_id where padded
    input_ids: torch.Tensor
    # (N, P + R) 1 for real tokens (prompt and response), 0 for padding
    attention_mask: torch.Tensor
    # (N, P + R) position of each real token within its own sequence (0 on left padding)
    position_ids: torch.Tensor
    # P: the width of the prompt block
    prompt_len: int
    # (N, R) float, 1.0 on response tokens
    response_mask: torch.Tensor

    @property
    def response_ids(self) -> torch.Tensor:
        """(N, R) the response block of `input_ids`."""
        return self.input_ids[:, self.prompt_len :]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            position_ids=self.position_ids.to(device),
            prompt_len=self.prompt_len,
            response_mask=self.response_mask.to(device),
        )

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip padding: cumsum(mask) - 1, clamped to 0 on left padding."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_(min=0)


def collate_rollouts(rollouts: Sequence[Rollout], pad_id: int) -> Batch:
    """Stack rollouts into a `Batch` (see the module docstring for the layout)."""
    if not rollouts:
        raise ValueError("collate_rollouts needs at least one rollout")
    n = len(rollouts)
    P = max(len(r.prompt_ids) for r in rollouts)
    R = max(len(r.response_ids) for r in rollouts)
    input_ids = torch.full((n, P + R), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, P + R), dtype=torch.long)
    response_mask = torch.zeros((n, R), dtype=torch.float32)
    for i, r in enumerate(rollouts):
        p, q = len(r.prompt_ids), len(r.response_ids)
        if p:
            input_ids[i, P - p : P] = torch.tensor(r.prompt_ids, dtype=torch.long)
        if q:
            input_ids[i, P : P + q] = torch.tensor(r.response_ids, dtype=torch.long)
        attention_mask[i, P - p : P + q] = 1
        response_mask[i, :q] = 1.0
    return Batch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=positions_from_mask(attention_mask),
        prompt_len=P,
        response_mask=response_mask,
    )


def sampler_logprobs(rollouts: Sequence[Rollout], width: int) -> torch.Tensor:
    """(N, width) the engine's per-token log-probs in the response block, 0 on padding."""
    out = torch.zeros(len(rollouts), width)
    for i, r in enumerate(rollouts):
        n = min(len(r.logprobs), width)
        out[i, :n] = torch.tensor(r.logprobs[:n])
    return out
