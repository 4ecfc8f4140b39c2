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
