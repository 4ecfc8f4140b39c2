"""RL and SFT with LoRA adapters (model.lora): learning, what the learner holds, the EMA-adapter
anchor, final/ in its three forms, exact resume, checkpoints loaded as models."""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

from rl_toy import ScriptedEngine, toy_config, toy_problems  # noqa: E402
from rounding import bound, logprob_terms, path_magnitude  # noqa: E402

from t1.config import ModelConfig  # noqa: E402
from t1.errors import T1Error  # noqa: E402
from t1.models import build_char_tokenizer, build_tiny_model, load_model  # noqa: E402
from t1.models.dcp import read_tensors  # noqa: E402
from t1.models.lora import merge_adapters_  # noqa: E402
from t1.rollout import collate_rollouts, compute_logprobs, sampling_params  # noqa: E402
from t1.runs import read_jsonl  # noqa: E402
from t1.train.anchor import AdapterAnchor, reference  # noqa: E402
from t1.train.footprint import optimizer_bytes  # noqa: E402
from t1.train.rl import RLTrainer  # noqa: E402
from t1.train.rl_state import TIMING_KEYS  # noqa: E402

peft = pytest.importorskip("peft", reason="LoRA needs the `lora` extra (peft); CI installs it")

RANK = 8
LORA = [f"model.lora.rank={RANK}", "model.lora.alpha=16"]
# The toy base's final RMSNorm gain. A randomly initialised tiny model's logits all lie within
# ±‖e_v‖·√H·g ≈ ±0.16·8·1 = ±1.3 (embedding rows e_v ~ N(0, 0.02²) in H = 64 dimensions, the
# tied head), a range adapters cannot widen: they change the normalised hidden state's
# direction, not the gain g nor the embeddings: maximising the digits' mass at the first
# response position directly (Adam, 100 steps on 4 prompts) stops at 0.14 with adapters at
# g = 1, at 0.92 at g = 5 (±6.4; trained models' logits span tens of nats). Both runs of the
# comparison start from this base.
GAIN = 5.0


def trainer(tmp_path: Path, *overrides: str, engine=None, gain: float | None = None) -> RLTrainer:
    cfg = toy_config(str(tmp_path / "run"), *overrides)
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    model = build_tiny_model(tok, cfg.model.tiny, seed=cfg.model.seed)
    if gain is not None:
        with torch.no_grad():
            model.model.norm.weight.fill_(gain)
    return RLTrainer(cfg, model, tok, toy_problems(16), engine=engine(tok) if engine else None)


def test_lora_rl_learns_the_toy_task_as_full_weight_rl_does(tmp_path):
    # the bar of tests/train/test_rl.py::test_rl_raises_the_reward, from the reward of the
    # untrained policy (step 1) to the last three steps of 20, the same learning rate (0.01)
    runs = {}
    for name, more in (("full", []), ("lora", LORA)):
        runs[name] = trainer(tmp_path / name, "trainer.steps=20", *more, gain=GAIN)
        runs[name].train()
    start = {}
    for name in runs:
        rows = read_jsonl(tmp_path / name / "run" / "metrics.jsonl")
        start[name], last = rows[0]["reward/mean"], sum(r["reward/mean"] for r in rows[-3:]) / 3
        print(f"{name}: reward at step 1 {start[name]:.3f}, last 3 of 20 steps {last:.3f}")
        assert start[name] < 0.35
        assert last > 0.6 and last > start[name] + 0.3, name
    # B = 0: the adapted policy is the base, so the first step's rollouts are the same
    assert start["full"] == start["lora"]
    # only the adapters trained: the base is as built
    lora = runs["lora"]
    base = build_tiny_model(lora.tokenizer, lora.cfg.model.tiny, seed=0)
    with torch.no_grad():
        base.model.norm.weight.fill_(GAIN)
    weights = dict(lora.model.named_parameters())
    for name, p in base.named_parameters():
        adapted = name.replace(".weight", ".base_layer.weight")
        assert torch.equal(weights.get(name, weights.get(adapted)), p), name


def test_learner_report_counts_adapters_and_what_adamw_allocates(tmp_path):
    t = trainer(tmp_path, "trainer.steps=1", *LORA, engine=ScriptedEngine)
    report = json.loads((tmp_path / "run" / "learner.json").read_text())
    # per layer, r (in + out) for q (64 + 64), k and v (64 + 32 each), o (64 + 64), gate and up
    # (64 + 128 each), down (128 + 64): 1024 r = 8192 at r = 8; two layers: 16 384
    assert report["trainable"] == 2 * 1024 * RANK == 16_384
    assert report["parameters"] == sum(p.numel() for p in t.model.parameters())
    b = report["bytes_per_rank"]
    # AdamW: two float32 states per trained value and a 4-byte step count per tensor (28 tensors)
    assert b["optimizer"] == 2 * 4 * 16_384 + 4 * 28
    # the anchor: the EMA adapters, float32
    assert b["anchor"] == 4 * 16_384 and isinstance(t.anchor, AdapterAnchor)
    t.train()
    assert optimizer_bytes(t.optimizer) == b["optimizer"]  # what the first step allocated
    full = trainer(tmp_path / "full", "trainer.steps=1", engine=ScriptedEngine)
    full_b = full.footprint["bytes_per_rank"]
    # a full anchor: 4 bytes per parameter (the tied head counted once)
    assert full_b["anchor"] == 4 * full.footprint["parameters"]
    print(
        f"anchor bytes: full copy {full_b['anchor']:,}, EMA adapters {b['anchor']:,} "
        f"({full_b['anchor'] / b['anchor']:.1f}x less); AdamW {full_b['optimizer']:,} -> "
        f"{b['optimizer']:,}"
    )


def test_the_anchor_is_the_base_with_ema_adapters(tmp_path):
    alpha = 0.9
    t = trainer(tmp_path, "trainer.steps=2", *LORA, f"rl.ema_alpha={alpha}", "rl.beta=0.1",
                engine=ScriptedEngine)  # fmt: skip
    names = t.anchor.names
    theta0 = {n: p.detach().clone() for n, p in t.model.named_parameters() if n in names}
    t.train_step()
    theta1 = {n: p.detach().clone() for n, p in t.model.named_parameters() if n in names}
    assert any(not torch.equal(theta0[n], theta1[n]) for n in names)
    for name, w in t.anchor.tensors().items():  # ema_update_'s float32 op: ref + (1-α)(θ - ref)
        assert torch.equal(w, theta0[name].lerp(theta1[name], 1 - alpha)), name
    # π_ref's forward is a model with the EMA adapters; the policy is put back bit for bit
    rollouts = ScriptedEngine(t.tokenizer).generate(
        t.prompts[:2], 4, sampling_params(t.cfg.sampling, 0)
    )
    batch = collate_rollouts(rollouts, t.tokenizer.pad_token_id)
    twin = copy.deepcopy(t.model)
    twin.load_state_dict(t.anchor.tensors(), strict=False)
    with torch.no_grad(), reference(t.anchor, t.model) as ref:
        got = compute_logprobs(ref, batch)
    with torch.no_grad():
        assert torch.equal(got, compute_logprobs(twin, batch))
    assert all(torch.equal(p, theta1[n]) for n, p in t.model.named_parameters() if n in names)


def test_a_frozen_lora_anchor_is_the_base_model(tmp_path):
    t = trainer(tmp_path, "trainer.steps=2", *LORA, "rl.anchor=frozen", engine=ScriptedEngine)
    t.train_step()
    t.train_step()
    base = build_tiny_model(t.tokenizer, t.cfg.model.tiny, seed=0)
    rollouts = ScriptedEngine(t.tokenizer).generate(
        t.prompts[:2], 4, sampling_params(t.cfg.sampling, 0)
    )
    batch = collate_rollouts(rollouts, t.tokenizer.pad_token_id)
    with torch.no_grad(), reference(t.anchor, t.model) as ref:
        got = compute_logprobs(ref, batch)
    with torch.no_grad():
        assert torch.equal(got, compute_logprobs(base, batch))  # B = 0: y + 0 exactly


def _tolerance(model: torch.nn.Module, ids: torch.Tensor) -> float:
    """tests/models/test_models_lora.py's bound: the model's terms plus, per adapted projection, the
    adapter's A x, B (A x), scaling and add, and the merged weight's sum."""
    c = model.config
    n = logprob_terms(c, ids.shape[1])
    n += c.num_hidden_layers * 7 * (c.hidden_size + c.intermediate_size + 2 * RANK + 3)
    return bound(n, path_magnitude(model, ids))


def _toy_batch(t: RLTrainer):
    rollouts = ScriptedEngine(t.tokenizer).generate(
        t.prompts[:3], 4, sampling_params(t.cfg.sampling, 0)
    )
    return collate_rollouts(rollouts, t.tokenizer.pad_token_id)


@pytest.mark.parametrize("save", ["merged", "adapter", "both"])
def test_final_holds_the_trained_model(tmp_path, save):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    t = trainer(
        tmp_path, "trainer.steps=2", *LORA, f"model.lora.save={save}", engine=ScriptedEngine
    )
    t.train()
    final = tmp_path / "run" / "final"
    batch = _toy_batch(t)
    with torch.no_grad():
        trained = compute_logprobs(t.model, batch)
        merged = compute_logprobs(merge_adapters_(copy.deepcopy(t.model)), batch)
    if save in ("merged", "both"):
        model = AutoModelForCausalLM.from_pretrained(final)
        assert not any("lora" in n for n, _ in model.named_parameters())
        with torch.no_grad():
            got = compute_logprobs(model, batch)
        assert torch.equal(got, merged)  # W + s·B A in float32 both ways, then the same ops
        torch.testing.assert_close(got, trained, rtol=0, atol=_tolerance(t.model, batch.input_ids))
    if save in ("adapter", "both"):
        folder = final if save == "adapter" else final / "adapter"
        assert (folder / "adapter_config.json").is_file()
        base = build_tiny_model(t.tokenizer, t.cfg.model.tiny, seed=0)
        model = PeftModel.from_pretrained(base, folder)
        with torch.no_grad():
            got = compute_logprobs(model, batch)
        assert torch.equal(got, trained)  # peft's own layers, the same weights and ops


def _copy_run(source: Path, step: int, target: Path) -> None:
    """`source` as it was right after checkpoint `step`."""
    shutil.copytree(source, target)
    for ckpt in (target / "checkpoints").glob("step-*"):
        if int(ckpt.name.removeprefix("step-")) > step:
            shutil.rmtree(ckpt)
    shutil.rmtree(target / "final", ignore_errors=True)


def _learning_rows(run: Path) -> list[dict]:
    rows = read_jsonl(run / "metrics.jsonl")
    return [{k: v for k, v in r.items() if not k.startswith(TIMING_KEYS)} for r in rows]


def test_lora_rl_resumes_bitwise(tmp_path):
    """A run checkpointed at step 2 and resumed in a fresh trainer (the base rebuilt, the
    adapters, AdamW moments and EMA adapters read back) ends as the uninterrupted run, bit for
    bit (the HF engine samples through the policy: the resumed sampler is restored too)."""
    steps = ["trainer.steps=4", "trainer.save_every=2", "trainer.keep_last=0", "rl.beta=0.1"]
    ref = trainer(tmp_path / "a", *steps, *LORA)
    ref.train()
    run_a, run_b = tmp_path / "a" / "run", tmp_path / "b" / "run"
    _copy_run(run_a, 2, run_b)
    resumed = trainer(tmp_path / "b", *steps, *LORA)
    resumed.train(resume=True)
    assert _learning_rows(run_a) == _learning_rows(run_b)
    for part in ("model", "optimizer", "anchor"):
        a, b = (read_tensors(r / "checkpoints" / "step-4" / part) for r in (run_a, run_b))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    saved = read_tensors(run_a / "checkpoints" / "step-4" / "model")
    assert saved and all(".lora_A." in k or ".lora_B." in k for k in saved)  # adapters only
    pa, pb = dict(ref.model.named_parameters()), dict(resumed.model.named_parameters())
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_a_lora_checkpoint_loads_as_the_merged_model_and_checks_its_base(tmp_path):
    t = trainer(tmp_path, "trainer.steps=2", "trainer.save_every=2", *LORA, engine=ScriptedEngine)
    t.train()
    ckpt = tmp_path / "run" / "checkpoints" / "step-2"
    model, _ = load_model(ModelConfig(path=str(ckpt), device="cpu"))
    want = dict(merge_adapters_(copy.deepcopy(t.model)).named_parameters())
    got = dict(model.named_parameters())
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    # resuming on another base model is refused, naming the base
    other = toy_config(str(tmp_path / "run"), "trainer.steps=3", *LORA)
    tok = build_char_tokenizer(other.model.tiny.alphabet)
    wrong = build_tiny_model(tok, other.model.tiny, seed=5)
    with pytest.raises(T1Error, match="base model's weights differ"):
        RLTrainer(other, wrong, tok, toy_problems(), engine=ScriptedEngine(tok)).train(resume=True)
    # and a full-weight run cannot resume a LoRA checkpoint
    plain = toy_config(str(tmp_path / "run"), "trainer.steps=3")
    model = build_tiny_model(tok, plain.model.tiny, seed=0)
    with pytest.raises(T1Error, match="holds LoRA adapters but this run trains full weights"):
        RLTrainer(plain, model, tok, toy_problems(), engine=ScriptedEngine(tok)).train(resume=True)


def test_lora_sft_trains_adapters_and_writes_a_merged_final(tmp_path):
    from test_sft import TINY, make_traces
    from transformers import AutoModelForCausalLM

    from t1.config import SFTStage, load_config
    from t1.train.sft import train_sft

    overrides = [*TINY, f"trainer.out={tmp_path / 'sft'}", "trainer.steps=4", "model.lora.rank=4"]
    cfg = load_config(SFTStage, None, overrides)
    model, summary = train_sft(cfg, make_traces(24))
    report = json.loads((tmp_path / "sft" / "learner.json").read_text())
    assert report["lora"]["rank"] == 4 and 0 < report["trainable_share"] < 0.5
    rows = read_jsonl(tmp_path / "sft" / "metrics.jsonl")
    assert rows[-1]["loss"] < rows[0]["loss"]
    final = AutoModelForCausalLM.from_pretrained(summary["final"])
    want = dict(merge_adapters_(copy.deepcopy(model)).named_parameters())
    assert all(torch.equal(p, want[n]) for n, p in final.named_parameters())
