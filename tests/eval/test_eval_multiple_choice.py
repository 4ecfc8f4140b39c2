"""`evaluate()` on a multiple-choice set (the `gpqa` verifier): accuracy, maj@k over letter
spellings, and the per-subject and per-domain tables, against hand counts."""

from __future__ import annotations

import pytest
from eval_fakes import FakeProblem, evaluate_script

from t1.rewards.multiple_choice import choice_reference

GASES = ["Helium", "Neon", "Argon", "Radon"]
# p0 (B): (B), Neon -> B, C, B: 3 of 4; p1 (A): C, C, A, none: 1 of 4; p2 (D): 4 of 4
SCRIPT = [
    ["The answer is (B)", "Answer: Neon", "Answer: C", "Answer: (B)"],
    ["Answer: C", "Answer: C", "Answer: A", "I do not know"],
    ["\\boxed{D}"] * 4,
]
PROBLEMS = [
    FakeProblem("g0", "Which?", choice_reference("B", GASES), meta={"subject": "Physics"}),
    FakeProblem("g1", "Which?", choice_reference("A", GASES), meta={"subject": "Chemistry"}),
    FakeProblem("g2", "Which?", "D", meta={"subject": "Physics", "domain": "Science"}),
]


@pytest.fixture
def result(tiny_tokenizer):
    return evaluate_script(tiny_tokenizer, PROBLEMS, SCRIPT, "gpqa", max_new=64)


def test_accuracy_and_majority_over_letter_spellings(result):
    # accuracy = mean(3/4, 1/4, 4/4) = 2/3
    assert result["accuracy"]["mean"] == pytest.approx(2 / 3)
    # maj@2: p0 (B,B) right, (C,B) tie -> C wrong: 1/2; p1 (C,C) wrong, (A,none) right: 1/2;
    # p2: 1 -> (1/2 + 1/2 + 1) / 3
    assert result["maj@k"]["2"] == pytest.approx(2 / 3)
    # maj@4: p0 B has 3 votes ("(B)", "Neon", "(B)" are one answer) right; p1 C wrong; p2 right
    assert result["maj@k"]["4"] == pytest.approx(2 / 3)
    assert [r["answer"] for r in result["samples"][:4]] == ["B", "B", "C", "B"]
    assert result["samples"][7]["answer"] is None and result["samples"][7]["penalty"] == "garbage"


def test_per_subject_and_domain_tables(result):
    subject = result["breakdown"]["subject"]
    assert subject["Physics"]["n_problems"] == 2
    assert subject["Physics"]["accuracy"]["mean"] == pytest.approx((3 / 4 + 1) / 2)
    assert subject["Chemistry"]["accuracy"]["mean"] == pytest.approx(1 / 4)
    assert result["breakdown"]["domain"]["Science"]["accuracy"]["mean"] == pytest.approx(1.0)
