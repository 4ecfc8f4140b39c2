"""pass@k, maj@k and the intervals against hand-computed cases."""

from __future__ import annotations

import pytest

from t1.eval.metrics import (
    accuracy_with_interval,
    bootstrap_interval,
    maj_at_k,
    majority_vote,
    mean_maj_at_k,
    mean_pass_at_k,
    normalize_answer,
    pass_at_k,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (4, 1, 1, 0.25),  # 1 - C(3,1)/C(4,1) = 1 - 3/4
        (3, 0, 2, 0.0),  # no correct sample
        (5, 4, 2, 1.0),  # n - c = 1 < k: every pair holds a right one
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5) = 1 - 21/252
    ],
)
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_mean_pass_at_k_averages_problems():
    # problem 1: 2 of 5 right -> pass@1 = 0.4; problem 2: 1 of 4 -> 0.25; mean 0.325
    assert mean_pass_at_k([5, 4], [2, 1], 1) == pytest.approx(0.325)


def test_majority_vote_first_seen_wins_a_tie():
    # "3" and "5" have two votes each; "3" voted first -> "3" wins
    assert majority_vote(["3", "5", "3", "5"], [True, False, True, False]) == ("3", True)
    # same votes, "5" first -> "5" wins and is wrong
    assert majority_vote(["5", "3", "3", "5"], [False, True, True, False]) == ("5", False)


def test_majority_vote_ignores_missing_answers():
    assert majority_vote([None, None, "7"], [False, False, True]) == ("7", True)
    assert majority_vote([None, None], [False, False]) == (None, False)


def test_normalised_answers_vote_together():
    assert normalize_answer(" 4 2 ") == "42"
    assert normalize_answer("42.0") == normalize_answer("42") == "42"
    assert normalize_answer("4.05") == "4.05"
    # "42.0", "42" and " 42" form one bloc of 3 against 2 votes for "7"
    assert majority_vote(["7", "42.0", "7", "42", " 42"], [False, True, False, True, True])[1]


def test_maj_at_k_disjoint_groups():
    answers = ["1", "1", "2", "2", "2", "1"]
    correct = [a == "2" for a in answers]
    # k=2: (1,1) wrong, (2,2) right, (2,1) tie -> "2" first -> right: 2/3
    assert maj_at_k(answers, correct, 2) == pytest.approx(2 / 3)
    # k=3: (1,1,2) -> "1" wrong, (2,2,1) -> "2" right: 1/2
    assert maj_at_k(answers, correct, 3) == pytest.approx(0.5)
    # k=4: one group (1,1,2,2), tie -> "1" first -> wrong; the last two samples are unused
    assert maj_at_k(answers, correct, 4) == 0.0
    # k=1 is the per-sample accuracy: 3 of 6
    assert maj_at_k(answers, correct, 1) == pytest.approx(0.5)


def test_maj_at_k_needs_k_samples():
    with pytest.raises(ValueError, match="at least 4 samples"):
        maj_at_k(["1", "2"], [True, False], 4)


def test_mean_maj_at_k_over_problems():
    # problem A: (3,3,5) -> 3 right; problem B: (1,7,1) -> 1 wrong; mean 0.5
    answers = [["3", "3", "5"], ["1", "7", "1"]]
    correct = [[True, True, False], [False, True, False]]
    assert mean_maj_at_k(answers, correct, 3) == pytest.approx(0.5)


def test_wilson_interval_hand_computed():
    # 5/10, z=1.96: centre (0.5 + 0.19208)/1.38416 = 0.5;
    # half = 1.96 * sqrt(0.025 + 0.009604) / 1.38416 = 0.263411
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.5 - 0.263411, abs=1e-5)
    assert hi == pytest.approx(0.5 + 0.263411, abs=1e-5)
    # 0/10: centre = half = 0.19208/1.38416 = 0.138770 -> [0, 0.277540]
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(0.277540, abs=1e-5)


def test_bootstrap_interval_is_seeded_and_sensible():
    values = [0.0, 1.0] * 50  # mean 0.5, standard error sqrt(0.25/100) = 0.05
    lo, hi = bootstrap_interval(values, resamples=2000, seed=1)
    assert (lo, hi) == bootstrap_interval(values, resamples=2000, seed=1)
    # the 95 % interval is about mean +- 1.96 * 0.05 = [0.402, 0.598]
    assert lo == pytest.approx(0.402, abs=0.03)
    assert hi == pytest.approx(0.598, abs=0.03)
    assert bootstrap_interval([0.7] * 5) == pytest.approx((0.7, 0.7))


def test_accuracy_with_interval_empty_and_full():
    acc = accuracy_with_interval([1.0, 0.5, 0.0])
    assert acc["mean"] == pytest.approx(0.5)
    assert 0.0 <= acc["lo"] <= 0.5 <= acc["hi"] <= 1.0
    empty = accuracy_with_interval([])
    assert empty["mean"] != empty["mean"]  # nan
