"""Reading user-supplied JSONL, line by line, so that every error names `file:line`.

Contract: a file is read as bytes and split on newlines, so a bad line never hides the lines
after it; each non-blank line must be valid UTF-8 holding one JSON object. Blank lines are not
rows. An empty file is an error. What happens to a bad line (stop, or skip and count) is decided
by t1.data.sources.read_records, which reads every other format the same way.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path

from t1.data.fields import type_name
from t1.errors import DataError
from t1.runs import write_jsonl

# one row of a source: (where, index, the row or the error that it is)
Row = tuple[str, int, "dict | DataError"]


def _decode_line(raw: bytes, where: str) -> dict:
    """One JSON object from one line of bytes, or a DataError saying what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: invalid UTF-8 at byte {e.start + 1} of the line") from None
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type_name(row)}")
    return row


def jsonl_rows(path: Path, what: str) -> Iterator[Row]:
    """("file:line", line, row or DataError) for every non-blank line of a JSONL file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if not data.strip():
        raise DataError(f"{path}: file is empty (expected JSONL, one {what} object per line)")
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            yield where, lineno, _decode_line(raw, where)
        except DataError as e:
            yield where, lineno, e


def write_rows(path: str | Path, rows: list[dict]) -> Path:
    """Write JSONL atomically, creating the parent folder."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(p, rows)
    return p
