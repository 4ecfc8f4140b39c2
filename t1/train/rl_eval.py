"""Held-out evaluation during RL, on every rank: each rollout engine evaluates its share of the
problems and rank 0 merges the graded rows into one result.

    result = held_out_eval(cfg, engine, tokenizer, problems, info)   # every rank; None off rank 0

Why every rank. With a sharded learner, sampling needs all ranks: the HF engine gathers the
learner's layers (a collective per layer), and the vLLM engine reloads its weights from the shards
when a skipped update left them stale after a level-2 sleep (a collective per parameter). Rank 0
alone would wait in those collectives for ranks that never come. And the ranks of one vLLM
tensor-parallel group must send the same requests (`t1.rollout.groups`), so a group evaluates
together. Hence:

    engine groups  G = world / group_size (group_size: `rollout.tensor_parallel_size` for vLLM,
                   1 for the HF engine)
    group g        generates and grades problems[g :: G], every rank of it the same requests
    rows           the first rank of each group contributes its rows (the others hold the same
                   ones); rank 0 gathers them, orders them by problem index and sample, and
                   summarises them with `t1.eval.evaluate.summarize_rows`

so the result has the rows and statistics one process would write for all the problems, up to
the sampling randomness that depends on how the prompts were batched. Before sampling, every rank
brings its engine's weights up to date together (`prepare_engine`), after which `generate` runs
no collective across groups and the shares may differ in size.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch.distributed as dist

from t1.models.sharded import full_weights
from t1.rollout.groups import engine_group_size, rollout_share
from t1.train.distributed import DistInfo
from t1.train.rl_state import derive_seed


def eval_share(n_problems: int, rank: int, world: int, group_size: int) -> list[int]:
    """The problem indices this rank's engine group evaluates (the same on each of its ranks)."""
    return rollout_share(list(range(n_problems)), rank, world, group_size).group_prompts


@contextmanager
def prepare_engine(engine: Any, model: Any) -> Iterator[None]:
    """Every rank together: the engine's weights current, and no learner collective left inside
    `generate` (the HF engine samples from the learner itself: its layers gathered once here)."""
    ensure = getattr(engine, "ensure_weights", None)
    if ensure is not None:  # an engine with its own copy of the weights (vLLM)
        ensure()
        yield
        return
    with full_weights(model):
        yield


def gather_rows(rows: list[dict[str, Any]], info: DistInfo) -> list[dict[str, Any]]:
    """Every rank's rows on rank 0 (others get []), in (problem index, sample) order."""
    if info.world == 1:
        return sorted(rows, key=lambda r: (r["index"], r["sample"]))
    parts: list[Any] = [None] * info.world if info.main else []
    # objects travel pickled between this run's own processes; nothing is read from disk
    dist.gather_object(rows, parts if info.main else None, dst=0)
    if not info.main:
        return []
    merged = [row for part in parts for row in part]
    return sorted(merged, key=lambda r: (r["index"], r["sample"]))


def held_out_eval(
    cfg: Any, engine: Any, tokenizer: Any, problems: list, info: DistInfo
) -> dict[str, Any] | None:
    """Accuracy, pass@k and maj@k of the current policy on the held-out problems (module
    docstring); call on every rank, inside `prepare_engine`. Rank 0 gets the result."""
    from t1.eval.evaluate import check_ks, graded_rows, summarize_rows
    from t1.rollout import sampling_params

    check_ks(cfg.eval.n, cfg.eval.ks)
    group = engine_group_size(cfg.rollout)
    share = eval_share(len(problems), info.rank, info.world, group)
    seed = derive_seed(cfg.trainer.seed, "eval")
    sampling = sampling_params(cfg.sampling, seed, temperature=cfg.rl.eval_temperature)
    rows = graded_rows(
        engine,
        tokenizer,
        [problems[i] for i in share],
        cfg.reward.task,
        sampling,
        cfg.eval.n,
        cfg.reward,
        cfg.data,
        indices=share,
        progress=False,
    )
    leader = info.rank % group == 0
    merged = gather_rows(rows if leader else [], info)
    if not info.main:
        return None
    return summarize_rows(problems, merged, cfg.eval.ks)
