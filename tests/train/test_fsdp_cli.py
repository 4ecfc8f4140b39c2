"""`t1 rl` under torchrun with FSDP2, through the CLI: curation on the sharded model, the HF
engine, a SIGKILL inside a sharded checkpoint write, and the resume (slow: three launches)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

import rl_faults  # noqa: E402
from launch import child_env, run_child, torchrun  # noqa: E402
from rl_faults import write_config  # noqa: E402
from rl_toy import ADAM_AS_SGD  # noqa: E402
from rounding import CANCEL, adam_step_tolerance, bound  # noqa: E402

from t1.models.dcp import read_tensors  # noqa: E402
from t1.runs import (  # noqa: E402
    MARKER,
    latest_checkpoint,
    read_jsonl,  # noqa: E402
)
from t1.train.rl_state import TIMING_KEYS  # noqa: E402


def rows(run: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if not k.startswith(TIMING_KEYS)}
        for r in read_jsonl(run / "metrics.jsonl")
    ]


@pytest.mark.slow
def test_sigkill_in_a_sharded_save_then_resume_on_two_equals_an_uninterrupted_run(tmp_path):
    config = write_config(
        tmp_path,
        trainer={"steps": 3, "keep_last": 0},
        rl={"curate": {"enabled": True, "n": 2, "max_pass": 1.0}},
    )
    ref, run = tmp_path / "ref", tmp_path / "run"
    cli = ["-m", "t1", "rl", str(config)]
    run_child(torchrun(2, *cli, f"trainer.out={ref}"))

    # rank 0 is killed as it starts the optimizer shards of step 2 (both ranks' weight shards
    # are written; a rank that fails with an error instead has rank 0 remove the folder): the
    # launch fails, step-1 stays the newest checkpoint
    kill = {rl_faults.KILL_IN_SAVE: "2", rl_faults.KILL_AT: "optimizer", rl_faults.KILL_RANK: "0"}
    done = subprocess.run(
        torchrun(2, *cli, f"trainer.out={run}"),
        env=child_env(**kill),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    torn = run / "checkpoints" / ".step-2.tmp"
    assert len(list((torn / "model").glob("shard-*.safetensors"))) == 2
    assert not list((torn / "optimizer").glob("shard-00001-*"))  # rank 0's: never written
    assert not (torn / MARKER).exists()
    assert latest_checkpoint(run / "checkpoints").name == "step-1"

    run_child(torchrun(2, *cli, f"trainer.out={run}", "--resume"))
    assert rows(run) == rows(ref) and [r["step"] for r in rows(run)] == [1, 2, 3]
    for part in ("model", "optimizer", "anchor"):
        a, b = (read_tensors(x / "checkpoints" / "step-3" / part) for x in (ref, run))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    assert not list((run / "checkpoints").glob(".step-*"))  # the torn folder was cleaned up
    assert (run / "curated.jsonl").read_text() == (ref / "curated.jsonl").read_text()


@pytest.mark.slow
@pytest.mark.numerics
def test_t1_sft_under_torchrun_takes_the_one_process_step(tmp_path):
    """`torchrun -m t1 sft` on 2 processes against `t1 sft` on one: the same first step, its
    loss and weights within test_fsdp.py's bounds (Adam with eps = 1 and no clipping; every
    gradient entry is at most the logged norm). Later steps are compared from the same
    checkpoints in test_fsdp.py (a step's rounding would reach the next through the curvature)."""
    import json

    from safetensors.torch import load_file
    from test_fsdp import sft_bounds
    from test_sft import TINY, make_traces

    from t1.config import SFTStage, load_config
    from t1.models import load_model

    traces = tmp_path / "traces.jsonl"
    traces.write_text("".join(json.dumps(t) + "\n" for t in make_traces(40)))
    args = [*TINY, f"data.train={traces}", "trainer.steps=1", *ADAM_AS_SGD]
    one, two = tmp_path / "one", tmp_path / "two"
    run_child([sys.executable, "-m", "t1", "sft", *args, f"trainer.out={one}"])
    run_child(torchrun(2, "-m", "t1", "sft", *args, f"trainer.out={two}"))
    cfg = load_config(SFTStage, None, [*args, "trainer.out=x"])
    n, loss_tol = sft_bounds(cfg, load_model(cfg.model)[0])
    (x,), (y,) = read_jsonl(one / "metrics.jsonl"), read_jsonl(two / "metrics.jsonl")
    assert y["loss"] == pytest.approx(x["loss"], rel=0, abs=loss_tol)
    g = x["grad_norm"]  # >= every |g|; the entries' rounding at magnitude CANCEL·g
    a, b = (load_file(str(r / "final" / "model.safetensors")) for r in (one, two))
    assert a.keys() == b.keys() and a
    grad_tol, lr, eps = bound(n, CANCEL * g), cfg.optim.lr, cfg.optim.eps
    for k in a:
        tol = adam_step_tolerance(grad_tol, lr, eps, g, float(a[k].abs().max()))
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=tol, msg=k)
