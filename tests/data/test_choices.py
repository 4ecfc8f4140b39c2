"""Multiple-choice rows: option lists and GPQA's own columns become problems whose prompt shows
the lettered options and whose reference the `gpqa` verifier grades by letter or text; the GPQA
shuffle is fixed per row; bad rows are named by file:line or dataset[split][row] and column.

Every question here is made up (GPQA's own are not to be republished in plain text)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from t1.config import DataConfig
from t1.data import Fields, load_problems, problems_for, write_problems
from t1.data.choices import SHUFFLE_SEED, shuffle_order
from t1.errors import DataError
from t1.rewards import get_verifier

GASES = ["Helium", "Neon", "Argon", "Radon"]


def write(tmp_path: Path, rows: list[dict], name: str = "mc.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def gpqa_row(i: int, **extra: object) -> dict:
    """A made-up row in GPQA's column layout: the correct answer first."""
    return {
        "Question": f"Which made-up isotope number {i} is stable?",
        "Correct Answer": f"right {i}",
        "Incorrect Answer 1": f"wrong {i}a",
        "Incorrect Answer 2": f"wrong {i}b",
        "Incorrect Answer 3": f"wrong {i}c",
        "Record ID": f"rec{i:04d}",
        "High-level domain": ["Physics", "Chemistry", "Biology"][i % 3],
        "Subdomain": f"sub{i % 2}",
        "Explanation": "made up",
        **extra,
    }


def grade(problem, text: str) -> bool:
    return get_verifier("gpqa")(text, problem.answer).correct


LAYOUTS = [
    # a list and the letter (MMLU-Pro, most converted sets)
    ({"question": "Q", "choices": GASES, "answer": "B"}, {}),
    ({"question": "Q", "options": GASES, "answer": "(b)"}, {}),
    # MMLU: an integer index from 0
    ({"question": "Q", "choices": GASES, "answer": 1}, {}),
    # the right option's text
    ({"question": "Q", "choices": GASES, "answer": "neon"}, {}),
    # ARC: {text, label} and answerKey, which is no usual answer name
    (
        {"question": "Q", "choices": {"text": GASES, "label": ["1", "2", "3", "4"]},
         "answerKey": "2"},
        {"answer": "answerKey"},
    ),
    # options keyed by letter
    ({"question": "Q", "options": dict(zip("ABCD", GASES, strict=True)), "answer": "B"}, {}),
    # any column, mapped
    ({"question": "Q", "alternatives": GASES, "key": "Neon"},
     {"choices": "alternatives", "answer": "key"}),
]  # fmt: skip


@pytest.mark.parametrize(("row", "mapping"), LAYOUTS, ids=lambda x: "+".join(x) if x else "-")
def test_option_layouts_show_lettered_options_and_grade_letter_or_text(
    tmp_path: Path, row: dict, mapping: dict
) -> None:
    (p,) = load_problems(write(tmp_path, [row]), fields=Fields(**mapping))
    assert p.prompt == "Q\n\n(A) Helium\n(B) Neon\n(C) Argon\n(D) Radon"
    assert json.loads(p.answer) == {"answer": "B", "choices": GASES}
    assert p.task == "multiple_choice" and p.meta == {}
    for right in ("Answer: B", "The answer is (B)", "\\boxed{Neon}", "Answer: neon"):
        assert grade(p, right), right
    for wrong in ("Answer: C", "\\boxed{Argon}", "Answer: E"):
        assert not grade(p, wrong), wrong


def test_numbers_chats_own_task_and_round_trip(tmp_path: Path) -> None:
    rows = [
        # a CSV column of numbers reads 3 as 3.0, shown as 3; the answer "3" is an option's text
        {"question": "Two plus one?", "choices": [2.0, 3.0, 4], "answer": "3", "subject": "arith"},
        {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Pick"}],
         "options": ["Red", "Blue"], "answer": "A", "task": "gpqa", "id": 9},
    ]  # fmt: skip
    a, b = load_problems(write(tmp_path, rows))
    assert a.prompt == "Two plus one?\n\n(A) 2\n(B) 3\n(C) 4"
    assert json.loads(a.answer)["answer"] == "B" and a.meta == {"subject": "arith"}
    # the chat's last user turn shows the options, as the text does
    assert b.prompt_input == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Pick\n\n(A) Red\n(B) Blue"},
    ]
    assert (b.id, b.task) == ("9", "gpqa")  # a row's own task wins
    path = write_problems(tmp_path / "out.jsonl", [a, b])
    assert load_problems(path) == [a, b]  # written problems read back unchanged


def test_options_that_differ_in_case_are_two_options(tmp_path: Path) -> None:
    rows = [{"question": "Q", "choices": ["Co", "CO"], "answer": a} for a in ("B", "CO")]
    for p in load_problems(write(tmp_path, rows)):
        assert json.loads(p.answer)["answer"] == "B"  # by letter, or by the exact text
        assert grade(p, "Answer: B") and not grade(p, "Answer: A")
        # a response's text can't tell them apart (the verifier ignores case): graded wrong
        assert not grade(p, "Answer: CO")


def test_gpqa_columns_are_shuffled_by_the_documented_hash(tmp_path: Path) -> None:
    rows = [gpqa_row(i) for i in range(6)]
    ps = load_problems(write(tmp_path, rows))
    for row, p in zip(rows, ps, strict=True):
        originals = [row[c] for c in ("Correct Answer", "Incorrect Answer 1",
                                      "Incorrect Answer 2", "Incorrect Answer 3")]  # fmt: skip
        # option i is placed by the rank of sha256("<seed>:<Record ID>:<i>")
        ranks = [hashlib.sha256(f"{SHUFFLE_SEED}:{row['Record ID']}:{i}".encode()).digest()
                 for i in range(4)]  # fmt: skip
        shown = [originals[i] for i in sorted(range(4), key=ranks.__getitem__)]
        letter = "ABCD"[shown.index(row["Correct Answer"])]
        assert json.loads(p.answer) == {"answer": letter, "choices": shown}
        assert p.prompt == row["Question"] + "\n\n" + "\n".join(
            f"({x}) {o}" for x, o in zip("ABCD", shown, strict=True)
        )
        assert grade(p, f"Answer: {letter}") and grade(p, f"Answer: {row['Correct Answer']}")
        assert (p.id, p.task) == (row["Record ID"], "multiple_choice")
        # GPQA's domain columns become the breakdown keys; the options are not left in meta
        assert p.meta == {"Explanation": "made up", "domain": row["High-level domain"],
                          "subdomain": row["Subdomain"]}  # fmt: skip


def test_gpqa_letters_are_fixed_per_question(tmp_path: Path) -> None:
    rows = [gpqa_row(i) for i in range(400)]
    first = {p.id: p.answer for p in load_problems(write(tmp_path, rows, "a.jsonl"))}
    # rerun, reversed, a subset: each question keeps its letters (keyed by its Record ID)
    again = {p.id: p.answer for p in load_problems(write(tmp_path, rows[::-1], "b.jsonl"))}
    subset = {p.id: p.answer for p in load_problems(write(tmp_path, rows[7:9], "c.jsonl"))}
    assert again == first and subset.items() <= first.items()
    letters = [json.loads(a)["answer"] for a in first.values()]
    # the right letter is spread over A-D: a count per letter is Binomial(400, 1/4), mean 100,
    # sd sqrt(400 * 1/4 * 3/4) = 8.7; the keys are fixed, so this is one deterministic draw, and
    # [65, 135] (4 sd) holds it unless the shuffle were biased
    assert all(65 <= letters.count(x) <= 135 for x in "ABCD"), {x: letters.count(x) for x in "ABCD"}


def test_gpqa_rows_without_a_record_id_are_keyed_by_id_or_index(tmp_path: Path) -> None:
    bare = {k: v for k, v in gpqa_row(1).items() if k != "Record ID"}
    a, b = load_problems(write(tmp_path, [bare, {**bare, "id": "q7"}]))
    assert (a.id, b.id) == ("mc-1", "q7")  # line 1 of the file; the row's id
    for p, key in ((a, "1"), (b, "q7")):
        correct_at = shuffle_order(key, 4).index(0)
        assert json.loads(p.answer)["answer"] == "ABCD"[correct_at]


@pytest.fixture
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The `datasets` library, its cache (of what its builders read) inside the test's folder."""
    lib = pytest.importorskip("datasets", reason="datasets is a runtime dependency of t1")
    monkeypatch.setattr(lib.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")
    return lib


def test_gpqa_from_parquet_csv_and_the_eval_config(tmp_path: Path, datasets) -> None:
    path = tmp_path / "gpqa.parquet"
    datasets.Dataset.from_list([gpqa_row(i) for i in range(3)]).to_parquet(str(path))
    ps = problems_for(DataConfig(eval=str(path)), "eval")
    assert [p.id for p in ps] == ["rec0000", "rec0001", "rec0002"]
    assert [p.meta["domain"] for p in ps] == ["Physics", "Chemistry", "Biology"]
    from_jsonl = load_problems(write(tmp_path, [gpqa_row(i) for i in range(3)]))
    assert [p.answer for p in ps] == [p.answer for p in from_jsonl]

    # GPQA is published as CSV; a column of numbers reads as numbers, shown as written
    rows = [gpqa_row(i, **{"Correct Answer": 12 + i, "Incorrect Answer 1": 8.5}) for i in range(2)]
    datasets.Dataset.from_list(rows).to_csv(str(tmp_path / "gpqa.csv"), index=False)
    for p in load_problems(tmp_path / "gpqa.csv"):
        assert sorted(json.loads(p.answer)["choices"])[:2] == [str(12 + int(p.id[-1])), "8.5"]


BAD = [
    ({"question": "Q", "choices": ["only"], "answer": "A"},
     "'choices' has 1 option(s); a multiple-choice row needs 2 to 26 (A-Z)"),
    ({"question": "Q", "choices": [str(i) for i in range(27)], "answer": "A"},
     "'choices' has 27 option(s); a multiple-choice row needs 2 to 26 (A-Z)"),
    ({"question": "Q", "choices": "Helium, Neon", "answer": "A"},
     "'choices' must be a list of options, got string"),
    ({"question": "Q", "choices": ["Helium", " "], "answer": "A"}, "'choices' option B is empty"),
    ({"question": "Q", "choices": ["Helium", {"x": 1}], "answer": "A"},
     "'choices' option B must be a string or number, got object"),
    ({"question": "Q", "choices": GASES, "answer": "E"},
     "'answer' 'E' is neither a letter of the 4 options (A-D) nor one of their texts"),
    ({"question": "Q", "choices": GASES, "answer": "Xenon"},
     "'answer' 'Xenon' is neither a letter of the 4 options (A-D) nor one of their texts"),
    ({"question": "Q", "choices": GASES, "answer": 4},
     "'answer' 4 is not an option index (0 to 3; the options are counted from 0)"),
    ({"question": "Q", "choices": GASES, "answer": True},
     "'answer' must be a letter, an option's text or an index"),
    ({"question": "Q", "choices": GASES}, "'choices' lists options but the row has no answer"),
    ({"question": "Q", "choices": ["Neon gas", "Argon", " Neon  gas"], "answer": "B"},
     "'choices' option A and 'choices' option C are the same option ('Neon  gas')"),
    ({**gpqa_row(1), "Incorrect Answer 2": "right 1"},
     "'Correct Answer' and 'Incorrect Answer 2' are the same option ('right 1')"),
    ({k: v for k, v in gpqa_row(1).items() if k != "Incorrect Answer 3"},
     "a GPQA row (it has 'Correct Answer') lacks 'Incorrect Answer 3'"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_rows_name_the_line_and_column(tmp_path: Path, row: dict, message: str) -> None:
    path = write(tmp_path, [{"question": "Q", "choices": GASES, "answer": "A"}, row])
    with pytest.raises(DataError) as e:
        load_problems(path)
    assert str(e.value).startswith(f"{path}:2: ") and message in str(e.value)
    kept = load_problems(path, skip_bad_rows=True)
    assert len(kept) == 1 and kept.skipped == 1


def test_bad_dataset_rows_and_mapped_columns(tmp_path: Path, datasets) -> None:
    path = tmp_path / "mc.parquet"
    rows = [{"q": "Q", "opts": GASES, "key": "B"}, {"q": "Q", "opts": GASES, "key": "F"}]
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    fields = Fields(prompt="q", choices="opts", answer="key")
    with pytest.raises(DataError, match=rf"^{path}\[train\]\[1\]: 'key' 'F' is neither a letter"):
        load_problems(path, fields=fields)
    with pytest.raises(DataError, match=r"\[train\]\[0\]: no column 'alts' \(data.choices_field\)"):
        load_problems(path, fields=Fields(prompt="q", choices="alts", answer="key"))
