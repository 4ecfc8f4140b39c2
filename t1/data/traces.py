"""SFT traces: the `Trace` record, its loader and JSONL writer.

Row format (DESIGN.md, "Data formats"), from any source t1.data.sources reads:

    {"prompt": "...", "response": "...", "answer": "...", "meta": {...}}

The prompt may be under another usual name (`problem`, `question`, `instruction`, ... see
t1.data.fields) or `data.prompt_field`, or be a chat list (`messages`, `conversations`; its last
user turn becomes the text and the chat, cut there, is kept in meta["messages"]). The response is
`response` (or `output`, `completion`, `solution`, `answer`, or `data.response_field`), else the
chat's assistant turn after its last user turn; required and non-empty. `answer` is optional (a
string or number) unless it was the response; other fields are merged into meta. Errors name
file and line, or dataset, split and row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t1.data.fields import (
    MESSAGES_NAMES,
    RESPONSE_NAMES,
    Fields,
    PromptPart,
    check_text,
    columns_of,
    first_present,
    get_prompt,
    lookup,
    require,
    type_name,
)
from t1.data.jsonl import write_rows
from t1.data.sources import Loaded, Source, read_records, train_source
from t1.errors import DataError

_RESERVED = {"meta", *MESSAGES_NAMES}


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


def _response(row: dict, prompt: PromptPart, where: str, fields: Fields) -> tuple[str, str | None]:
    """(the response, the column it came from; None when it is the chat's assistant turn)."""
    if fields.response is not None:
        key = fields.response
        return check_text(require(row, key, "data.response_field", where), key, where), key
    key = first_present(row, RESPONSE_NAMES)
    if key is not None:
        return check_text(lookup(row, key), key, where), key
    if len(prompt.tail) == 1 and prompt.tail[0]["role"] == "assistant":
        return check_text(prompt.tail[0]["content"], f"{prompt.used[0]}[-1]", where), None
    raise DataError(
        f"{where}: missing 'response' (or 'output', 'completion', 'solution', 'answer', or a "
        f"chat ending in one assistant turn); the row's columns: {columns_of(row)} "
        "(set data.response_field)"
    )


def parse_trace(row: dict, where: str, lineno: int = 0, fields: Fields | None = None) -> Trace:
    """A `Trace` from one decoded row; `where` ("file:line") prefixes every error."""
    fields = fields or Fields()
    prompt = get_prompt(row, where, fields)
    response, response_key = _response(row, prompt, where, fields)
    answer = row.get("answer") if response_key != "answer" else None
    if answer is not None:
        if isinstance(answer, bool) or not isinstance(answer, str | int | float):
            raise DataError(
                f"{where}: 'answer' must be a string or number, got {type_name(answer)}"
            )
        answer = str(answer)
    extra = row.get("meta")
    if extra is not None and not isinstance(extra, dict):
        raise DataError(f"{where}: 'meta' must be an object, got {type_name(extra)}")
    used = {*_RESERVED, *prompt.used, response_key, "answer"}
    meta = {k: v for k, v in row.items() if k not in used}
    meta.update(extra or {})
    if prompt.messages is not None:
        meta["messages"] = prompt.messages
    return Trace(prompt=prompt.text, response=response, answer=answer, meta=meta)


def load_traces(
    source: str | Path | Source,
    skip_bad_rows: bool = False,
    limit: int | None = None,
    fields: Fields | None = None,
) -> Loaded[Trace]:
    """Traces of a file, folder or Hub dataset; `.skipped` counts rows skip_bad_rows dropped."""

    def parse(row: dict, where: str, lineno: int) -> Trace:
        return parse_trace(row, where, lineno, fields)

    return read_records(source, parse, "trace", skip_bad_rows=skip_bad_rows, limit=limit)


def traces_for(data_cfg: Any) -> Loaded[Trace]:
    """The traces of `data.train`, with the config's split and columns."""
    d = data_cfg
    return load_traces(train_source(d), d.skip_bad_rows, d.max_train, Fields.from_config(d))


def write_traces(path: str | Path, traces: list[Trace]) -> Path:
    """Write traces as JSONL that `load_traces` reads back unchanged."""
    return write_rows(path, [t.to_row() for t in traces])
