"""Problems: the `Problem` record, its JSONL loader and writer.

Row format (DESIGN.md, "Data formats"), one JSON object a line:

    text      `prompt` | `problem` | `question` (first present wins), or `messages`, a chat list
              whose last user turn is the text (the list is kept in meta["messages"])
    answer    `answer` (string or number); a GSM8K-style "... #### 18" is reduced to "18";
              without `answer`, a `solution` is reduced to its last \\boxed{} (or "#### N" tail)
    optional  `id` (string or number; default "<file stem>-<line>"), `task` (string)
    meta      every other field (subject, level, solution, ...), merged with a `meta` object;
              a GSM8K `answer` that holds worked reasoning before its "#### N" tail is kept
              whole as meta["solution"] (trace synthesis can end a trace with it)

Bad rows raise `DataError` naming file and line (see t1.data.jsonl for the discipline).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t1.data.jsonl import Loaded, get_prompt, get_text, read_records, type_name, write_rows
from t1.errors import DataError

PROMPT_KEYS = ("prompt", "problem", "question")
_RESERVED = {*PROMPT_KEYS, "messages", "answer", "id", "task", "meta"}
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


def _answer(row: dict, where: str) -> str:
    """The reference answer from `answer`, or reduced from `solution`."""
    value = row.get("answer")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise DataError(f"{where}: 'answer' must be a string or number, got {type_name(value)}")
        if not isinstance(value, str):
            return _number_text(value, where)
        if not value.strip():
            raise DataError(f"{where}: 'answer' is empty")
        reduced = reduce_gsm8k(value)
        if "####" in value and not reduced:
            raise DataError(f"{where}: 'answer' has a '####' marker with nothing after it")
        return reduced or value.strip()
    solution = get_text(row, "solution", where, required=False)
    if solution is None:
        raise DataError(f"{where}: missing 'answer' (or a 'solution' with \\boxed{{}})")
    reduced = reduce_gsm8k(solution)
    if reduced:
        return reduced
    from t1.rewards import extract_answer

    boxed = extract_answer(solution, style="boxed")
    if not boxed:
        raise DataError(f"{where}: no 'answer', and 'solution' has no \\boxed{{}} answer")
    return boxed


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


def parse_problem(row: dict, where: str, lineno: int, stem: str = "row") -> Problem:
    """A `Problem` from one decoded row; `where` ("file:line") prefixes every error."""
    prompt, messages = get_prompt(row, where, PROMPT_KEYS)
    answer = _answer(row, where)
    pid = _optional_str(row, "id", where, numbers_ok=True) or f"{stem}-{lineno}"
    task = _optional_str(row, "task", where, numbers_ok=False)
    extra = row.get("meta")
    if extra is not None and not isinstance(extra, dict):
        raise DataError(f"{where}: 'meta' must be an object, got {type_name(extra)}")
    meta = {k: v for k, v in row.items() if k not in _RESERVED}
    meta.update(extra or {})
    if messages is not None:
        meta["messages"] = messages
    worked = worked_solution(row.get("answer"))
    if worked is not None:
        meta.setdefault("solution", worked)
    return Problem(id=pid, prompt=prompt, answer=answer, task=task, meta=meta)


def load_problems(
    path: str | Path, skip_bad_rows: bool = False, limit: int | None = None
) -> Loaded[Problem]:
    """Problems of a JSONL file; a list whose `.skipped` counts rows dropped by skip_bad_rows."""
    stem = Path(path).stem

    def parse(row: dict, where: str, lineno: int) -> Problem:
        return parse_problem(row, where, lineno, stem)

    return read_records(path, parse, "problem", skip_bad_rows=skip_bad_rows, limit=limit)


def write_problems(path: str | Path, problems: list[Problem]) -> Path:
    """Write problems as JSONL that `load_problems` reads back unchanged."""
    return write_rows(path, [p.to_row() for p in problems])
