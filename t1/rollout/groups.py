"""Which prompts a rank sends to its engine, and which of the outputs it keeps.

A rollout engine may span several ranks: a vLLM engine with `rollout.tensor_parallel_size = tp`
is one model split over `tp` consecutive ranks, and every rank of that group must feed it the
same prompts with the same seed, and receives the same outputs (vLLM's
vllm/v1/executor/uniproc_executor.py, `ExecutorWithExternalLauncher`; TRL gathers each group's
prompts the same way in trl/generation/vllm_generation.py). So the data-parallel unit of the
rollout is the group, not the rank:

    world ranks  ->  world / tp groups, group g = rank // tp holding ranks g·tp … g·tp + tp − 1
    a step's prompts P  ->  group g generates P[g :: groups]   (one seed per group)
    rank r of group g   ->  keeps the prompts at positions (r mod tp) :: tp of its group's list

Each rank ends with len(P) / world prompts and their K rollouts each, as with one engine per
rank; with tp = 1 (and for the HF engine, always) group = rank and a rank keeps all it generated,
exactly the `P[rank :: world]` split of a data-parallel run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from t1.errors import ConfigError
from t1.rollout.base import Rollout


@dataclass(frozen=True)
class RolloutShare:
    # the engine's group this rank belongs to (the seed is derived from it, not from the rank)
    group: int
    # the prompts (indices into the step's list) the whole group generates, same on its ranks
    group_prompts: list[int]
    # positions in `group_prompts` whose rollouts this rank keeps
    kept: list[int]

    @property
    def prompts(self) -> list[int]:
        """The prompts this rank trains on."""
        return [self.group_prompts[j] for j in self.kept]


def engine_group_size(rollout_cfg: Any) -> int:
    """Ranks one engine spans: `rollout.tensor_parallel_size` for vLLM, 1 for the HF engine."""
    return rollout_cfg.tensor_parallel_size if rollout_cfg.engine == "vllm" else 1


def check_engine_groups(world: int, group_size: int) -> None:
    """The engines' groups must tile the world: `world` a multiple of `group_size`."""
    if group_size < 1 or world % group_size:
        raise ConfigError(
            f"rollout.tensor_parallel_size={group_size} must divide the world size {world}: "
            "each vLLM engine spans that many consecutive ranks"
        )


def rollout_share(prompts: list[int], rank: int, world: int, group_size: int) -> RolloutShare:
    """This rank's group, what the group generates and what the rank keeps (see the module)."""
    check_engine_groups(world, group_size)
    group, groups = rank // group_size, world // group_size
    mine = prompts[group::groups]
    kept = list(range(rank % group_size, len(mine), group_size))
    return RolloutShare(group=group, group_prompts=mine, kept=kept)


def keep_rollouts(rollouts: list[Rollout], kept: list[int]) -> list[Rollout]:
    """The rollouts of the kept prompt positions, renumbered 0, 1, … in `kept` order."""
    position = {p: i for i, p in enumerate(kept)}
    out = []
    for r in rollouts:
        if r.prompt_index in position:
            out.append(replace(r, prompt_index=position[r.prompt_index]))
    out.sort(key=lambda r: r.prompt_index)  # stable: each prompt's K samples keep their order
    return out
