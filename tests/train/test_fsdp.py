"""FSDP2 over two processes (gloo, CPU) against one process: RL, SFT, resume, export, precision.

One torchrun launch (the module fixture `two`) runs every two-process job of this file through
tests/train/fsdp_worker.py; the one-process twins run in this process. The toy RL task's
scripted engine gives the same global batch however the prompts are split over ranks.

Tolerances, with u = 2^-24 (float32's unit roundoff):
- gradients. Split over ranks and micro-batches, a gradient entry's float32 sum over the step's
  token contributions is formed in another order. A sum of n terms is off by at most
  (n - 1)·u·Σ|terms|; with n <= 2^8 (32 responses x <= 8 positions) and Σ|terms| <= 4·max|g|
  (cancellation allowed at the tensor's largest entry): |Δg| <= 2^10·u·max|g| per tensor.
- parameters after Adam steps. With eps = 1 >> |g| (<= 0.1 here) an update is
  lr·m̂/(√v̂ + eps), whose derivative in g is at most lr/eps (+10 % through v̂): each step moves a
  parameter off by <= 1.1·lr/eps·|Δg|; clipping (norm ~1.1 > 1) divides by a norm off by the
  same relative error: x2; three steps: x3, with |g| allowed to double over them; and each step
  rounds θ + update to float32 on both sides: + 3·ulp(θ). The change a parameter difference makes
  to the next gradient (Hessian x lr/eps x Δg, lr/eps = 0.01) is below these terms.
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

from t1.models import build_char_tokenizer, build_tiny_model  # noqa: E402
from t1.rollout import compute_logprobs  # noqa: E402
from t1.rollout.batch import Batch  # noqa: E402
from t1.train.distributed import DistInfo  # noqa: E402

U = 2.0**-24
GRAD_RTOL = 2**10 * U
LR, EPS = 0.01, 1.0  # toy_config's lr; an eps that dominates every |g| (module docstring)
RL = [
    "trainer.steps=3",
    "trainer.save_every=1",
    "trainer.keep_last=0",
    "rl.beta=0.1",
    "rl.entropy_coef=0.01",
    "rl.micro_batch_size=3",
    "rl.old_logp=learner",
    f"optim.eps={EPS}",
]
# 5 sequences a step, one a micro-batch: rank 0 runs 3 passes, rank 1 two and an empty one
SFT = ["trainer.steps=3", "trainer.save_every=0", f"optim.eps={EPS}"]
SFT += ["sft.batch_size=5", "sft.micro_batch_size=1"]
# no entropy bonus, no KL, K = 2: a group of two equal rewards has advantage 0 and is skipped,
# so the ranks' micro-batch counts differ and the rank with fewer runs empty passes (FSDP2's
# collectives stay in step)
UNEVEN = [*RL, "rl.k=2", "rl.beta=0.0", "rl.entropy_coef=0.0", "rl.micro_batch_size=1"]
# bf16 compute, float32 masters, the learning rate, AdamW's default eps, one EMA update
BF16 = [
    "trainer.steps=1",
    "trainer.save_every=0",
    "rl.beta=0.1",
    "rl.entropy_coef=0.01",
    "rl.micro_batch_size=3",
    "rl.old_logp=learner",
    "model.dtype=bfloat16",
    "optim.lr=5e-7",
    "optim.eps=1e-8",
    "rl.ema_alpha=0.95",
]
HF_EVAL = ["eval.n=2", "eval.ks=[1,2]", "rollout.batch_size=2"]
OPTIONS = ["train.activation_checkpointing=true", "train.cpu_offload=true"]
OPTIONS += ["train.anchor_on_cpu=true"]


def _jobs(w: Path) -> list[dict]:
    def job(name: str, kind: str, overrides: list[str], **more: object) -> dict:
        return {"kind": kind, "out": str(w / name), "run": str(w / "runs" / name), **more} | {
            "overrides": overrides
        }

    return [
        job("rl", "rl", RL),
        job("rl_resumed", "rl", RL, copy=[str(w / "runs" / "rl"), 2], resume=True),
        job("sft", "sft", SFT),
        job("bf16", "rl", BF16),
        job("head", "head", []),
        job("options", "rl", [*RL, *OPTIONS]),
        job("replicated", "rl", [*RL, "train.fsdp=false"]),
        job("uneven", "rl", UNEVEN),
        # eval.n=2 with rollout.batch_size=2: one held-out problem per generate call, so the
        # ranks' evaluation shares (2 and 1 of 3 problems) take different numbers of calls
        job("hf", "rl", ["trainer.steps=2", "trainer.eval_every=1", *HF_EVAL], hf_engine=True),
    ]


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> Path:
    """Every two-process job of this file, in one torchrun launch; returns its folder."""
    w = tmp_path_factory.mktemp("two")
    (w / "jobs.json").write_text(json.dumps(_jobs(w)))
    run_child(torchrun(2, str(Path(fsdp_worker.__file__)), str(w / "jobs.json")))
    return w


def results(w: Path, name: str) -> tuple[dict[str, torch.Tensor], dict]:
    return load_file(str(w / f"{name}.safetensors")), json.loads((w / f"{name}.json").read_text())


def one_process(tmp_path: Path, kind: str, overrides: list[str], **more: object) -> dict:
    """The job in this process, without a process group (world size 1)."""
    job = {"kind": kind, "run": str(tmp_path / kind), "overrides": overrides, **more}
    run = {"rl": fsdp_worker.run_rl, "sft": fsdp_worker.run_sft, "head": fsdp_worker.run_head}
    return run[kind](job, DistInfo())


def part(tensors: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}


def assert_grads_close(a: dict, b: dict, rtol: float = GRAD_RTOL) -> None:
    assert a.keys() == b.keys() and a
    for k in a:
        scale = float(a[k].abs().max())
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=rtol * scale, msg=k)


def param_atol(grads: dict, params: dict, steps: int = 3) -> float:
    """The parameter tolerance of the module docstring for `steps` Adam steps."""
    g = 2 * max(float(v.abs().max()) for v in grads.values())
    theta = max(float(v.abs().max()) for v in params.values())
    ulp = torch.finfo(torch.float32).eps * 2.0 ** torch.tensor(theta).log2().ceil().item()
    return steps * 2 * 1.1 * LR / EPS * GRAD_RTOL * g + steps * ulp


def assert_params_close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=atol, msg=k)


def assert_same_steps(ref: dict, got: dict, anchor: bool = True) -> None:
    """First-step gradients and the parameters (and anchor) after the run, within the module
    docstring's tolerances."""
    assert_grads_close(part(ref, "grad."), part(got, "grad."))
    atol = param_atol(part(ref, "grad."), part(ref, "model."))
    assert_params_close(part(ref, "model."), part(got, "model."), atol)
    if anchor:
        assert_params_close(part(ref, "anchor."), part(got, "anchor."), atol)  # EMA of those


def test_rl_two_processes_equal_one(two, tmp_path):
    got, log = results(two, "rl")
    ref = one_process(tmp_path, "rl", RL)
    assert log["world"] == 2
    assert_same_steps(ref, got)
    rows = fsdp_worker.read_jsonl(tmp_path / "rl" / "metrics.jsonl")
    assert [r["step"] for r in log["rows"]] == [r["step"] for r in rows] == [1, 2, 3]
    for mine, theirs in zip(rows, log["rows"]):
        assert mine["reward/mean"] == theirs["reward/mean"]  # the same global batch
        for key in ("loss", "grad_norm", "entropy"):  # sums of the gradients' terms
            assert theirs[key] == pytest.approx(mine[key], rel=GRAD_RTOL, abs=GRAD_RTOL)
    assert rows[1]["kl"] != 0.0  # the anchor moved after step 1: the KL term acts


@pytest.mark.parametrize(
    ("name", "overrides"),
    [("replicated", [*RL, "train.fsdp=false"]), ("uneven", UNEVEN)],
    ids=["replicated: fsdp=false, all-reduce", "uneven micro-batch counts"],
)
def test_two_processes_equal_one_without_fsdp_or_with_uneven_ranks(two, tmp_path, name, overrides):
    got, log = results(two, name)
    assert_same_steps(one_process(tmp_path, "rl", overrides), got)
    if name == "uneven":
        assert log["empty_passes"] > 0


def test_checkpointing_and_offload_change_nothing(two):
    """Activation checkpointing recomputes the same ops; CPU offload moves the same shards."""
    plain, options = results(two, "rl")[0], results(two, "options")[0]
    atol = param_atol(part(plain, "grad."), part(plain, "model."))
    assert_params_close(part(plain, "model."), part(options, "model."), atol)
    assert_params_close(part(plain, "anchor."), part(options, "anchor."), atol)


def test_sft_two_processes_equal_one(two, tmp_path):
    got, log = results(two, "sft")
    assert_same_steps(one_process(tmp_path, "sft", SFT), got, anchor=False)
    assert log["empty_passes"] == 3  # rank 1, once a step
    rows = fsdp_worker.read_jsonl(tmp_path / "sft" / "metrics.jsonl")
    for mine, theirs in zip(rows, log["rows"], strict=True):
        assert theirs["loss"] == pytest.approx(mine["loss"], rel=GRAD_RTOL)


def test_two_process_checkpoint_resumes_on_two_bitwise(two):
    """Checkpoint step-2 of the 2-process run, resumed by 2 processes: step 3 bitwise equal."""
    a, log_a = results(two, "rl")
    b, log_b = results(two, "rl_resumed")
    for prefix in ("model.", "anchor."):
        pa, pb = part(a, prefix), part(b, prefix)
        assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
    assert _without_timing(log_a["rows"]) == _without_timing(log_b["rows"])
    ckpt = two / "runs" / "rl_resumed" / "checkpoints" / "step-2" / "model"
    assert len(list(ckpt.glob("shard-*.safetensors"))) == 2  # one file per rank


def _without_timing(rows: list[dict]) -> list[dict]:
    from t1.train.rl_state import TIMING_KEYS

    return [{k: v for k, v in r.items() if not k.startswith(TIMING_KEYS)} for r in rows]


def test_two_process_checkpoint_resumes_on_one(two, tmp_path):
    """The same checkpoint resumed by one process: step 3 within one step's tolerance."""
    a, _ = results(two, "rl")
    run = tmp_path / "rl"
    fsdp_worker.copy_run(str(two / "runs" / "rl"), 2, str(run), DistInfo())
    b = fsdp_worker.run_rl(
        {"run": str(run), "overrides": RL, "resume": True, "kind": "rl"}, DistInfo()
    )
    atol = param_atol(part(a, "grad."), part(a, "model."), steps=1)
    assert_params_close(part(a, "model."), part(b, "model."), atol)
    assert_params_close(part(a, "anchor."), part(b, "anchor."), atol)


def test_final_loads_with_from_pretrained_and_gives_the_trained_logprobs(two):
    from transformers import AutoModelForCausalLM

    trained_weights = part(results(two, "rl")[0], "model.")
    cfg = toy_config("x")
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    trained = build_tiny_model(tok, cfg.model.tiny, seed=1)
    missing, unexpected = trained.load_state_dict(trained_weights, strict=False)
    assert missing == ["lm_head.weight"] and not unexpected  # tied to the embedding
    final = AutoModelForCausalLM.from_pretrained(two / "runs" / "rl" / "final")
    assert next(final.parameters()).dtype == torch.float32
    ids = torch.randint(6, len(tok), (4, 9), generator=torch.Generator().manual_seed(1))
    batch = Batch(ids, torch.ones_like(ids), torch.arange(9).expand(4, 9), 4, torch.ones(4, 5))
    with torch.no_grad():
        # the same weights through the same ops: equal, bit for bit
        assert torch.equal(compute_logprobs(final, batch), compute_logprobs(trained, batch))


def test_root_forward_serves_a_chunked_output_head(two, tmp_path):
    """The decoder, then the output head's weight used directly in chunks (other chunk counts
    on each rank), inside `root_forward`: the gradients of the model's own forward."""
    got = results(two, "head")[0]
    ref = one_process(tmp_path, "head", [])
    assert_grads_close(part(got, "grad_plain."), part(got, "grad_head."))
    assert_grads_close(part(ref, "grad_plain."), part(got, "grad_head."))


def test_hf_engine_generates_on_a_sharded_policy(two):
    """Ranks sample different prompts (different lengths) through the shared, sharded policy;
    every rank evaluates its share of the held-out problems; nothing hangs and the run
    completes."""
    log = results(two, "hf")[1]
    assert [r["step"] for r in log["rows"]] == [1, 2]
    assert all(any(k.startswith("eval/") for k in r) for r in log["rows"])  # rank 0's
    for step in (1, 2):  # rank 0 merged both shares: every problem, each with its 2 samples
        evaluated = two / "runs" / "hf" / "eval"
        assert json.loads((evaluated / f"step-{step}.json").read_text())["n_problems"] == 3
        rows = [json.loads(line) for line in (evaluated / f"step-{step}.samples.jsonl").open()]
        assert [(r["index"], r["sample"]) for r in rows] == [
            (i, j) for i in range(3) for j in (0, 1)
        ]
    assert (two / "runs" / "hf" / "final" / "model.safetensors").is_file()


# bfloat16 compute with float32 masters: see test_precision.py for the derivations
def test_bf16_fsdp_keeps_float32_masters_and_an_exact_anchor(two, tmp_path):
    from test_precision import BF16_GRAD_RTOL, assert_exact_ema, moved_share

    got = results(two, "bf16")[0]
    cfg = toy_config("x")
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    theta0 = dict(build_tiny_model(tok, cfg.model.tiny, seed=0).named_parameters())
    theta1, anchor = part(got, "model."), part(got, "anchor.")
    assert all(v.dtype == torch.float32 for v in [*theta1.values(), *anchor.values()])
    grads = part(got, "grad.")
    assert moved_share(theta0, theta1, grads) == 1.0
    assert_exact_ema(anchor, theta0, theta1, alpha=0.95)
    ref = one_process(tmp_path, "rl", RL)  # float32 compute: the same first batch
    assert_grads_close(part(ref, "grad."), grads, rtol=BF16_GRAD_RTOL)
    final = load_file(str(two / "runs" / "bf16" / "final" / "model.safetensors"))
    assert all(torch.equal(final[k], theta1[k].to(torch.bfloat16)) for k in final)
