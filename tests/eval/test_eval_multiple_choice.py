"""`evaluate()` on a multiple-choice set (the `gpqa` verifier): accuracy, maj@k over letter
spellings, and the per-subject and per-domain tables, against hand counts; the gpqa preset's
answer-forcing suffix followed by a letter, graded; `t1 eval` and `t1 scale` on a small
multiple-choice file (made-up questions) with a tiny model."""

from __future__ import annotations

import json

import pytest
from eval_fakes import FakeProblem, evaluate_script
from test_eval_cli import TINY as CLI_ARGS

from t1.cli import main
from t1.data import load_problems
from t1.eval.scaling import grade_budgets
from t1.presets import get_preset
from t1.rewards import get_verifier
from t1.rewards.multiple_choice import choice_reference
from t1.rollout.base import Rollout

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


class ScriptedCompleter:
    """Writes `answers[i]` as the forced answer of the i-th forced input (character tokens)."""

    def __init__(self, tokenizer, answers: list[str]):
        self.tokenizer, self.answers = tokenizer, answers

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def complete(self, inputs, max_new_tokens: int) -> list[list[int]]:
        return [self.encode(a)[:max_new_tokens] for a in self.answers[: len(inputs)]]


# forced answers after the gpqa preset's "\n\nAnswer: ", and whether each names B (Neon)
FORCED = [
    ("B", True), ("(B)", True), (" B", True), ("b", True), ("**B**", True), ("B) Neon", True),
    ("Neon", True), ("B\n\nbecause Argon is C", True), ("C", False), ("Argon", False),
    ("A", False), ("", False),
]  # fmt: skip


def test_the_gpqa_scale_suffix_then_a_letter_is_graded_right(tiny_tokenizer):
    suffix = get_preset("gpqa").suffix
    assert suffix == "\n\nAnswer: "
    prompt_ids = tiny_tokenizer.encode("Q?", add_special_tokens=False)
    # a response cut by the limit whose thinking boxes a wrong option: only the forced answer
    # (suffix + completion) is graded at a budget that cuts it
    ids = tiny_tokenizer.encode("\\boxed{C} hmm, no." * 4, add_special_tokens=False)
    rollouts = [
        Rollout(i, prompt_ids, ids, [0.0] * len(ids), "length", "") for i in range(len(FORCED))
    ]
    completer = ScriptedCompleter(tiny_tokenizer, [a for a, _ in FORCED])
    grades = grade_budgets(
        rollouts, [choice_reference("B", GASES)] * len(FORCED), [12], completer, suffix,
        answer_tokens=30, verifier=get_verifier("gpqa"),
    )  # fmt: skip
    assert [g[12][1] for g in grades] == [right for _, right in FORCED]
    assert [g[12][0] for g in grades][:8] == ["B"] * 8


# the tiny model of the CLI tests, with the gpqa preset's prompt, verifier and suffix
TINY = [a for a in CLI_ARGS if not a.startswith("reward.task=")] + ["data.preset=gpqa"]


@pytest.fixture
def mc_file(tmp_path):
    """Four made-up questions: two in GPQA's column layout, two with an option list."""
    rows = [
        {"Question": "Which made-up gas glows green?", "Correct Answer": "Zorium",
         "Incorrect Answer 1": "Blorium", "Incorrect Answer 2": "Quonium",
         "Incorrect Answer 3": "Plimium", "Record ID": "recA", "High-level domain": "Chemistry",
         "Subdomain": "Gases"},
        {"Question": "Which made-up orbit is widest?", "Correct Answer": "Outer",
         "Incorrect Answer 1": "Inner", "Incorrect Answer 2": "Middle",
         "Incorrect Answer 3": "Core", "Record ID": "recB", "High-level domain": "Physics",
         "Subdomain": "Orbits"},
        {"question": "Which is the lightest noble gas?", "choices": GASES[:3] + ["Oxygen"],
         "answer": 0, "domain": "Chemistry"},
        {"question": "Two plus two?", "choices": ["3", "4", "5", "6"], "answer": "4"},
    ]  # fmt: skip
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_loaded_multiple_choice_set_is_graded_by_its_own_verifier(tiny_tokenizer, mc_file):
    problems = load_problems(mc_file)
    right = [json.loads(p.answer)["answer"] for p in problems]
    wrong = "B" if right[1] != "B" else "C"
    script = [
        [f"Answer: {right[0]}", "Answer: Zorium", f"\\boxed{{{right[0]}}}", "Zorium?"],
        [f"Answer: {wrong}", "Answer: Inner", "Answer: Outer", f"({right[1]})"],
        ["\\boxed{Helium}", "Answer: A", "Answer: B", "Answer: Oxygen"],
        ["The answer is 4", "Answer: B", "Answer: 5", "Answer: (b)"],
    ]
    # graded by the rows' own task (multiple_choice), though the stage's verifier is math:
    # p0 3 of 4 right ("Zorium?" is no answer phrase, and a last line that is not a letter),
    # p1 2 of 4, p2 2 of 4, p3 3 of 4 -> (3 + 2 + 2 + 3) / 16
    result = evaluate_script(tiny_tokenizer, problems, script, "math", max_new=64)
    assert [r["correct"] for r in result["samples"]] == [
        True, True, True, False, False, False, True, True,
        True, True, False, False, True, True, False, True,
    ]  # fmt: skip
    assert result["accuracy"]["mean"] == pytest.approx(10 / 16)
    assert result["breakdown"]["subdomain"]["Orbits"]["accuracy"]["mean"] == pytest.approx(0.5)


def test_t1_eval_and_scale_on_a_multiple_choice_file(tmp_path, mc_file):
    out = tmp_path / "ev"
    args = [f"data.eval={mc_file}", f"eval.out={out}", "eval.n=2", "eval.ks=[1,2]",
            "sampling.max_new_tokens=8", "eval.bootstrap=50"]  # fmt: skip
    assert main(["eval", *TINY, *args]) == 0
    summary = json.loads((out / "eval" / "mc.json").read_text())
    assert summary["n_problems"] == 4 and summary["n_samples"] == 8
    # per-domain tables: GPQA's "High-level domain" and a row's own "domain" alike
    assert summary["breakdown"]["domain"]["Chemistry"]["n_problems"] == 2
    assert summary["breakdown"]["domain"]["Physics"]["n_problems"] == 1
    assert set(summary["breakdown"]["subdomain"]) == {"Gases", "Orbits"}
    rows = [json.loads(line) for line in (out / "eval" / "mc.samples.jsonl").open()]
    first = rows[0]["prompt"]
    # simple-evals' instruction, then the question, then the lettered options
    assert "Answer the following multiple choice question." in first
    assert "\n\nWhich made-up gas glows green?\n\n(A) " in first and "\n(D) " in first
    assert json.loads(rows[4]["reference"]) == {"answer": "A", "choices": GASES[:3] + ["Oxygen"]}
    assert json.loads(rows[6]["reference"])["answer"] == "B"

    sc = tmp_path / "sc"
    args = [f"data.eval={mc_file}", f"scale.out={sc}", "scale.budgets=[4,8]",
            "scale.parallel_ks=[2]", "scale.answer_tokens=2", "scale.bootstrap=50"]  # fmt: skip
    assert main(["scale", *TINY, *args]) == 0
    result = json.loads((sc / "eval" / "scale.json").read_text())
    (model,) = result["models"]
    assert model["suffix"] == "\n\nAnswer: " and model["n_problems"] == 4
    assert [p["budget"] for p in model["sequential"]] == [4, 8]
