"""Held-out evaluation during RL with the vLLM engine and a sharded learner, on two gloo ranks
(vllm_eval_child.py): a skipped update followed by an evaluation completes on every rank, for a
tensor-parallel group of two and for two engines of one rank each, and the merged result holds
exactly the rows one engine gives for all the problems.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from two_ranks import run_two_ranks  # noqa: E402


@pytest.mark.parametrize("tp", [1, 2])
def test_evaluation_after_a_skipped_update_runs_on_every_rank(tmp_path, tp):
    run_two_ranks(Path(__file__).parent / "vllm_eval_child.py", str(tmp_path), str(tp))
    r0, r1 = (json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1))
    assert r0["sharded"] and r1["sharded"]
    assert r0["bad_steps"] == r1["bad_steps"] == 1  # step 1 skipped on both ranks
    assert "eval/accuracy" in r0["eval_keys"] and r1["eval_keys"] == []  # rank 0 merges
    run = tmp_path / "run"
    for step in (1, 2):
        summary = json.loads((run / "eval" / f"step-{step}.json").read_text())
        assert summary["n_problems"] == 5 and summary["n_samples"] == 10
    rows = [json.loads(line) for line in (run / "eval" / "step-2.samples.jsonl").open()]
    merged = [(r["index"], r["sample"], r["response"]) for r in rows]
    # the double samples each request from (prompt, seed, weights) alone: the shares, merged,
    # are the evaluation one engine makes of all the problems, bit for bit (no update followed
    # the step-2 evaluation)
    assert merged == [tuple(x) for x in r0["alone"]] == [tuple(x) for x in r1["alone"]]
    assert [i for i, _, _ in merged] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
