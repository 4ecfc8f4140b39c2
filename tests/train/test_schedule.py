"""The shared optimiser and learning-rate schedule (t1.train.schedule)."""

from __future__ import annotations

import math

import pytest
import torch

from t1.config import OptimConfig
from t1.errors import ConfigError
from t1.train.schedule import lr_factor, make_optimizer, make_scheduler, param_groups


def test_cosine_warmup_hand_values():
    # S = 6 steps, W = 2 warm-up steps, m = 0.1; span = S - W - 1 = 3
    f = [lr_factor(s, 6, 2, "cosine", 0.1) for s in range(6)]
    assert f[0] == pytest.approx(0.5)  # (0 + 1) / 2
    assert f[1] == pytest.approx(1.0)  # (1 + 1) / 2
    assert f[2] == pytest.approx(1.0)  # p = 0: full lr right after warm-up
    # p = 1/3: 0.1 + 0.9 * (1 + cos(pi/3)) / 2 = 0.1 + 0.9 * 0.75 = 0.775
    assert f[3] == pytest.approx(0.775)
    # p = 2/3: 0.1 + 0.9 * (1 + cos(2 pi/3)) / 2 = 0.1 + 0.9 * 0.25 = 0.325
    assert f[4] == pytest.approx(0.325)
    assert f[5] == pytest.approx(0.1)  # p = 1: lr * min_lr_ratio at the last step


def test_linear_and_constant_hand_values():
    # S = 5, W = 0, m = 0.2, span = 4: p = s / 4, f = 0.2 + 0.8 * (1 - p)
    assert [lr_factor(s, 5, 0, "linear", 0.2) for s in range(5)] == pytest.approx(
        [1.0, 0.8, 0.6, 0.4, 0.2]
    )
    assert [lr_factor(s, 5, 2, "constant", 0.2) for s in range(5)] == pytest.approx(
        [0.5, 1.0, 1.0, 1.0, 1.0]
    )


def test_single_step_run_and_steps_past_the_end():
    # a one-step run without warm-up trains at the full rate; past the end stays at the floor
    assert lr_factor(0, 1, 0, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(50, 10, 0, "cosine", 0.1) == pytest.approx(0.1)


def test_scheduler_drives_the_optimiser_lr():
    model = torch.nn.Linear(3, 2)
    cfg = OptimConfig(lr=0.01, warmup_steps=2, schedule="cosine", min_lr_ratio=0.1)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, total_steps=6)
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [0.01 * lr_factor(s, 6, 2, "cosine", 0.1) for s in range(6)]
    assert seen == pytest.approx(expected)
    assert seen[0] == pytest.approx(0.005) and seen[-1] == pytest.approx(0.001)


def test_scheduler_state_round_trip_continues_the_schedule():
    cfg = OptimConfig(lr=1.0, warmup_steps=1)
    a = torch.nn.Linear(2, 2)
    opt = make_optimizer(a, cfg)
    sched = make_scheduler(opt, cfg, 10)
    for _ in range(4):
        opt.step()
        sched.step()
    opt2 = make_optimizer(a, cfg)
    sched2 = make_scheduler(opt2, cfg, 10)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    opt.step(), sched.step(), opt2.step(), sched2.step()
    assert (
        opt2.param_groups[0]["lr"]
        == opt.param_groups[0]["lr"]
        == lr_factor(5, 10, 1, "cosine", 0.1)
    )


def test_weight_decay_only_on_matrices():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    groups = param_groups(model, 0.1)
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert decayed == {id(model[0].weight)}  # biases and the norm's weight/bias are not decayed
    assert len(groups[1]["params"]) == 3


@pytest.mark.parametrize(
    "field, value, key",
    [
        ("lr", 0.0, "optim.lr"),
        ("warmup_steps", -1, "optim.warmup_steps"),
        ("min_lr_ratio", 1.5, "optim.min_lr_ratio"),
        ("betas", [0.9], "optim.betas"),
        ("grad_clip", 0.0, "optim.grad_clip"),
        ("grad_accum", 0, "optim.grad_accum"),
    ],
)
def test_bad_optim_values_name_their_key(field, value, key):
    cfg = OptimConfig(**{field: value})
    with pytest.raises(ConfigError, match=key):
        make_optimizer(torch.nn.Linear(2, 2), cfg)


def test_zero_step_run_is_a_config_error():
    opt = make_optimizer(torch.nn.Linear(2, 2), OptimConfig())
    with pytest.raises(ConfigError, match="at least one"):
        make_scheduler(opt, OptimConfig(), 0)


def test_cosine_is_monotone_after_warmup():
    f = [lr_factor(s, 100, 10, "cosine", 0.0) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(f, f[1:]))
    assert math.isclose(f[-1], 0.0, abs_tol=1e-12)
