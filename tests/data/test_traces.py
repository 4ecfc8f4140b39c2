"""Trace loading: the SFT record format and its bad-data errors (file and line named)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from t1.data import Trace, load_traces, write_traces
from t1.errors import DataError


def write(tmp_path: Path, lines: list[str | dict]) -> Path:
    path = tmp_path / "t.jsonl"
    text = "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines)
    path.write_text(text, encoding="utf-8")
    return path


GOOD = {"prompt": "Make 9 from 3 8 1 5 using +.", "response": "Try 8+1=9.", "answer": "x"}


def test_round_trip_messages_and_extra_fields(tmp_path: Path) -> None:
    traces = [
        Trace("p", "r", "1", {"attempts": 2, "mistakes": ["miss"]}),
        Trace("q", "s", None, {}),
    ]
    path = write_traces(tmp_path / "a" / "t.jsonl", traces)
    assert load_traces(path) == traces
    chat = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    path = write(tmp_path, [{"messages": chat, "response": "R", "answer": 3, "source": "x"}])
    (t,) = load_traces(path)
    assert (t.prompt, t.response, t.answer) == ("U", "R", "3")
    assert t.meta == {"source": "x", "messages": chat} and t.prompt_input == chat


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"prompt": "p"}', "missing 'response'"),
        ('{"prompt": "p", "response": ""}', "'response' is empty"),
        ('{"prompt": "p", "response": 3}', "'response' must be a string, got number"),
        (
            '{"text": "p", "response": "r"}',
            "missing the problem text (one of 'prompt', 'problem', 'question', 'instruction', "
            "'input', 'query', 'messages', 'conversations'); the row's columns: 'text', "
            "'response' (set data.prompt_field or data.messages_field)",
        ),
        ('{"prompt": "p", "response": "r", "answer": {}}', "'answer' must be a string or number"),
        ('{"prompt": "p", "response": "r", "meta": []}', "'meta' must be an object, got array"),
        ("not json", "invalid JSON"),
    ],
)
def test_bad_trace_rows(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, [GOOD, GOOD, row])
    with pytest.raises(DataError) as err:
        load_traces(path)
    assert str(err.value).startswith(f"{path}:3: ") and message in str(err.value)
    ok = load_traces(path, skip_bad_rows=True)
    assert ok.skipped == 1 and len(ok) == 2


def test_invalid_utf8_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'\xff{"prompt": "p", "response": "r"}\n')
    with pytest.raises(DataError, match=rf"^{path}:1: invalid UTF-8 at byte 1"):
        load_traces(path)
    path.write_bytes(b"")
    with pytest.raises(DataError, match="file is empty"):
        load_traces(path)
