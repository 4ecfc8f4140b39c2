"""Reading user-supplied JSONL with one error discipline for every record type.

Contract: a file is read as bytes and split on newlines, so a bad line never hides the lines
after it; each non-blank line must be valid UTF-8 holding one JSON object, which a `parse`
function turns into a record or rejects with `DataError`. Every error names `file:line`.
By default the first bad line stops the load (before any training starts); with
`skip_bad_rows` bad lines are skipped, counted in `Loaded.skipped` and logged once.
Blank lines are not rows. An empty file, or one where no row survives, is always an error.
"""

from __future__ import annotations

import codecs
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from t1.errors import ConfigError, DataError

log = logging.getLogger("t1.data")

T = TypeVar("T")


class Loaded(list, Generic[T]):
    """The records of a file (a plain list) plus what was skipped on the way."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        # rows dropped by skip_bad_rows, and their error messages (file:line: why)
        self.skipped = 0
        self.errors: list[str] = []


def type_name(value: Any) -> str:
    """JSON's name for a Python value, for messages a user can match to their file."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return names.get(type(value), type(value).__name__)


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


def read_records(
    path: str | Path,
    parse: Callable[[dict, str, int], T],
    what: str,
    skip_bad_rows: bool = False,
    limit: int | None = None,
) -> Loaded[T]:
    """Parse every row of a JSONL file with `parse(row, "file:line", line)`.

    `what` names one record ("problem", "trace") in messages. `limit` stops after that many
    good records (the rest of the file is not read).
    """
    p = Path(path)
    if limit is not None and limit < 1:
        raise ConfigError(f"{p}: the row limit must be >= 1 (or null for all), got {limit}")
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    data = p.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if not data.strip():
        raise DataError(f"{p}: file is empty (expected JSONL, one {what} object per line)")
    out: Loaded[T] = Loaded(p)
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if limit is not None and len(out) >= limit:
            break
        if not raw.strip():
            continue
        where = f"{p}:{lineno}"
        try:
            out.append(parse(_decode_line(raw, where), where, lineno))
        except DataError as e:
            if not skip_bad_rows:
                raise
            out.skipped += 1
            out.errors.append(str(e))
    if out.skipped:
        log.warning("%s: skipped %d bad rows (first: %s)", p, out.skipped, out.errors[0])
    if not out:
        first = f"; first error: {out.errors[0]}" if out.errors else ""
        raise DataError(f"{p}: no valid {what} rows ({out.skipped} bad rows skipped{first})")
    return out


def get_text(row: dict, key: str, where: str, required: bool = True) -> str | None:
    """row[key] as a non-empty string; None when absent and not required."""
    value = row.get(key)
    if value is None:
        if required:
            raise DataError(f"{where}: missing '{key}'")
        return None
    if not isinstance(value, str):
        raise DataError(f"{where}: '{key}' must be a string, got {type_name(value)}")
    if not value.strip():
        raise DataError(f"{where}: '{key}' is empty")
    return value


def get_messages(row: dict, where: str) -> list[dict[str, str]]:
    """A chat list [{role, content}, ...] holding at least one user turn."""
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty array of {{role, content}}")
    for i, m in enumerate(messages):
        ok = isinstance(m, dict) and isinstance(m.get("role"), str)
        if not ok or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: messages[{i}] must be an object with string role, content")
    if not any(m["role"] == "user" and m["content"].strip() for m in messages):
        raise DataError(f"{where}: 'messages' has no non-empty user turn")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def get_prompt(row: dict, where: str, keys: tuple[str, ...]) -> tuple[str, list | None]:
    """The problem text from the first of `keys` present, else the last user turn of messages.

    Returns (text, messages-or-None) so callers can keep the chat list for chat templates.
    """
    for key in keys:
        if row.get(key) is not None:
            return get_text(row, key, where), None
    if row.get("messages") is not None:
        messages = get_messages(row, where)
        last_user = [m["content"] for m in messages if m["role"] == "user"][-1]
        return last_user, messages
    names = ", ".join(f"'{k}'" for k in (*keys, "messages"))
    raise DataError(f"{where}: missing the problem text (one of {names})")


def write_rows(path: str | Path, rows: list[dict]) -> Path:
    """Write JSONL atomically, creating the parent folder."""
    from t1.train.rundir import write_jsonl

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(p, rows)
    return p
