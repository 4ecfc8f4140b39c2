"""Argument checks shared by the algorithm functions.

Shape mistakes in RL code rarely crash: broadcasting turns a (B, K) by (B·K,) product into a
(B·K, B·K) matrix and training silently goes wrong. Every public function in `t1.algo` therefore
checks its shapes first and raises a `ValueError` that names the argument and both shapes.
"""

from __future__ import annotations

import torch


def check_2d(name: str, x: torch.Tensor) -> None:
    """Raise unless `x` is a 2-D tensor (the (B, K) or (N, T) layouts used throughout)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(x.shape)}")


def check_same_shape(**tensors: torch.Tensor) -> None:
    """Raise unless all keyword tensors have one shape; the message lists every shape."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"shapes must match: {listed}")


def check_group_size(name: str, rewards: torch.Tensor, minimum: int) -> None:
    """Raise unless `rewards` is (B, K) with K >= `minimum` (a leave-one-out needs K >= 2)."""
    check_2d(name, rewards)
    if rewards.shape[1] < minimum:
        raise ValueError(
            f"{name} has K={rewards.shape[1]} samples per prompt; this estimator needs "
            f"K >= {minimum}"
        )


def as_bool_mask(mask: torch.Tensor) -> torch.Tensor:
    """A boolean view of a 0/1 mask (float, int or bool): non-zero marks a response token."""
    return mask if mask.dtype == torch.bool else mask != 0


def pick(family: dict, name: str, what: str):
    """`family[name]`, or a `ValueError` listing the valid names."""
    try:
        return family[name]
    except KeyError:
        valid = ", ".join(repr(k) for k in family)
        raise ValueError(f"unknown {what} {name!r}; valid: {valid}") from None
