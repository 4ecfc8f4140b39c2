"""Sample selection: hand-checked balanced picks, a counting reference, determinism, errors."""

from __future__ import annotations

import pytest
import torch

from t1.algo import informative_groups, select_samples


def _check_valid(idx: torch.Tensor, b: int, k: int, big_k: int) -> None:
    assert idx.shape == (b, k) and idx.dtype == torch.long
    assert ((idx >= 0) & (idx < big_k)).all()
    assert (idx[:, 1:] > idx[:, :-1]).all()  # ascending, hence distinct


def test_all() -> None:
    idx = select_samples(torch.zeros(2, 4), None, "all")
    torch.testing.assert_close(idx, torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]]))
    assert select_samples(torch.zeros(2, 4), 4).shape == (2, 4)
    with pytest.raises(ValueError, match="'all' keeps all K=4"):
        select_samples(torch.zeros(2, 4), 2, "all")


def test_balanced_hand_cases() -> None:
    g = torch.Generator().manual_seed(0)
    rewards = torch.tensor(
        [
            [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # 3 right: 2 right + 2 wrong
            [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # 1 right: 1 right + 3 wrong
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0],  # 1 wrong: 3 right + 1 wrong
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # no signal: 4 of the rest
        ]
    )
    idx = select_samples(rewards, 4, "balanced", g)
    _check_valid(idx, 4, 4, 8)
    picked = rewards.gather(1, idx).sum(1)
    torch.testing.assert_close(picked, torch.tensor([2.0, 1.0, 3.0, 0.0]))
    assert idx[1, 0] == 0 and idx[2, -1] == 7  # the lone right / lone wrong is always taken


def test_balanced_counts_match_loop_reference() -> None:
    g = torch.Generator().manual_seed(1)
    rewards = torch.randint(0, 3, (64, 7), generator=g).float()
    for k in (1, 2, 3, 5, 7):
        idx = select_samples(rewards, k, "balanced", g)
        _check_valid(idx, 64, k, 7)
        above = rewards > rewards.mean(1, keepdim=True)
        for i in range(64):
            n_above = int(above[i].sum())
            a = min(k // 2, n_above)
            b = min(k - a, 7 - n_above)
            a = k - b
            assert int(above[i, idx[i]].sum()) == a


@pytest.mark.parametrize("strategy", ["random", "balanced"])
def test_deterministic_under_generator(strategy: str) -> None:
    g = torch.Generator().manual_seed(2)
    rewards = torch.rand(32, 8, generator=g)
    first = select_samples(rewards, 4, strategy, torch.Generator().manual_seed(7))
    again = select_samples(rewards, 4, strategy, torch.Generator().manual_seed(7))
    other = select_samples(rewards, 4, strategy, torch.Generator().manual_seed(8))
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)  # 32 rows all equal by chance: ≈ 0


def test_random_is_uniform() -> None:
    g = torch.Generator().manual_seed(3)
    idx = select_samples(torch.zeros(4000, 4), 1, "random", g)
    _check_valid(idx, 4000, 1, 4)
    share = torch.bincount(idx.flatten(), minlength=4) / 4000
    # each index expected 1/4; sd = sqrt(0.25·0.75/4000) ≈ 0.0068, allow ~5 sd
    torch.testing.assert_close(share, torch.full((4,), 0.25), atol=0.035, rtol=0)
    _check_valid(select_samples(torch.zeros(3, 6), 6, "random", g), 3, 6, 6)


def test_informative_groups() -> None:
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [-1.0, -1.0, -1.0]])
    torch.testing.assert_close(informative_groups(rewards), torch.tensor([False, True, False]))


def test_errors() -> None:
    rewards = torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"k must be an int in 1..K=4, got 5"):
        select_samples(rewards, 5, "random")
    with pytest.raises(ValueError, match="got 0"):
        select_samples(rewards, 0, "balanced")
    with pytest.raises(ValueError, match="unknown selection strategy 'best'"):
        select_samples(rewards, 2, "best")
    with pytest.raises(ValueError, match="2-D"):
        select_samples(torch.zeros(4), 2, "random")
