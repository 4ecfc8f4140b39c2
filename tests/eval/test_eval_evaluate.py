"""`evaluate()` on scripted responses: every summary number against a hand count."""

from __future__ import annotations

import json

import pytest
from eval_fakes import FakeProblem, evaluate_script

from t1.errors import ConfigError
from t1.eval.evaluate import check_ks, flat_metrics, summarize, write_eval
from t1.runs import RunDir, read_jsonl

# problem 0 (reference 3): 2 of 4 right; problem 1 (reference 7): 1 of 4 right, one cut at 12
SCRIPT = [
    ["\\boxed{3}", "\\boxed{3}", "\\boxed{5}", "\\boxed{4}"],
    ["\\boxed{7}", "\\boxed{1}", "\\boxed{1} and then more words", "\\boxed{1}"],
]
PROBLEMS = [
    FakeProblem("p0", "First?", "3", meta={"level": 1, "subject": "Algebra"}),
    FakeProblem("p1", "Second?", "7", meta={"level": 2, "subject": "Algebra"}),
]


@pytest.fixture
def result(tiny_tokenizer):
    return evaluate_script(tiny_tokenizer, PROBLEMS, SCRIPT, "math", max_new=12)


def test_accuracy_pass_and_maj_hand_computed(result):
    # accuracy = mean(2/4, 1/4) = 0.375
    assert result["accuracy"]["mean"] == pytest.approx(0.375)
    assert result["accuracy"]["lo"] <= 0.375 <= result["accuracy"]["hi"]
    # pass@1 = accuracy; pass@2: 1 - C(2,2)/C(4,2) = 5/6 and 1 - C(3,2)/C(4,2) = 1/2 -> 2/3
    assert result["pass@k"]["1"] == pytest.approx(0.375)
    assert result["pass@k"]["2"] == pytest.approx(2 / 3)
    # pass@4: each problem has a right sample -> 1
    assert result["pass@k"]["4"] == pytest.approx(1.0)
    # maj@2: p0 (3,3) right, (5,4) tie -> 5 wrong: 1/2; p1 (7,1) tie -> 7 right, (1,1) wrong: 1/2
    assert result["maj@k"]["2"] == pytest.approx(0.5)
    # maj@4: p0 -> 3 (2 votes) right; p1 -> 1 (3 votes) wrong: 1/2
    assert result["maj@k"]["4"] == pytest.approx(0.5)


def test_length_truncation_and_breakdown(result):
    # lengths: 7 responses of 9 characters and one cut at 12 -> 75 / 8 = 9.375
    assert result["len_mean"] == pytest.approx(9.375)
    assert result["truncated"] == pytest.approx(1 / 8)
    assert result["penalty"]["truncated"] == pytest.approx(1 / 8)
    assert result["n_problems"] == 2 and result["n_samples"] == 8
    level = result["breakdown"]["level"]
    assert level["1"]["accuracy"]["mean"] == pytest.approx(0.5)
    assert level["2"]["accuracy"]["mean"] == pytest.approx(0.25)
    assert result["breakdown"]["subject"]["Algebra"]["n_problems"] == 2


def test_graded_samples_and_files(result, tmp_path):
    rows = result["samples"]
    assert [r["correct"] for r in rows[:4]] == [True, True, False, False]
    cut = rows[6]
    assert cut["finish_reason"] == "length" and cut["response"] == "\\boxed{1} an"
    assert cut["penalty"] == "truncated" and cut["reward"] == -1.0
    path = write_eval(RunDir(tmp_path), "toy", result, {"model": "scripted"})
    summary = json.loads(path.read_text())
    assert summary["name"] == "toy" and summary["model"] == "scripted"
    assert "samples" not in summary
    assert len(read_jsonl(tmp_path / "eval" / "toy.samples.jsonl")) == 8
    flat = flat_metrics(result)
    assert flat["eval/accuracy"] == pytest.approx(0.375)
    assert flat["eval/pass@2"] == pytest.approx(2 / 3)
    assert flat["eval/maj@4"] == pytest.approx(0.5)


def test_ks_larger_than_n_is_a_config_error():
    with pytest.raises(ConfigError, match="eval.ks"):
        check_ks(4, [1, 8])


def test_one_sample_per_problem_adds_the_wilson_interval():
    rows = [
        {"index": i, "sample": 0, "correct": False, "answer": "1", "reward": 0.0,
         "penalty": None, "response_len": 5, "finish_reason": "stop"}
        for i in range(10)
    ]  # fmt: skip
    acc = summarize(rows, ks=[1], bootstrap=100)["accuracy"]
    assert (acc["mean"], acc["lo"], acc["hi"]) == (0.0, 0.0, 0.0)  # the bootstrap collapses
    # Wilson, 0 of 10: [0, 2 * 0.19208 / 1.38416] = [0, 0.277540]
    assert acc["wilson_lo"] == 0.0
    assert acc["wilson_hi"] == pytest.approx(0.277540, abs=1e-5)
