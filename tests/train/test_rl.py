"""The RL trainer: it learns, each knob acts, data parallelism is exact, configs are checked."""

from __future__ import annotations

import copy
import math
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from ddp_step import ANCHOR_NUDGE, PROBLEMS, ddp_config  # noqa: E402
from launch import run_child, torchrun  # noqa: E402
from rl_bounds import (  # noqa: E402
    assert_metrics_close,
    assert_within,
    max_row_kl,
    scripted_batch,
    step_bounds,
    update_tolerances,
)
from rl_toy import (  # noqa: E402
    ADAM_AS_SGD,
    ScriptedEngine,
    nudge,
    record_rollouts,
    toy_config,
    toy_problems,
)
from rounding import (  # noqa: E402
    EPS32,
    assert_grads_close,
    bound,
    grad_terms,
    grad_tolerance,
    logprob_tolerance,
    norm_tolerance,
)

from t1.config import RLStage  # noqa: E402
from t1.errors import ConfigError  # noqa: E402
from t1.models import build_char_tokenizer, build_tiny_model  # noqa: E402
from t1.rollout import collate_rollouts, compute_logprobs, sampling_params  # noqa: E402
from t1.rollout.batch import sampler_logprobs  # noqa: E402
from t1.runs import read_jsonl  # noqa: E402
from t1.train.rl import RLTrainer, check_rl_config  # noqa: E402
from t1.train.rl_update import compute_advantages  # noqa: E402


def _trainer(tmp_path, *overrides, engine=None, n_problems=16):
    cfg = toy_config(str(tmp_path / "run"), *overrides)
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    model = build_tiny_model(tok, cfg.model.tiny, seed=cfg.trainer.seed)
    return RLTrainer(
        cfg, model, tok, toy_problems(n_problems), engine=engine(tok) if engine else None
    )


def test_rl_raises_the_reward(tmp_path):
    # 20 steps x 4 prompts x K=8 on a 0.1 M-parameter model: reward goes from ~0.1 to > 0.6
    trainer = _trainer(tmp_path, "trainer.steps=20")
    trainer.train()
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 21))
    first = sum(r["reward/mean"] for r in rows[:3]) / 3
    last = sum(r["reward/mean"] for r in rows[-3:]) / 3
    print(f"toy reward: first 3 steps {first:.3f}, last 3 steps {last:.3f}")
    assert first < 0.35
    assert last > 0.6 and last > first + 0.3
    assert (tmp_path / "run" / "final" / "config.json").is_file()
    assert (tmp_path / "run" / "checkpoints" / "step-20" / "COMPLETE").is_file()


def _entropy(trainer) -> float:
    rollouts = trainer.engine.generate(
        trainer.prompts[:4], 8, sampling_params(trainer.cfg.sampling, seed=123)
    )
    batch = collate_rollouts(rollouts, trainer.tokenizer.pad_token_id)
    with torch.no_grad():
        _, ent = compute_logprobs(trainer.model, batch, 1.0, with_entropy=True)
    return float((ent * batch.response_mask).sum() / batch.response_mask.sum())


def test_entropy_bonus_raises_entropy(tmp_path):
    plain = _trainer(tmp_path / "a", "trainer.steps=8", "rl.entropy_coef=0.0")
    plain.train()
    bonus = _trainer(tmp_path / "b", "trainer.steps=8", "rl.entropy_coef=0.5")
    bonus.train()
    h_plain, h_bonus = _entropy(plain), _entropy(bonus)
    print(f"entropy after 8 steps: coef 0 -> {h_plain:.3f}, coef 0.5 -> {h_bonus:.3f}")
    assert h_bonus > h_plain + 0.2


@pytest.mark.parametrize("anchor", ["ema", "frozen"])
def test_anchor_moves_only_when_ema(tmp_path, anchor):
    alpha = 0.9
    t = _trainer(
        tmp_path,
        "trainer.steps=2",
        f"rl.anchor={anchor}",
        f"rl.ema_alpha={alpha}",
        "rl.beta=0.05",
        engine=ScriptedEngine,
    )
    theta0 = [p.detach().clone() for p in t.model.parameters()]
    t.train_step()
    ref1 = [p.detach().clone() for p in t.anchor.parameters()]
    theta1 = [p.detach().clone() for p in t.model.parameters()]
    t.train_step()
    ref2 = [p.detach().clone() for p in t.anchor.parameters()]
    moved = any(not torch.equal(a, b) for a, b in zip(ref1, ref2))
    if anchor == "frozen":
        assert not moved
        assert all(torch.equal(a, b) for a, b in zip(ref1, theta0))
    else:
        assert moved
        # after the first update: ref = 0.9 * theta0 + 0.1 * theta1 (a lerp there, three
        # roundings each way at magnitude <= 2: <= 6·EPS32/2·2 = 7e-7, inside assert_close's
        # float32 default atol 1e-5)
        for r, a, b in zip(ref1, theta0, theta1):
            torch.testing.assert_close(r, alpha * a + (1 - alpha) * b)


def test_beta_changes_the_advantage_as_the_formula_says():
    rewards = torch.tensor([[1.0, 0.0, 0.0]])
    kl = torch.tensor([[0.6, 0.0, 0.3]])
    # RLOO rewards: 1-(0+0)/2 = 1, 0-(1+0)/2 = -0.5, 0-(1+0)/2 = -0.5
    # RLOO KL:     0.6-(0+0.3)/2 = 0.45, 0-(0.6+0.3)/2 = -0.45, 0.3-(0.6+0)/2 = 0
    # beta = 0.5:  1-0.225 = 0.775, -0.5+0.225 = -0.275, -0.5-0 = -0.5
    torch.testing.assert_close(
        compute_advantages(rewards, kl, 0.5, "rloo"), torch.tensor([[0.775, -0.275, -0.5]])
    )
    torch.testing.assert_close(
        compute_advantages(rewards, kl, 0.0, "rloo"), torch.tensor([[1.0, -0.5, -0.5]])
    )
    # Dr. GRPO's mean baseline: 1-1/3 = 2/3, -1/3, -1/3; minus 0.5 * RLOO KL as above
    torch.testing.assert_close(
        compute_advantages(rewards, kl, 0.5, "drgrpo"),
        torch.tensor([[2 / 3 - 0.225, -1 / 3 + 0.225, -1 / 3]]),
    )


def test_beta_changes_the_trainer_advantages(tmp_path):
    stats = {}
    for beta in (0.0, 1.0):
        t = _trainer(tmp_path / str(beta), f"rl.beta={beta}", engine=ScriptedEngine)
        with torch.no_grad():  # an anchor away from the policy: non-zero KL
            for p in t.anchor.parameters():
                p.add_(0.05)
        stats[beta] = t.train_step()
    assert stats[0.0]["kl"] == pytest.approx(stats[1.0]["kl"])  # same rollouts, same anchor
    assert stats[0.0]["kl"] != 0.0
    assert stats[1.0]["adv/abs_mean"] != pytest.approx(stats[0.0]["adv/abs_mean"])


def test_penalties_show_in_the_metrics(tmp_path):
    # two tokens are too few to finish: every response is truncated and gets the -1 penalty
    t = _trainer(tmp_path, "reward.truncation_penalty=-1.0", "sampling.max_new_tokens=2")
    m = t.train_step()
    assert m["response/truncated"] > 0.9
    assert m["penalty/truncated"] == pytest.approx(m["response/truncated"])
    assert m["reward/mean"] < -0.8


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("rl.train_k=9", "rl.train_k=9"),
        ("rl.k=1", "rl.k=1"),
        ("rl.updates_per_batch=2", "rl.clip_eps"),
        ("optim.grad_accum=2", "optim.grad_accum"),
        ("sampling.max_new_tokens=4096", "sampling.max_new_tokens=4096"),
    ],
)
def test_inconsistent_configs_fail_before_work(tmp_path, override, needle):
    cfg = toy_config(str(tmp_path), override)
    with pytest.raises(ConfigError, match=None) as err:
        check_rl_config(cfg, 1, max_positions=128)
    assert needle in str(err.value)
    with pytest.raises(ConfigError, match="not divisible by the world size 3"):
        check_rl_config(toy_config(str(tmp_path)), 3)


# two processes against one: the replicated path (train.fsdp=false, t1.train.distributed's
# gradient sum) here; FSDP2 in tests/train/test_fsdp.py
def _one_and_two_process_steps(tmp_path) -> tuple[dict, dict]:
    """ddp_step.py alone and under torchrun with 2 processes: (one, two) as it saved them."""
    script = Path(__file__).parent / "ddp_step.py"
    threads = str(torch.get_num_threads())  # each process runs as this one does
    env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONPATH": str(Path(__file__).parents[2])}
    one = tmp_path / "one.pt"
    run_child([sys.executable, str(script), str(one), str(tmp_path / "r1")], env)
    two = tmp_path / "two.pt"
    run_child(torchrun(2, str(script), str(two), str(tmp_path / "r2")), env)
    return torch.load(one), torch.load(two)


@pytest.mark.numerics
def test_two_process_update_equals_one_process(tmp_path):
    one, two = _one_and_two_process_steps(tmp_path)
    cfg = ddp_config(str(tmp_path / "unused"))
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    init = build_tiny_model(tok, cfg.model.tiny, seed=0)
    anchor = copy.deepcopy(init)
    nudge(anchor, ANCHOR_NUDGE)
    # Both runs take one step on the same 32 rows; only the order of float operations differs
    # (micro-batches of 3 rows of 32 or of 16, then a sum over ranks): every tolerance is a
    # bound of tests/rounding.py, taken over every row a run can draw (rl_bounds.py)
    b = step_bounds(cfg, init, anchor, scripted_batch(cfg, tok, PROBLEMS), ranks=2)
    assert_grads_close(two["grads"], one["grads"], b.grad_terms)
    grad_tols = {
        k: grad_tolerance(g, two["grads"][k], b.grad_terms) for k, g in one["grads"].items()
    }
    norm_tol = norm_tolerance(one["grads"], grad_tols)
    assert_metrics_close(one["metrics"], two["metrics"], b, norm_tol)

    # the update: Adam with eps = 1 (ADAM_AS_SGD) moves by <= lr/eps·(1 + |g|/eps)·|Δg|
    g_max = {k: float(g.abs().max()) for k, g in one["grads"].items()}
    lr, eps = cfg.optim.lr, cfg.optim.eps
    tols = update_tolerances(one["params"], grad_tols, g_max, lr, eps)
    assert_within(one["params"], two["params"], tols)
    # ... and the step itself is far larger than that: there is an update to compare
    init_w = init.state_dict()
    step = max(float((one["params"][k] - init_w[k]).abs().max()) for k in one["grads"])
    assert step > 100 * max(tols.values())


def _sampler_and_learner_steps(tmp_path, T: float, beta: float) -> tuple[dict, RLStage]:
    """One step per rl.old_logp mode from the same start: mode -> (metrics, grads, weights,
    (policy, anchor) before the step, rollouts), and the trainer's config."""
    runs = {}
    for mode in ("sampler", "learner"):
        t = _trainer(
            tmp_path / mode,
            f"rl.old_logp={mode}",
            f"rl.beta={beta}",
            f"sampling.temperature={T}",
            *ADAM_AS_SGD,
        )
        with torch.no_grad():
            for p in t.anchor.parameters():
                p.add_(0.05)
        before = copy.deepcopy(t.model), copy.deepcopy(t.anchor)
        rollouts = record_rollouts(t)
        metrics = t.train_step()
        grads = {k: p.grad.clone() for k, p in t.model.named_parameters()}
        weights = {k: p.detach().clone() for k, p in t.model.named_parameters()}
        runs[mode] = (metrics, grads, weights, before, rollouts)
    return runs, t.cfg


@pytest.mark.numerics
def test_sampler_logprobs_give_the_same_step_as_the_learner(tmp_path):
    # the HF engine reports log softmax(logits/T) of the sampled tokens: reusing them for the
    # KL and the ratio (no extra forward pass) must give the step that recomputing them gives
    T, beta = 1.2, 0.5
    runs, cfg = _sampler_and_learner_steps(tmp_path, T, beta)
    (m_s, g_s, w_s, (policy, anchor), rollouts), (m_l, g_l, w_l, _, again) = runs.values()
    assert [r.response_ids for r in rollouts] == [r.response_ids for r in again]  # one batch
    batch = collate_rollouts(rollouts, 0)
    mask = batch.response_mask.bool()
    rows, (P, R) = len(rollouts), (batch.input_ids.shape[1], mask.shape[1])
    with torch.no_grad():  # the old log-probs the learner mode used, and the anchor's
        learner = compute_logprobs(policy, batch, T, cfg.rl.micro_batch_size)
        ref = compute_logprobs(anchor, batch, T, cfg.rl.micro_batch_size)
    sampler = sampler_logprobs(rollouts, R)

    # 1. per token, the sampler's decode pass (KV cache, one token at a time) and the learner's
    # pass are two paths to one log-prob: within bound(n, m), n = logprob_terms, m =
    # path_magnitude (tests/rounding.py); T > 1 only shrinks it
    d_bound = logprob_tolerance(policy, batch.input_ids, T)
    d = float((sampler - learner)[mask].abs().max())
    assert d <= d_bound, f"sampler and learner log-probs differ by {d:.3g} > {d_bound:.3g}"

    # 2. everything downstream moves by a derived multiple of d, plus its own rounding bound
    L = float(torch.cat([learner[mask], ref[mask]]).abs().max())  # size of a log-prob
    # kl: per row Σ_t (old − ref) over <= R tokens (k1), the same ref: moves by <= R·d; the
    # sums over R tokens and the mean over the rows round at magnitude <= 2·R·L
    tol_kl = R * d + bound(R + rows, 2 * R * L)
    assert m_s["kl"] != 0.0
    assert m_s["kl"] == pytest.approx(m_l["kl"], rel=0, abs=tol_kl)
    # ratio exp(log p − old): the update's pass and the old log-probs are two paths (<= d_bound)
    for m in (m_s, m_l):
        assert 1.0 <= m["ratio_max"] <= math.exp(d_bound) * (1 + EPS32)
    # A = RLOO(r) − β·RLOO(kl) with r in {0, 1}: RLOO moves by <= twice its inputs' change;
    # |A| <= 1 + 2β·max|kl of a row|
    d_adv = 2 * beta * (R * d + bound(R + cfg.rl.k, 2 * R * L))
    a_max = 1 + 2 * beta * max_row_kl(policy, anchor, batch, T)
    assert m_s["adv/abs_mean"] == pytest.approx(
        m_l["adv/abs_mean"], rel=0, abs=d_adv + bound(rows, a_max)
    )
    # loss: token mean of −A·log p with the learner's log p in both runs: moves by <= L·ΔA and
    # rounds at magnitude <= |A|·L
    tol_loss = L * d_adv + bound(rows * R, a_max * L)
    assert m_s["loss"] == pytest.approx(m_l["loss"], rel=0, abs=tol_loss)
    # the gradient is linear in A: d_adv adds d_adv·CANCEL·largest entry to its rounding bound
    n = grad_terms(policy.config, P, rows * P)
    assert_grads_close(g_s, g_l, n, weight_change=d_adv)
    grad_tols = {k: grad_tolerance(g, g_s[k], n, d_adv) for k, g in g_l.items()}
    g_max = {k: float(g.abs().max()) for k, g in g_l.items()}
    tols = update_tolerances(w_l, grad_tols, g_max, cfg.optim.lr, cfg.optim.eps)
    assert_within(w_l, w_s, tols)
