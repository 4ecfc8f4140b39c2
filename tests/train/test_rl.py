"""The RL trainer: it learns, each knob acts, data parallelism is exact, configs are checked."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from rl_toy import ScriptedEngine, toy_config, toy_problems  # noqa: E402

from t1.errors import ConfigError  # noqa: E402
from t1.models import build_char_tokenizer, build_tiny_model  # noqa: E402
from t1.rollout import collate_rollouts, compute_logprobs, sampling_params  # noqa: E402
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
        # after the first update: ref = 0.9 * theta0 + 0.1 * theta1
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


# two processes against one (FSDP2 and replicated): tests/train/test_fsdp.py


def test_sampler_logprobs_give_the_same_step_as_the_learner(tmp_path):
    # the HF engine reports log softmax(logits/T) of the sampled tokens: reusing them for the
    # KL and the ratio (no extra forward pass) must match recomputing them with the learner
    out = {}
    for mode in ("sampler", "learner"):
        t = _trainer(
            tmp_path / mode, f"rl.old_logp={mode}", "rl.beta=0.5", "sampling.temperature=1.2"
        )
        with torch.no_grad():
            for p in t.anchor.parameters():
                p.add_(0.05)
        out[mode] = (t.train_step(), [p.detach().clone() for p in t.model.parameters()])
    (m_s, w_s), (m_l, w_l) = out["sampler"], out["learner"]
    assert m_s["kl"] != 0.0
    assert m_s["kl"] == pytest.approx(m_l["kl"], rel=1e-4)
    assert m_s["ratio_max"] == pytest.approx(1.0, abs=1e-4)  # sampler == learner per token
    # 1 % of the first Adam step (lr = 0.01), which turns ~1e-7 log-prob differences where
    # |g| ~ eps into up to ~1e-4 (see the two-process test)
    for a, b in zip(w_s, w_l):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
