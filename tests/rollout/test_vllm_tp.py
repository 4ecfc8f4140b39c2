"""A vLLM tensor-parallel group of two gloo processes around the double (vllm_tp_child.py).

The ranks of one engine must send the same requests (the double compares them across the
group, as vLLM's external_launcher requires) and each keeps its own share of the prompts.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from rounding import bound

sys.path.insert(0, str(Path(__file__).parent))
from two_ranks import run_two_ranks  # noqa: E402


@pytest.mark.numerics
def test_a_two_rank_tp_group_shares_prompts_and_splits_the_outputs(tmp_path):
    run_two_ranks(Path(__file__).parent / "vllm_tp_child.py", str(tmp_path))
    r0, r1 = (json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1))
    assert r0["engine"] == r1["engine"] == "VLLMEngine"
    # one group of two: it generated the step's 4 prompts; each rank kept 2 of them, disjoint
    assert len(r0["kept"]) == len(r1["kept"]) == 2
    assert not set(r0["kept"]) & set(r1["kept"])
    assert r0["kept_prompt_index"] == r1["kept_prompt_index"] == [0] * 4 + [1] * 4  # K = 4
    # the same requests on both ranks give the same outputs on both (seeded, same weights)
    assert r0["group_texts"] == r1["group_texts"] and len(r0["group_texts"]) == 8
    for r in (r0, r1):
        m = r["metrics"]
        # the engine holds the learner's float32 weights: two code paths to one log-prob,
        # within d of tests/rounding.py (a stale engine would be off by 0.1-1 nats); the TIS
        # weights min(e^δ, 2), |δ| <= d, within expm1(d) of 1, their mean rounding at <= e^d
        d = r["logp_bound"]
        assert m["mismatch/logp_abs_max"] <= d < 0.01
        tol_w = math.expm1(d) + bound(r["group_tokens"], math.exp(d))
        assert m["tis/weight_mean"] == pytest.approx(1.0, rel=0, abs=tol_w)
        assert r["learner_changed"] and r["engine_has_learner_weights"]
        assert r["calls"][-3:] == ["wake_up", "collective_rpc", "reset_prefix_cache"]
        assert "sent different requests" in r["mismatch_error"]
        assert r["learner_sharded"]  # the engine's weights above came from FSDP2 shards
    # the step's metrics are global: both ranks log the same numbers
    assert r0["metrics"]["mismatch/logp_abs_mean"] == r1["metrics"]["mismatch/logp_abs_mean"]
    assert r0["metrics"]["reward/mean"] == r1["metrics"]["reward/mean"]
