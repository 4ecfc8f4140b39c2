"""FSDP2 over two processes (gloo, CPU) against one process: RL, SFT, resume, export, precision.

One torchrun launch (the module fixture `two`) runs every two-process job of this file through
tests/train/fsdp_worker.py; the one-process twins run in this process. The toy RL task's
scripted engine gives the same global batch however the prompts are split over ranks.

Every step is compared from one state: step 1 from the seeded start, step n > 1 taken in this
process from the two-process run's checkpoint n − 1. A rounding difference of one step would
otherwise reach the next gradients through the loss's curvature, which no bound here covers.
The tolerances are those of tests/rounding.py (n float32 roundings at magnitude m differ by
<= n·EPS32·m), through rl_bounds.py:
- gradients: a log-prob's path forward and back, the sum over the step's positions, split over
  ranks and micro-batches in another order, then over the two ranks (FSDP2's reduce-scatter or
  the replicated all-reduce): bound(grad_terms + 1, CANCEL·max|g|) per tensor;
- weights: Adam with eps = 1 >> |g| and no clipping, from the same moments, moves by
  <= lr/eps·(1 + max|g|/eps)·|Δg| (`adam_step_tolerance`); the EMA anchor by (1 − α) of that;
- metrics: the KL, entropy and loss bounds of rl_bounds.step_bounds, the gradient norm's of
  `norm_tolerance`.
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
from rl_bounds import (  # noqa: E402
    anchor_tolerances,
    assert_metrics_close,
    assert_within,
    scripted_batch,
    step_bounds,
    update_tolerances,
)
from rl_toy import ADAM_AS_SGD, toy_config  # noqa: E402
from rounding import (  # noqa: E402
    assert_grads_close,
    bf16_grad_tolerance,
    bound,
    grad_terms,
    grad_tolerance,
    largest_logprob,
    logprob_tolerance,
    norm_tolerance,
)

from t1.models import build_char_tokenizer, build_tiny_model  # noqa: E402
from t1.rollout import compute_logprobs  # noqa: E402
from t1.rollout.batch import Batch  # noqa: E402
from t1.train.distributed import DistInfo  # noqa: E402

STEPS = 3
RL = [
    f"trainer.steps={STEPS}",
    "trainer.save_every=1",
    "trainer.keep_last=0",
    "rl.beta=0.1",
    "rl.entropy_coef=0.01",
    "rl.micro_batch_size=3",
    "rl.old_logp=learner",
    *ADAM_AS_SGD,  # eps = 1 above every |g|, no clipping (module docstring)
]
# 5 sequences a step, one a micro-batch: rank 0 runs 3 passes, rank 1 two and an empty one
SFT = [f"trainer.steps={STEPS}", "trainer.save_every=1", "trainer.keep_last=0", *ADAM_AS_SGD]
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
    "optim.grad_clip=null",  # the gradients compared are the ones the optimizer used
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


def one_process_step(two: Path, name: str, kind: str, overrides: list[str], step: int, tmp: Path):
    """Step `step` taken in this process from the state the two-process run `name` had before
    it (the seeded start, or its checkpoint step − 1): that step's records and metrics row."""
    run = tmp / f"{name}-{step}"
    if step == 1:
        got = one_process(run, kind, overrides)
        run = run / kind
    else:
        fsdp_worker.copy_run(str(two / "runs" / name), step - 1, str(run), DistInfo())
        got = one_process(run.parent, kind, overrides, run=str(run), resume=True)
    row = next(r for r in fsdp_worker.read_jsonl(run / "metrics.jsonl") if r["step"] == step)
    return part(got, f"s{step}."), row


def same_bits(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and bool(a) and all(torch.equal(a[k], b[k]) for k in a)


def largest_grads(got: dict, step: int) -> dict[str, float]:
    """Each tensor's largest |g| over steps 1..step (what bounds Adam's first moment)."""
    g = [part(got, f"s{s}.grad.") for s in range(1, step + 1)]
    return {k: max(float(x[k].abs().max()) for x in g) for k in g[0]}


def compare_update(ref: dict, got: dict, step_got: dict, n: int, step: int, cfg) -> dict:
    """Gradients, weights (and anchor) of one step within the module docstring's bounds;
    returns the per-tensor gradient tolerances."""
    g_ref, g_got = part(ref, "grad."), part(step_got, "grad.")
    assert_grads_close(g_got, g_ref, n)
    grad_tols = {k: grad_tolerance(g, g_got[k], n) for k, g in g_ref.items()}
    lr, eps = cfg.optim.lr, cfg.optim.eps
    w_ref, w_got = part(ref, "model."), part(step_got, "model.")
    tols = update_tolerances(w_ref, grad_tols, largest_grads(got, step), lr, eps)
    assert_within(w_ref, w_got, tols, f"step {step}: ")
    if part(ref, "anchor."):
        alpha = cfg.rl.ema_alpha
        a_ref = part(ref, "anchor.")
        a_tols = anchor_tolerances(a_ref, w_ref, tols, alpha)
        assert_within(a_ref, part(step_got, "anchor."), a_tols, f"step {step} anchor: ")
    return grad_tols


def state_before(got: dict, step: int, prefix: str, cfg) -> torch.nn.Module:
    """The policy (`model.`) or anchor before `step` of a recorded run, as a module (with
    model.lora: the adapted model; its anchor the policy's base with the EMA adapters)."""
    from t1.models.lora import add_adapters

    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    model = build_tiny_model(tok, cfg.model.tiny, seed=0)
    model = add_adapters(model, cfg.model.lora, cfg.model, cfg.trainer.seed)  # as RLTrainer
    if step > 1:
        state = part(got, f"s{step - 1}.{prefix}")
        if cfg.model.lora.enabled:  # a LoRA anchor holds the adapters alone
            state = part(got, f"s{step - 1}.model.") | state
        missing, _ = model.load_state_dict(state, strict=False)
        assert missing == ["lm_head.weight"]  # tied to the embedding
    return model


def assert_rl_steps_equal_one_process(two: Path, name: str, overrides: list[str], tmp: Path):
    got, log = results(two, name)
    cfg = toy_config("x", *overrides)
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    rows = scripted_batch(cfg, tok, 8)  # every row a step can draw (rl_bounds.py)
    assert [r["step"] for r in log["rows"]] == list(range(1, STEPS + 1))
    for step, theirs in enumerate(log["rows"], start=1):
        ref, mine = one_process_step(two, name, "rl", overrides, step, tmp)
        policy = state_before(got, step, "model.", cfg)
        anchor = state_before(got, step, "anchor.", cfg)
        b = step_bounds(cfg, policy, anchor, rows, ranks=2)
        grad_tols = compare_update(ref, got, part(got, f"s{step}."), b.grad_terms, step, cfg)
        assert_metrics_close(mine, theirs, b, norm_tolerance(part(ref, "grad."), grad_tols))
    return log


@pytest.mark.numerics
def test_rl_two_processes_equal_one(two, tmp_path):
    log = assert_rl_steps_equal_one_process(two, "rl", RL, tmp_path)
    assert log["world"] == 2
    assert log["rows"][1]["kl"] != 0.0  # the anchor moved after step 1: the KL term acts


@pytest.mark.numerics
@pytest.mark.parametrize(
    ("name", "overrides"),
    [("replicated", [*RL, "train.fsdp=false"]), ("uneven", UNEVEN)],
    ids=["replicated: fsdp=false, all-reduce", "uneven micro-batch counts"],
)
def test_two_processes_equal_one_without_fsdp_or_with_uneven_ranks(two, tmp_path, name, overrides):
    log = assert_rl_steps_equal_one_process(two, name, overrides, tmp_path)
    if name == "uneven":
        assert log["empty_passes"] > 0


def test_checkpointing_and_offload_change_nothing(two):
    """Activation checkpointing recomputes the same ops on the same shapes; CPU offload keeps
    the same shards where they already are (on CPU): the same float work in the same
    processes, so every gradient, weight and anchor entry of every step is equal, bit for bit."""
    plain, options = results(two, "rl")[0], results(two, "options")[0]
    assert same_bits(plain, options)


def sft_bounds(cfg, model) -> tuple[int, float]:
    """(gradient terms, loss tolerance) of one SFT step over two ranks: rows from every trace,
    a step's loss the mean of <= batch_size·P targets' −log p (each within d, at magnitude
    <= L), a gradient entry a log-prob's path and the step's positions, + 1 for the ranks."""
    from test_sft import make_traces

    from t1.train.packing import collate
    from t1.train.sft_data import prepare_data

    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    examples = prepare_data(cfg, make_traces(40), tok, model).train
    ids = collate(examples, pack=False, max_len=cfg.sft.max_len, pad_id=0).input_ids
    P, positions = ids.shape[1], cfg.sft.batch_size * ids.shape[1]
    d, L = logprob_tolerance(model, ids), largest_logprob(model, ids, 1.0)
    return grad_terms(model.config, P, positions) + 1, d + bound(positions, L)


@pytest.mark.numerics
def test_sft_two_processes_equal_one(two, tmp_path):
    from test_sft import TINY

    from t1.config import SFTStage, load_config
    from t1.models import load_model

    got, log = results(two, "sft")
    assert log["empty_passes"] == STEPS  # rank 1, once a step
    cfg = load_config(SFTStage, None, [*TINY, "trainer.out=x", *SFT])
    for step, theirs in enumerate(log["rows"], start=1):
        ref, mine = one_process_step(two, "sft", "sft", SFT, step, tmp_path)
        model = load_model(cfg.model)[0]
        if step > 1:
            model.load_state_dict(part(got, f"s{step - 1}.model."), strict=False)
        n, loss_tol = sft_bounds(cfg, model)
        grad_tols = compare_update(ref, got, part(got, f"s{step}."), n, step, cfg)
        assert theirs["loss"] == pytest.approx(mine["loss"], rel=0, abs=loss_tol)
        norm_tol = norm_tolerance(part(ref, "grad."), grad_tols)
        assert theirs["grad_norm"] == pytest.approx(mine["grad_norm"], rel=0, abs=norm_tol)


def test_two_process_checkpoint_resumes_on_two_bitwise(two):
    """Checkpoint step-2 of the 2-process run, resumed by 2 processes: step 3 bitwise equal."""
    a, log_a = results(two, "rl")
    b, log_b = results(two, "rl_resumed")
    for prefix in ("model.", "anchor.", f"s{STEPS}."):
        assert same_bits(part(a, prefix), part(b, prefix)), prefix
    assert _without_timing(log_a["rows"]) == _without_timing(log_b["rows"])
    ckpt = two / "runs" / "rl_resumed" / "checkpoints" / "step-2" / "model"
    assert len(list(ckpt.glob("shard-*.safetensors"))) == 2  # one file per rank


def _without_timing(rows: list[dict]) -> list[dict]:
    from t1.train.rl_state import TIMING_KEYS

    return [{k: v for k, v in r.items() if not k.startswith(TIMING_KEYS)} for r in rows]


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


@pytest.mark.numerics
def test_root_forward_serves_a_chunked_output_head(two, tmp_path):
    """The decoder, then the output head's weight used directly in chunks (other chunk counts
    on each rank), inside `root_forward`: the gradients of the model's own forward."""
    got = results(two, "head")[0]
    ref = one_process(tmp_path, "head", [])
    cfg = toy_config("x")
    # a cross-entropy over 6 rows of 9 tokens: a log-prob's path forward and back, the sum over
    # the 54 positions, + 1 for the ranks' sum (tests/rounding.py)
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    ids = fsdp_worker.head_batch(len(tok))
    n = grad_terms(build_tiny_model(tok, cfg.model.tiny, seed=0).config, 9, ids.numel()) + 1
    assert_grads_close(part(got, "grad_plain."), part(got, "grad_head."), n)
    assert_grads_close(part(ref, "grad_plain."), part(got, "grad_head."), n)


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
@pytest.mark.numerics
def test_bf16_fsdp_keeps_float32_masters_and_an_exact_anchor(two, tmp_path):
    from test_precision import assert_exact_ema, moved_share

    got = results(two, "bf16")[0]
    cfg = toy_config("x")
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    theta0 = dict(build_tiny_model(tok, cfg.model.tiny, seed=0).named_parameters())
    theta1, anchor = part(got, "model."), part(got, "anchor.")
    assert all(v.dtype == torch.float32 for v in [*theta1.values(), *anchor.values()])
    grads = part(got, "grad.")
    assert moved_share(theta0, theta1, grads) == 1.0
    assert_exact_ema(anchor, theta0, theta1, alpha=0.95)
    # float32 compute on one process, the same first batch: within bf16_grad_tolerance of
    # tests/rounding.py
    ref = part(one_process(tmp_path, "rl", [*BF16, "model.dtype=float32"]), "grad.")
    assert ref.keys() == grads.keys() and ref
    for k, g in ref.items():
        torch.testing.assert_close(grads[k], g, rtol=0, atol=bf16_grad_tolerance(g), msg=k)
    final = load_file(str(two / "runs" / "bf16" / "final" / "model.safetensors"))
    assert all(torch.equal(final[k], theta1[k].to(torch.bfloat16)) for k in final)
