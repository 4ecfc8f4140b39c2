"""Problem loading: accepted formats, and every bad-data case named by file and line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from t1.data import Problem, load_problems, write_problems
from t1.data.problems import reduce_gsm8k
from t1.errors import ConfigError, DataError, T1Error


def write(tmp_path: Path, lines: list[str | dict], name: str = "p.jsonl") -> Path:
    path = tmp_path / name
    text = "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines)
    path.write_text(text, encoding="utf-8")
    return path


GOOD = {"prompt": "1+1?", "answer": "2"}


def test_field_aliases_ids_and_meta(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {"problem": "P1", "answer": "3", "subject": "Algebra", "level": 2},
            {"question": "Q2", "answer": "Ann has 2.\n#### 1,024", "id": 7, "task": "gsm8k"},
            {"prompt": "P3", "solution": "so \\boxed{\\frac{1}{2}}."},
            {
                "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U4"}],
                "answer": 27.0,
            },
        ],
    )
    ps = load_problems(path)
    assert [p.prompt for p in ps] == ["P1", "Q2", "P3", "U4"]
    # "#### 1,024" -> "1024"; a \boxed solution -> its content; the float 27.0 -> "27"
    assert [p.answer for p in ps] == ["3", "1024", "\\frac{1}{2}", "27"]
    assert [p.id for p in ps] == ["p-1", "7", "p-3", "p-4"]
    assert ps[1].task == "gsm8k" and ps[0].task is None
    assert ps[0].meta == {"subject": "Algebra", "level": 2}
    assert ps[2].meta["solution"].startswith("so ")
    assert ps[3].prompt_input == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U4"},
    ]
    assert ps[0].prompt_input == "P1" and ps.skipped == 0


def test_round_trip_and_limit(tmp_path: Path) -> None:
    problems = [
        Problem("a", "x?", "1", "linear", {"k": [1, 2]}),
        Problem(
            "b", "y?", '{"target": 3}', None, {"messages": [{"role": "user", "content": "y?"}]}
        ),
    ]
    path = write_problems(tmp_path / "sub" / "out.jsonl", problems)
    assert load_problems(path) == problems
    assert load_problems(path, limit=1) == problems[:1]
    with pytest.raises(ConfigError, match="row limit must be >= 1"):
        load_problems(path, limit=0)


def test_blank_lines_crlf_and_bom_are_not_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps(GOOD).encode()
        + b"\r\n\r\n  \n"
        + b'{"prompt": "b", "answer": 1}\n'
    )
    assert [p.answer for p in load_problems(path)] == ["2", "1"]


BAD_ROWS = [
    ('{"prompt": "x", "answer": "1"', "invalid JSON"),
    ('["prompt", "answer"]', "expected a JSON object, got array"),
    ('{"answer": "1"}', "missing the problem text"),
    ('{"prompt": "   ", "answer": "1"}', "'prompt' is empty"),
    ('{"prompt": 5, "answer": "1"}', "'prompt' must be a string, got number"),
    ('{"prompt": "x"}', "missing 'answer'"),
    ('{"prompt": "x", "answer": ""}', "'answer' is empty"),
    ('{"prompt": "x", "answer": [1]}', "'answer' must be a string or number, got array"),
    ('{"prompt": "x", "answer": true}', "'answer' must be a string or number, got boolean"),
    ('{"prompt": "x", "answer": "so ####"}', "'answer' has a '####' marker"),
    ('{"prompt": "x", "solution": "no box here"}', "no 'answer', and 'solution' has no"),
    ('{"prompt": "x", "answer": "1", "id": true}', "'id' must be"),
    ('{"prompt": "x", "answer": "1", "meta": 3}', "'meta' must be an object"),
    ('{"messages": [], "answer": "1"}', "'messages' must be a non-empty array"),
    ('{"messages": [{"role": "user"}], "answer": "1"}', "messages[0] must be an object"),
    ('{"messages": [{"role": "system", "content": "s"}], "answer": "1"}', "no non-empty user turn"),
]


@pytest.mark.parametrize(("row", "message"), BAD_ROWS)
def test_bad_row_is_named_by_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, [GOOD, row, GOOD])
    with pytest.raises(DataError) as err:
        load_problems(path)
    assert str(err.value).startswith(f"{path}:2: ") and message in str(err.value)
    assert isinstance(err.value, T1Error) and err.value.exit_code == 2
    # skipping: the bad row is counted, the good rows around it survive
    ok = load_problems(path, skip_bad_rows=True)
    assert len(ok) == 2 and ok.skipped == 1 and ok.errors[0].startswith(f"{path}:2: ")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"prompt": "a", "answer": "1"}\n{"prompt": "caf\xe9", "answer": "1"}\n')
    with pytest.raises(DataError, match=rf"^{path}:2: invalid UTF-8 at byte 16"):
        load_problems(path)
    assert load_problems(path, skip_bad_rows=True).skipped == 1


def test_empty_missing_and_all_bad_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n \n", encoding="utf-8")
    with pytest.raises(DataError, match="empty.jsonl: file is empty"):
        load_problems(empty, skip_bad_rows=True)
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        load_problems(tmp_path / "nope.jsonl")
    bad = write(tmp_path, ["{", '{"prompt": 1}'], "bad.jsonl")
    with pytest.raises(DataError, match=r"bad.jsonl: no valid problem rows \(2 bad rows skipped"):
        load_problems(bad, skip_bad_rows=True)


def test_skipped_rows_are_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, [GOOD, "{", "{", GOOD])
    with caplog.at_level(logging.WARNING, logger="t1.data"):
        ok = load_problems(path, skip_bad_rows=True)
    assert ok.skipped == 2 and len(ok) == 2
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: skipped 2 bad rows (first: {path}:2: invalid JSON (Expecting property name "
        "enclosed in double quotes at column 2))"
    ]


def test_reduce_gsm8k() -> None:
    assert reduce_gsm8k("a\nb\n#### 72") == "72"
    assert reduce_gsm8k("#### -1,000.5") == "-1000.5"
    assert reduce_gsm8k("no marker") is None


def test_shared_data_files_load(shared_data: Path) -> None:
    math500 = load_problems(shared_data / "math500.jsonl")
    gsm8k = load_problems(shared_data / "gsm8k_test.jsonl")
    amc = load_problems(shared_data / "amc23.jsonl")
    aime = load_problems(shared_data / "aime24.jsonl")
    assert (len(math500), len(gsm8k), len(amc), len(aime)) == (500, 1319, 40, 30)
    # GSM8K "answer" holds the worked solution: reduced to the number after ####
    assert gsm8k[0].answer == "18"
    assert all(p.answer.lstrip("-").replace(".", "").isdigit() for p in gsm8k)
    assert amc[0].answer == "27" and all("." not in p.answer for p in amc[:5])
    assert math500[0].meta["subject"] and "unique_id" in math500[0].meta
    assert (
        aime[0].prompt
        == json.loads((shared_data / "aime24.jsonl").read_text().splitlines()[0])["problem"]
    )
