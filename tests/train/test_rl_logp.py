"""Behaviour log-probs: rl.old_logp resolution, mismatch metrics, truncated importance sampling."""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from rl_bounds import assert_within, update_tolerances  # noqa: E402
from rl_toy import (  # noqa: E402
    ADAM_AS_SGD,
    ScriptedEngine,
    record_rollouts,
    toy_config,
    toy_problems,
)
from rounding import (  # noqa: E402
    assert_grads_close,
    bound,
    grad_terms,
    grad_tolerance,
    logprob_tolerance,
)

from t1.errors import ConfigError  # noqa: E402
from t1.models import build_char_tokenizer, build_tiny_model  # noqa: E402
from t1.rollout import collate_rollouts, compute_logprobs, sampling_params  # noqa: E402
from t1.train.distributed import DistInfo  # noqa: E402
from t1.train.rl import RLTrainer, check_rl_config  # noqa: E402
from t1.train.rl_logp import behaviour_logprobs, resolve_old_logp  # noqa: E402


def test_auto_is_sampler_for_hf_and_learner_for_vllm():
    assert resolve_old_logp("auto", "hf") == "sampler"
    assert resolve_old_logp("auto", "vllm") == "learner"
    assert resolve_old_logp("sampler", "vllm") == "sampler"
    assert resolve_old_logp("learner", "hf") == "learner"
    assert toy_config("x").rl.old_logp == "auto"


def _scripted_batch(tmp_path, *overrides):
    """Rollouts whose sampler log-probs are all 0 (ScriptedEngine): a known, large mismatch."""
    cfg = toy_config(str(tmp_path), *overrides)
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    model = build_tiny_model(tok, cfg.model.tiny, seed=0)
    prompts = [f"q{i}" for i in range(3)]
    rollouts = ScriptedEngine(tok).generate(prompts, 4, sampling_params(cfg.sampling, 0))
    batch = collate_rollouts(rollouts, tok.pad_token_id)
    with torch.no_grad():
        learner = compute_logprobs(model, batch, cfg.sampling.temperature)
    return cfg, model, rollouts, batch, learner


def test_sampler_mode_without_tis_takes_the_engines_numbers_and_no_pass(tmp_path):
    cfg, model, rollouts, batch, _ = _scripted_batch(tmp_path, "rl.old_logp=sampler")
    out = behaviour_logprobs(model, rollouts, batch, cfg, DistInfo())
    assert torch.equal(out.old_logp, torch.zeros_like(out.old_logp))  # the engine's zeros
    assert out.weight is None and out.metrics == {}


def test_learner_mode_logs_the_mismatch_against_the_sampler(tmp_path):
    cfg, model, rollouts, batch, learner = _scripted_batch(tmp_path, "rl.old_logp=learner")
    out = behaviour_logprobs(model, rollouts, batch, cfg, DistInfo())
    assert torch.equal(out.old_logp, learner)
    m = batch.response_mask.bool()
    # the sampler said log p = 0 for every token: |0 − log p_learner| = −log p_learner.
    # The metric sums n float32 values in float32 (relative error <= n·2^-24 for positive
    # terms); the reference sums them in float64
    n = int(m.sum())
    expected_mean = float((-learner[m]).double().sum() / n)
    got = out.metrics["mismatch/logp_abs_mean"]
    assert got == pytest.approx(expected_mean, rel=n * 2**-24)
    assert out.metrics["mismatch/logp_abs_max"] == float((-learner[m]).max())
    assert out.weight is None


def test_tis_weights_are_capped_learner_over_sampler_probabilities(tmp_path):
    cfg, model, rollouts, batch, learner = _scripted_batch(
        tmp_path, "rl.old_logp=sampler", "rl.tis_cap=0.05"
    )
    out = behaviour_logprobs(model, rollouts, batch, cfg, DistInfo())
    m = batch.response_mask.bool()
    # w = min(p_learner / p_sampler, C) = min(p_learner / 1, 0.05): the same float32 exp
    torch.testing.assert_close(out.weight[m], learner[m].exp().clamp(max=0.05), rtol=0, atol=0)
    assert torch.equal(out.old_logp, torch.zeros_like(out.old_logp))  # still the sampler's
    capped = float((learner[m].exp() >= 0.05).double().mean())
    assert out.metrics["tis/capped"] == pytest.approx(capped, rel=1e-12)
    assert "mismatch/logp_abs_mean" in out.metrics


def _hf_trainer(tmp_path, *overrides):
    cfg = toy_config(str(tmp_path / "run"), "sampling.temperature=1.2", *overrides)
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    model = build_tiny_model(tok, cfg.model.tiny, seed=cfg.trainer.seed)
    return RLTrainer(cfg, model, tok, toy_problems(16))


def _step_with_rollouts(trainer: RLTrainer) -> tuple[dict, dict, dict, list]:
    """One step: its metrics, gradients, weights after it and the rollouts it trained on."""
    seen = record_rollouts(trainer)
    metrics = trainer.train_step()
    grads = {k: p.grad.clone() for k, p in trainer.model.named_parameters()}
    weights = {k: p.detach().clone() for k, p in trainer.model.named_parameters()}
    return metrics, grads, weights, seen


@pytest.mark.numerics
def test_with_the_hf_engine_tis_weights_are_one_and_change_nothing(tmp_path):
    out = {}
    for name, extra in (("plain", ()), ("tis", ("rl.tis_cap=2.0",))):
        t = _hf_trainer(tmp_path / name, *ADAM_AS_SGD, *extra)
        policy = copy.deepcopy(t.model)
        out[name] = _step_with_rollouts(t)
    (_, g_plain, w_plain, rollouts), (m_tis, g_tis, w_tis, again) = out.values()
    assert [r.response_ids for r in rollouts] == [r.response_ids for r in again]  # one batch
    batch = collate_rollouts(rollouts, 0)
    T, mask = 1.2, batch.response_mask
    # the HF engine reports the learner's own log softmax(z/T), computed on another path (a KV
    # cache, one position at a time): within d of tests/rounding.py; a stale or wrong sampler
    # would differ by 0.1-1 nats
    d = logprob_tolerance(policy, batch.input_ids, T)
    assert m_tis["mismatch/logp_abs_max"] <= d < 0.01
    # w = min(e^δ, 2) with |δ| <= d: within expm1(d) of 1; the mean over the tokens rounds at
    # magnitude <= e^d
    tokens = int(mask.sum())
    tol_w = math.expm1(d) + bound(tokens, math.exp(d))
    assert m_tis["tis/weight_mean"] == pytest.approx(1.0, rel=0, abs=tol_w)
    assert m_tis["tis/capped"] == 0.0
    # each token's term −A·w·log p is scaled by w within expm1(d) of 1, |A| <= 1 (RLOO of 0/1
    # rewards, no KL): the gradient, linear in those weights, moves by <= expm1(d)·CANCEL x its
    # largest entry beyond the rounding of a log-prob's path and the sum over the positions
    rows, P = len(rollouts), batch.input_ids.shape[1]
    n = grad_terms(policy.config, P, rows * P)
    assert_grads_close(g_tis, g_plain, n, weight_change=math.expm1(d))
    # Adam with eps = 1 (ADAM_AS_SGD): the step moves by <= lr/eps·(1 + |g|/eps)·|Δg|
    grad_tols = {k: grad_tolerance(g, g_tis[k], n, math.expm1(d)) for k, g in g_plain.items()}
    g_max = {k: float(g.abs().max()) for k, g in g_plain.items()}
    lr, eps = t.cfg.optim.lr, t.cfg.optim.eps
    assert_within(w_plain, w_tis, update_tolerances(w_plain, grad_tols, g_max, lr, eps))


@pytest.mark.parametrize(
    ("overrides", "world", "needle"),
    [
        (("rollout.engine=vllm", "rollout.tensor_parallel_size=3"), 2, "must divide the world"),
        (("rl.tis_cap=0",), 1, "rl.tis_cap=0"),
        (("rl.tis_cap=.inf",), 1, "rl.tis_cap=inf"),
    ],
)
def test_engine_and_correction_settings_are_checked(tmp_path, overrides, world, needle):
    cfg = toy_config(str(tmp_path), "rl.prompts_per_step=6", *overrides)
    with pytest.raises(ConfigError) as err:
        check_rl_config(cfg, world)
    assert needle in str(err.value)
    check_rl_config(toy_config(str(tmp_path), "rollout.engine=vllm", "rl.tis_cap=2"), 1)
    # held-out evaluation runs on every rank, so a tensor-parallel vLLM engine may evaluate
    tp_eval = ("rollout.engine=vllm", "rollout.tensor_parallel_size=2", "data.eval=held.jsonl")
    check_rl_config(toy_config(str(tmp_path), "rl.prompts_per_step=6", *tp_eval), 2)
