"""collate_rollouts: prompts left-padded, responses right-padded, response j at column P + j."""

from __future__ import annotations

import pytest
import torch

from t1.rollout import Rollout, collate_rollouts

PAD = 0


def rollout(prompt: list[int], response: list[int]) -> Rollout:
    return Rollout(0, prompt, response, [0.0] * len(response), "stop", "")


def test_layout_by_hand():
    batch = collate_rollouts([rollout([5, 6, 7], [8]), rollout([9], [10, 11, 12])], PAD)
    # P = 3 (longest prompt), R = 3 (longest response)
    assert batch.prompt_len == 3
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 0, 0], [0, 0, 9, 10, 11, 12]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]]
    # positions count real tokens: row 1's prompt token is position 0 despite two pads
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 3, 3], [0, 0, 0, 1, 2, 3]]
    assert batch.response_mask.tolist() == [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    assert batch.response_mask.dtype == torch.float32
    assert batch.response_ids.tolist() == [[8, 0, 0], [10, 11, 12]]
    assert len(batch) == 2


def test_empty_response_row():
    batch = collate_rollouts([rollout([1, 2], []), rollout([3], [4])], PAD)
    assert batch.input_ids.tolist() == [[1, 2, 0], [0, 3, 4]]
    assert batch.response_mask.tolist() == [[0.0], [1.0]]


def test_no_rollouts_is_an_error():
    with pytest.raises(ValueError):
        collate_rollouts([], PAD)
