"""Problems: the `Problem` record, its JSONL loader and writer.

Row format (DESIGN.md, "Data formats"), one row a problem, from any source t1.data.sources
reads (JSONL, JSON, parquet, arrow, a save_to_disk folder, a Hub dataset):

    text      the first usual name present (`prompt`, `problem`, `question`, ...; see
              t1.data.fields) or `data.prompt_field`; or a chat list (`messages`), cut after its
              last user turn, whose last user turn is the text (the chat is kept in
              meta["messages"] and is what the model is asked)
    answer    `answer` (or another usual name, or `data.answer_field`; string or number); a
              GSM8K-style "... #### 18" is reduced to "18"; without one, a `solution` is reduced
              to its last \\boxed{} (or "#### N" tail)
    options   multiple choice: `choices` / `options` (or `data.choices_field`), or GPQA's own
              columns; the options are shown after the text, the answer is the reference of the
              multiple-choice verifier, the task `multiple_choice` (t1.data.choices)
    optional  `id` (string or number; default "<file stem>-<line or index>"), `task` (string)
    meta      every other field (subject, level, solution, ...), merged with a `meta` object;
              a GSM8K `answer` that holds worked reasoning before its "#### N" tail is kept
              whole as meta["solution"] (trace synthesis can end a trace with it)

Bad rows raise `DataError` naming file and line, or dataset, split and row (t1.data.sources).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t1.data.choices import TASK as CHOICE_TASK
from t1.data.choices import read_choices, with_options
from t1.data.fields import (
    ANSWER_NAMES,
    MESSAGES_NAMES,
    Fields,
    columns_of,
    first_present,
    get_prompt,
    get_text,
    lookup,
    require,
    type_name,
)
from t1.data.jsonl import write_rows
from t1.data.sources import Loaded, Source, eval_source, read_records, train_source
from t1.errors import DataError
from t1.rewards import extract_answer

# a chat list is kept (cut) in meta["messages"] only when it is the prompt
_RESERVED = {"id", "task", "meta", *MESSAGES_NAMES}
_GSM8K_TAIL = re.compile(r"####\s*(.+?)\s*$", re.S)
_NUMBER_WITH_COMMAS = re.compile(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?")


@dataclass
class Problem:
    """One problem: the text a model is asked, and the reference its answer is graded against."""

    id: str
    prompt: str
    # reference answer in the verifier's format (math: a LaTeX answer; countdown: a JSON spec)
    answer: str
    # verifier task name when the file says so (e.g. "countdown"); None: the stage's reward.task
    task: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_input(self) -> str | list[dict[str, str]]:
        """What t1.models.build_prompt takes: the chat list when the row had one, else the text."""
        return self.meta.get("messages") or self.prompt

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id, "prompt": self.prompt, "answer": self.answer}
        if self.task is not None:
            row["task"] = self.task
        if self.meta:
            row["meta"] = self.meta
        return row


def reduce_gsm8k(text: str) -> str | None:
    """The number after the last "####" (GSM8K solutions), thousands separators removed."""
    if "####" not in text:
        return None
    m = _GSM8K_TAIL.search(text[text.rindex("####") :])
    if not m:
        return None
    tail = m.group(1).strip()
    return tail.replace(",", "") if _NUMBER_WITH_COMMAS.fullmatch(tail) else tail


def worked_solution(answer: Any) -> str | None:
    """A GSM8K `answer` with reasoning before its "#### N" tail, whole; else None."""
    if not isinstance(answer, str) or "####" not in answer:
        return None
    return answer.strip() if answer[: answer.rindex("####")].strip() else None


def _number_text(value: int | float, where: str) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DataError(f"{where}: 'answer' is not a finite number ({value})")
        if value.is_integer():
            return str(int(value))  # AMC files store 27 as 27.0
    return str(value)


def _answer(row: dict, where: str, fields: Fields) -> tuple[str, str | None]:
    """(the reference answer, the column it came from) from `answer`, or reduced from `solution`."""
    if fields.answer is not None:
        key: str | None = fields.answer
        value = require(row, key, "data.answer_field", where)
    else:
        key = first_present(row, ANSWER_NAMES)
        value = lookup(row, key) if key else None
    if value is not None:
        return _answer_text(value, key or "answer", where), key
    solution = get_text(row, "solution", where, required=False)
    if solution is None:
        raise DataError(
            f"{where}: missing 'answer' (or a 'solution' with \\boxed{{}}); the row's columns: "
            f"{columns_of(row)} (set data.answer_field)"
        )
    reduced = reduce_gsm8k(solution)
    if reduced:
        return reduced, None
    boxed = extract_answer(solution, style="boxed")
    if not boxed:
        raise DataError(f"{where}: no 'answer', and 'solution' has no \\boxed{{}} answer")
    return boxed, None


def _answer_text(value: object, key: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DataError(f"{where}: '{key}' must be a string or number, got {type_name(value)}")
    if not isinstance(value, str):
        return _number_text(value, where)
    if not value.strip():
        raise DataError(f"{where}: '{key}' is empty")
    reduced = reduce_gsm8k(value)
    if "####" in value and not reduced:
        raise DataError(f"{where}: '{key}' has a '####' marker with nothing after it")
    return reduced or value.strip()


def _optional_str(row: dict, key: str, where: str, numbers_ok: bool) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if numbers_ok and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        kind = "a non-empty string" + (" or an integer" if numbers_ok else "")
        raise DataError(f"{where}: '{key}' must be {kind}, got {value!r}")
    return value


def parse_problem(
    row: dict, where: str, lineno: int, stem: str = "row", fields: Fields | None = None
) -> Problem:
    """A `Problem` from one decoded row; `where` ("file:line") prefixes every error."""
    fields = fields or Fields()
    choices = read_choices(row, where, lineno, fields)
    if choices is None:
        prompt = get_prompt(row, where, fields)
        answer, answer_key = _answer(row, where, fields)
        used = {*_RESERVED, *prompt.used, answer_key}
    else:
        prompt = with_options(get_prompt(row, where, choices.fields), choices.options)
        answer = choices.reference
        used = {*_RESERVED, *prompt.used, *choices.used}
    pid = _optional_str(row, "id", where, numbers_ok=True)
    pid = pid or (choices.id if choices else None) or f"{stem}-{lineno}"
    task = _optional_str(row, "task", where, numbers_ok=False)
    task = task or (CHOICE_TASK if choices else None)
    extra = row.get("meta")
    if extra is not None and not isinstance(extra, dict):
        raise DataError(f"{where}: 'meta' must be an object, got {type_name(extra)}")
    meta = {k: v for k, v in row.items() if k not in used}
    meta.update(choices.meta if choices else {})
    meta.update(extra or {})
    if prompt.messages is not None:
        meta["messages"] = prompt.messages
    worked = worked_solution(row.get("answer"))
    if worked is not None:
        meta.setdefault("solution", worked)
    return Problem(id=pid, prompt=prompt.text, answer=answer, task=task, meta=meta)


def load_problems(
    source: str | Path | Source,
    skip_bad_rows: bool = False,
    limit: int | None = None,
    fields: Fields | None = None,
) -> Loaded[Problem]:
    """Problems of a file, folder or Hub dataset; `.skipped` counts rows skip_bad_rows dropped."""
    path = source.path if isinstance(source, Source) else str(source)
    stem = Path(path).stem

    def parse(row: dict, where: str, lineno: int) -> Problem:
        return parse_problem(row, where, lineno, stem, fields)

    return read_records(source, parse, "problem", skip_bad_rows=skip_bad_rows, limit=limit)


def problems_for(data_cfg: Any, which: str = "train") -> Loaded[Problem]:
    """The problems of `data.train` or `data.eval`, with the config's split, columns and limit."""
    d = data_cfg
    source = train_source(d) if which == "train" else eval_source(d)
    limit = d.max_train if which == "train" else d.max_eval
    return load_problems(source, d.skip_bad_rows, limit, Fields.from_config(d))


def write_problems(path: str | Path, problems: list[Problem]) -> Path:
    """Write problems as JSONL that `load_problems` reads back unchanged."""
    return write_rows(path, [p.to_row() for p in problems])
