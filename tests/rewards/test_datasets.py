"""The graders on real references: MATH-500 solutions and GSM8K test answers (shared data)."""

from __future__ import annotations

import json
from pathlib import Path

from t1.rewards import extract_answer, get_verifier, math_equal, reference_answer
from t1.rewards.normalize import parse_number


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_math500_solution_answers_match(shared_data: Path) -> None:
    rows = _rows(shared_data / "math500.jsonl")
    assert len(rows) == 500
    misses = [
        (row["unique_id"], extract_answer(row["solution"]), row["answer"])
        for row in rows
        if not math_equal(extract_answer(row["solution"]) or "", row["answer"])
    ]
    assert misses == []
    # and the reference reduction used by the math verifier agrees with the `answer` field
    assert all(math_equal(reference_answer(row["solution"]), row["answer"]) for row in rows)


def test_math500_wrong_answers_are_rejected(shared_data: Path) -> None:
    # every row's answer against the next row's: different problems, different answers
    # (except rows whose answers coincide, which must then be judged equal)
    rows = _rows(shared_data / "math500.jsonl")[:80]
    verifier = get_verifier("math")
    for row, other in zip(rows, rows[1:]):
        same = row["answer"].strip() == other["answer"].strip()
        result = verifier(f"So the answer is $\\boxed{{{other['answer']}}}$.", row["solution"])
        if same:
            assert result.correct
        elif result.correct:  # a genuinely equal value spelled differently is fine, if rare
            assert math_equal(other["answer"], row["answer"])


def test_gsm8k_test_all_rows(shared_data: Path) -> None:
    rows = _rows(shared_data / "gsm8k_test.jsonl")
    assert len(rows) == 1319
    verifier = get_verifier("gsm8k")
    for row in rows:
        body, _, tail = row["answer"].rpartition("####")
        gold = parse_number(reference_answer(row["answer"]))
        assert gold is not None and gold == parse_number(tail.strip().replace(",", ""))
        # the full solution, a free-form rewrite, and a wrong final number
        assert verifier(row["answer"], row["answer"]).correct
        assert verifier(f"{body}The answer is {tail.strip()}.", row["answer"]).correct
        assert not verifier(f"{body}The answer is {gold + 1}.", row["answer"]).correct


def test_fast_not_equal_only_where_math_verify_agrees(shared_data: Path) -> None:
    # MATH-500 answers dressed as models write them (units, words, wrappers, percent), each
    # against its own answer and the next row's: every "not equal" of the fast path must be
    # Math-Verify's verdict too (a fast "not equal" it would not give is a lost right answer)
    from t1.rewards.math_equal import fast_verdict
    from t1.rewards.math_verify_guard import verify_inline

    rows = _rows(shared_data / "math500.jsonl")[:60]
    dressed = ("@\\text{ cm}", "@ m", "x = @", "\\left( @ \\right)", "@\\%", "@ apples")
    checked = 0
    for row, other in zip(rows, rows[1:]):
        for form in dressed:
            pred = form.replace("@", row["answer"].replace("\\frac", "\\dfrac"))
            for ref in (row["answer"], other["answer"]):
                if fast_verdict(pred, ref) is False:
                    checked += 1
                    assert verify_inline(pred, ref, None) == (False, "verify"), (pred, ref)
    assert checked >= 100  # the check bites: most dressed wrong answers are decided fast
