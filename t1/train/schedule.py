"""The optimiser and learning-rate schedule every trainer shares (SFT and RL).

The learning rate of the optimiser step `s` (0-based) of a run of `S` steps with `W` warm-up
steps is `lr * f(s)`:

    f(s) = (s + 1) / W                                     for s < W   (linear warm-up)
    p    = (s - W) / max(1, S - W - 1)                     progress after warm-up, 0 -> 1
    f(s) = m + (1 - m) * (1 + cos(pi * p)) / 2             "cosine"
    f(s) = m + (1 - m) * (1 - p)                           "linear"
    f(s) = 1                                               "constant"

with `m = min_lr_ratio`, so the first step after warm-up runs at `lr` and the last one at
`lr * m` (OptimConfig: "the learning rate decays to lr * min_lr_ratio at the last step").
Weight decay (AdamW, decoupled) applies to matrices only: biases, norms and other 1-D
parameters are not decayed, as in nanoGPT and most LM recipes.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from t1.errors import ConfigError


def lr_factor(
    step: int, total_steps: int, warmup_steps: int, schedule: str, min_lr_ratio: float
) -> float:
    """The multiplier of the base learning rate at optimiser step `step` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps - 1)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    if schedule == "cosine":
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return min_lr_ratio + (1.0 - min_lr_ratio) * (1.0 - progress)
    raise ConfigError(f"optim.schedule: unknown schedule {schedule!r} (cosine, constant, linear)")


def check_optim(optim_cfg: Any) -> None:
    """Reject values that would train silently wrong, before any work starts."""
    if not optim_cfg.lr > 0:
        raise ConfigError(f"optim.lr must be > 0, got {optim_cfg.lr}")
    if optim_cfg.warmup_steps < 0:
        raise ConfigError(f"optim.warmup_steps must be >= 0, got {optim_cfg.warmup_steps}")
    if not 0.0 <= optim_cfg.min_lr_ratio <= 1.0:
        raise ConfigError(f"optim.min_lr_ratio must be in [0, 1], got {optim_cfg.min_lr_ratio}")
    if len(optim_cfg.betas) != 2 or not all(0.0 <= b < 1.0 for b in optim_cfg.betas):
        raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {optim_cfg.betas}")
    if optim_cfg.grad_clip is not None and not optim_cfg.grad_clip > 0:
        raise ConfigError(f"optim.grad_clip must be > 0 or null, got {optim_cfg.grad_clip}")
    if optim_cfg.grad_accum < 1:
        raise ConfigError(f"optim.grad_accum must be >= 1, got {optim_cfg.grad_accum}")
    lr_factor(optim_cfg.warmup_steps, 2, 0, optim_cfg.schedule, optim_cfg.min_lr_ratio)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters split into decayed (>= 2-D) and not decayed (biases, norms)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(model: torch.nn.Module, optim_cfg: Any) -> torch.optim.AdamW:
    """AdamW over the model's trainable parameters, configured by an `OptimConfig`."""
    check_optim(optim_cfg)
    return torch.optim.AdamW(
        param_groups(model, optim_cfg.weight_decay),
        lr=optim_cfg.lr,
        betas=(float(optim_cfg.betas[0]), float(optim_cfg.betas[1])),
        eps=optim_cfg.eps,
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, optim_cfg: Any, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR following `lr_factor`; call `.step()` once after every optimiser step.

    Its state (the step count) goes into checkpoints; the schedule itself is rebuilt from the
    config on resume, so a resumed run may extend `total_steps`.
    """
    if total_steps < 1:
        raise ConfigError(f"a run needs at least one optimiser step, got {total_steps}")
    warmup, schedule, floor = optim_cfg.warmup_steps, optim_cfg.schedule, optim_cfg.min_lr_ratio

    def factor(step: int) -> float:
        return lr_factor(step, total_steps, warmup, schedule, floor)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
