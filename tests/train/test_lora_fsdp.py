"""LoRA under FSDP2: two processes (gloo, CPU) against one, resume, bf16 compute with a bf16
frozen base, generation through a sharded adapted policy.

The adapted policy is sharded per decoder layer with its adapters (they live in the layers'
projections), so each FSDP2 group holds frozen base weights and trained adapters; only the
adapters have gradients to reduce. Every step is compared from one state within the bounds of
test_fsdp.py (its module docstring): the adapters' gradients (A's exactly 0 at the first step,
since B = 0), their Adam steps with eps = 1, their EMA anchor and the step's metrics; the frozen
base stays bit for bit what it was.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))

import fsdp_worker  # noqa: E402
from launch import run_child, torchrun  # noqa: E402
from rl_toy import toy_config  # noqa: E402
from rounding import bf16_grad_tolerance  # noqa: E402
from test_fsdp import (  # noqa: E402
    BF16,
    RL,
    assert_rl_steps_equal_one_process,
    one_process,
    part,
    results,
    state_before,
)

pytest.importorskip("peft", reason="LoRA needs the `lora` extra (peft); CI installs it")

LORA = ["model.lora.rank=4", "model.lora.alpha=8"]
LORA_RL = [*RL, *LORA]


def _jobs(w: Path) -> list[dict]:
    def job(name: str, overrides: list[str], **more: object) -> dict:
        run = str(w / "runs" / name)
        return {"kind": "rl", "out": str(w / name), "run": run, "overrides": overrides, **more}

    return [
        job("lora", LORA_RL),
        job("lora_resumed", LORA_RL, copy=[str(w / "runs" / "lora"), 2], resume=True),
        job("lora_bf16", [*BF16, *LORA]),
        job("lora_hf", ["trainer.steps=2", "trainer.eval_every=1", *LORA], hf_engine=True),
    ]


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> Path:
    """The two-process LoRA jobs, in one torchrun launch; returns its folder."""
    w = tmp_path_factory.mktemp("two_lora")
    (w / "jobs.json").write_text(json.dumps(_jobs(w)))
    run_child(torchrun(2, str(Path(fsdp_worker.__file__)), str(w / "jobs.json")))
    return w


@pytest.mark.numerics
def test_lora_rl_on_two_processes_equals_one(two, tmp_path):
    log = assert_rl_steps_equal_one_process(two, "lora", LORA_RL, tmp_path)
    assert log["world"] == 2
    got = results(two, "lora")[0]
    grads = part(got, "grad.")
    assert grads and all(".lora_" in k for k in grads)  # the base has no gradient
    start = state_before(got, 1, "model.", toy_config("x", *LORA_RL)).state_dict()
    base = [k for k in part(got, "model.") if "base_layer" in k]
    assert base and all(torch.equal(got[f"model.{k}"], start[k]) for k in base)  # frozen
    assert set(part(got, "anchor.")) == set(grads)  # the anchor: EMA adapters only


def test_lora_two_process_checkpoint_resumes_bitwise(two):
    a, log_a = results(two, "lora")
    b, log_b = results(two, "lora_resumed")
    for prefix in ("model.", "anchor."):
        pa, pb = part(a, prefix), part(b, prefix)
        assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
    timing = ("time/", "tokens_per_s")
    rows = [[{k: v for k, v in r.items() if not k.startswith(timing)} for r in log["rows"]]
            for log in (log_a, log_b)]  # fmt: skip
    assert rows[0] == rows[1]


@pytest.mark.numerics
def test_lora_bf16_keeps_a_bf16_base_and_float32_adapters(two, tmp_path):
    got = results(two, "lora_bf16")[0]
    model = part(got, "model.")
    assert all(v.dtype == torch.bfloat16 for k, v in model.items() if "lora_" not in k)
    assert all(v.dtype == torch.float32 for k, v in model.items() if "lora_" in k)
    # float32 compute on one process, the same first batch: within bf16_grad_tolerance of
    # tests/rounding.py (bf16 weights and activations, float32 accumulation)
    ref = part(one_process(tmp_path, "rl", [*BF16, *LORA, "model.dtype=float32"]), "grad.")
    grads = part(got, "grad.")
    assert ref.keys() == grads.keys() and ref
    for k, g in ref.items():
        torch.testing.assert_close(grads[k], g, rtol=0, atol=bf16_grad_tolerance(g), msg=k)
    final = load_file(str(two / "runs" / "lora_bf16" / "final" / "model.safetensors"))
    assert final and not any("lora" in k or "base_layer" in k for k in final)
    assert all(v.dtype == torch.bfloat16 for v in final.values())


def test_hf_engine_generates_through_a_sharded_lora_policy(two):
    log = results(two, "lora_hf")[1]
    assert [r["step"] for r in log["rows"]] == [1, 2]
    assert all(any(k.startswith("eval/") for k in r) for r in log["rows"])
    assert (two / "runs" / "lora_hf" / "final" / "model.safetensors").is_file()
