"""Rollout groups: the ranks of one engine share prompts and seed, and split the outputs."""

from __future__ import annotations

import pytest

from t1.config import RolloutConfig
from t1.errors import ConfigError
from t1.rollout import Rollout
from t1.rollout.groups import engine_group_size, keep_rollouts, rollout_share

STEP = [7, 3, 5, 1, 0, 2, 6, 4]  # a step's prompts, as PromptOrder.take gives them


def test_one_rank_per_engine_is_the_plain_data_parallel_split():
    for world in (1, 2, 4):
        for rank in range(world):
            share = rollout_share(STEP, rank, world, 1)
            assert share.group == rank
            assert share.group_prompts == share.prompts == STEP[rank::world]


def test_ranks_of_a_group_generate_the_same_prompts_and_keep_disjoint_shares():
    # world 4, tp 2: groups {0, 1} and {2, 3}; group g generates STEP[g::2]
    shares = [rollout_share(STEP, rank, 4, 2) for rank in range(4)]
    assert [s.group for s in shares] == [0, 0, 1, 1]
    assert shares[0].group_prompts == shares[1].group_prompts == [7, 5, 0, 6]
    assert shares[2].group_prompts == shares[3].group_prompts == [3, 1, 2, 4]
    assert [s.prompts for s in shares] == [[7, 0], [5, 6], [3, 2], [1, 4]]
    kept = sorted(p for s in shares for p in s.prompts)
    assert kept == sorted(STEP)  # every prompt trained on exactly once, 8 / 4 per rank


def test_a_world_that_is_not_a_multiple_of_the_group_is_a_config_error():
    with pytest.raises(ConfigError, match=r"tensor_parallel_size=2 must divide the world size 3"):
        rollout_share(STEP, 0, 3, 2)


def test_group_size_is_the_vllm_tp_size_and_one_for_hf():
    assert engine_group_size(RolloutConfig(engine="vllm", tensor_parallel_size=4)) == 4
    assert engine_group_size(RolloutConfig(engine="hf", tensor_parallel_size=4)) == 1


def _rollout(prompt: int, sample: int) -> Rollout:
    return Rollout(prompt, [prompt], [sample], [-0.5], "stop", f"{prompt}/{sample}")


def test_kept_rollouts_are_renumbered_and_keep_their_sample_order():
    rollouts = [_rollout(p, k) for p in range(4) for k in range(3)]  # 4 prompts x K=3
    kept = keep_rollouts(rollouts, [1, 3])
    assert [r.text for r in kept] == ["1/0", "1/1", "1/2", "3/0", "3/1", "3/2"]
    assert [r.prompt_index for r in kept] == [0, 0, 0, 1, 1, 1]
    assert rollouts[3].prompt_index == 1  # the engine's records are not modified
