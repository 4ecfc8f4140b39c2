"""pass@k: hand values and brute-force enumeration over all k-subsets."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from t1.algo import pass_at_k

# pass_at_k divides two exact integers once (Python rounds int / int correctly): within
# EPS64/2 = 1.1e-16 relative of the exact value, as 24/45 is; rel=1e-15 allows 9 such roundings


def test_hand_computed() -> None:
    # 1 − C(7, 2)/C(10, 2) = 1 − 21/45 = 24/45
    assert pass_at_k(10, 3, 2) == pytest.approx(24 / 45, rel=1e-15)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 5, 1) == 1.0
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8, rel=1e-15)  # k = 1 is the accuracy c/n
    assert pass_at_k(4, 2, 3) == 1.0  # only 2 wrong: every 3-subset holds a right one


def test_matches_enumeration() -> None:
    for n in range(1, 8):
        for c in range(n + 1):
            correct = set(range(c))
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(range(n), k))
                hits = sum(1 for s in subsets if correct.intersection(s))
                assert pass_at_k(n, c, k) == pytest.approx(hits / len(subsets), abs=1e-15)


def test_large_n_and_numpy_ints() -> None:
    # C(9999, 1)/C(10000, 1) = 0.9999 → 1e-4
    assert pass_at_k(10_000, 1, 1) == pytest.approx(1e-4, rel=1e-12)
    # the product form 1 − Π_{i=n−c+1}^{n} (1 − k/i) agrees where it is accurate: 21 roundings
    # at magnitude <= 1, then 1 − 0.56 = 0.44: relative error <= 21·EPS64/0.44 = 1e-14
    n, c, k = 500, 7, 40
    product = 1 - math.prod(1 - k / i for i in range(n - c + 1, n + 1))
    assert pass_at_k(n, c, k) == pytest.approx(product, rel=1e-12)
    assert pass_at_k(np.int64(10), np.int64(3), np.int64(2)) == pytest.approx(24 / 45)


@pytest.mark.parametrize(
    "args", [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6), (5.0, 2, 1), (5, True, 1)]
)
def test_errors(args: tuple) -> None:
    with pytest.raises(ValueError):
        pass_at_k(*args)
