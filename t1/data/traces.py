"""SFT traces: the `Trace` record, its JSONL loader and writer.

Row format (DESIGN.md, "Data formats"):

    {"prompt": "...", "response": "...", "answer": "...", "meta": {...}}

`prompt` may be replaced by `messages` (a chat list; its last user turn becomes the text and
the list is kept in meta["messages"]). `response` is required and non-empty; `answer` is
optional (a string or number); other fields are merged into meta. Errors name file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t1.data.jsonl import Loaded, get_prompt, get_text, read_records, type_name, write_rows
from t1.errors import DataError

_RESERVED = {"prompt", "messages", "response", "answer", "meta"}


@dataclass
class Trace:
    """One SFT example: the problem text and the full response the model should learn to write."""

    prompt: str
    response: str
    # the reference answer the response ends with (None when the file has none)
    answer: str | None = None
    # provenance: problem id, task, attempts, failures, style, ...
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_input(self) -> str | list[dict[str, str]]:
        """What t1.models.build_prompt takes: the chat list when the row had one, else the text."""
        return self.meta.get("messages") or self.prompt

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"prompt": self.prompt, "response": self.response}
        row["answer"] = self.answer
        row["meta"] = self.meta
        return row


def parse_trace(row: dict, where: str, lineno: int = 0) -> Trace:
    """A `Trace` from one decoded row; `where` ("file:line") prefixes every error."""
    prompt, messages = get_prompt(row, where, ("prompt",))
    response = get_text(row, "response", where)
    answer = row.get("answer")
    if answer is not None:
        if isinstance(answer, bool) or not isinstance(answer, str | int | float):
            raise DataError(
                f"{where}: 'answer' must be a string or number, got {type_name(answer)}"
            )
        answer = str(answer)
    extra = row.get("meta")
    if extra is not None and not isinstance(extra, dict):
        raise DataError(f"{where}: 'meta' must be an object, got {type_name(extra)}")
    meta = {k: v for k, v in row.items() if k not in _RESERVED}
    meta.update(extra or {})
    if messages is not None:
        meta["messages"] = messages
    return Trace(prompt=prompt, response=response, answer=answer, meta=meta)


def load_traces(
    path: str | Path, skip_bad_rows: bool = False, limit: int | None = None
) -> Loaded[Trace]:
    """Traces of a JSONL file; a list whose `.skipped` counts rows dropped by skip_bad_rows."""
    return read_records(path, parse_trace, "trace", skip_bad_rows=skip_bad_rows, limit=limit)


def write_traces(path: str | Path, traces: list[Trace]) -> Path:
    """Write traces as JSONL that `load_traces` reads back unchanged."""
    return write_rows(path, [t.to_row() for t in traces])
