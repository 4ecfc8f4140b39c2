"""LoRA under FSDP2: two processes (gloo, CPU) against one, resume, bf16 compute with a bf16
frozen base, generation through a sharded adapted policy.

The adapted policy is sharded per decoder layer with its adapters (they live in the layers'
projections), so each FSDP2 group holds frozen base weights and trained adapters; only the
adapters have gradients to reduce. The tolerances are test_fsdp.py's (its module docstring):
the gradients of B (and of A, exactly 0 at the first step since B = 0) are sums over the same
<= 2^8 positions, and the Adam steps use the same lr = 0.01 and eps = 1.
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
from test_fsdp import (  # noqa: E402
    BF16,
    RL,
    assert_grads_close,
    assert_same_steps,
    one_process,
    part,
    results,
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


def test_lora_rl_on_two_processes_equals_one(two, tmp_path):
    got, log = results(two, "lora")
    ref = one_process(tmp_path, "rl", LORA_RL)
    assert log["world"] == 2
    grads = part(got, "grad.")
    assert grads and all(".lora_" in k for k in grads)  # the base has no gradient
    assert_same_steps(ref, got)
    base = [k for k in part(got, "model.") if "base_layer" in k]
    assert base and all(torch.equal(got[f"model.{k}"], ref[f"model.{k}"]) for k in base)
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


def test_lora_bf16_keeps_a_bf16_base_and_float32_adapters(two, tmp_path):
    from test_precision import BF16_GRAD_RTOL

    got = results(two, "lora_bf16")[0]
    model = part(got, "model.")
    assert all(v.dtype == torch.bfloat16 for k, v in model.items() if "lora_" not in k)
    assert all(v.dtype == torch.float32 for k, v in model.items() if "lora_" in k)
    ref = one_process(tmp_path, "rl", LORA_RL)  # float32 compute: the same first batch
    assert_grads_close(part(ref, "grad."), part(got, "grad."), rtol=BF16_GRAD_RTOL)
    final = load_file(str(two / "runs" / "lora_bf16" / "final" / "model.safetensors"))
    assert final and not any("lora" in k or "base_layer" in k for k in final)
    assert all(v.dtype == torch.bfloat16 for v in final.values())


def test_hf_engine_generates_through_a_sharded_lora_policy(two):
    log = results(two, "lora_hf")[1]
    assert [r["step"] for r in log["rows"]] == [1, 2]
    assert all(any(k.startswith("eval/") for k in r) for r in log["rows"])
    assert (two / "runs" / "lora_hf" / "final" / "model.safetensors").is_file()
