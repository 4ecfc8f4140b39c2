"""Multiple-choice rows: the options a prompt shows and the reference the `gpqa` verifier grades.

A row is multiple choice when it lists its options,

    options   `data.choices_field`, else `choices` or `options`: a list of strings (numbers are
              written as text), ARC's {"text": [...], "label": [...]}, or {"A": ..., "B": ...}
    answer    the usual answer column (`answer`, ...; or `data.answer_field`): the right letter
              ("B", "(B)", "b"), an option's label (ARC's "3"), the right option's text, or an
              integer index from 0 (MMLU's `answer`)

or has GPQA's own columns (Idavidrein/gpqa, as openai/simple-evals gpqa_eval.py and
inspect_evals' gpqa read them): `Question`, `Correct Answer`, `Incorrect Answer 1` to `3`,
`High-level domain`, `Subdomain`, `Record ID`.

The problem's text is the question, a blank line, then the options as `format_choices` writes
them, "(A) ...\\n(B) ..." (simple-evals writes "A) ..."; the verifier reads both); its answer is
`choice_reference(letter, options)`, so the verifier grades a letter or an option's text; its
task is `multiple_choice` unless the row names one, so `t1 eval` and `t1 scale` grade it with the
multiple-choice verifier whatever `reward.task` says. `High-level domain` and `Subdomain` become
meta `domain` and `subdomain` (the per-domain tables of `t1 eval`); `Record ID` becomes the id.

GPQA's files put the correct answer first, so its options are shuffled, the same way on every
run: option i (0 = `Correct Answer`, then `Incorrect Answer 1`...) is ranked by
sha256(f"{SHUFFLE_SEED}:{key}:{i}") and shown in that rank order, where key is the row's
`Record ID`, else its `id`, else its index as errors name it (line of a JSONL file, row of a
dataset). simple-evals (gpqa_eval.py) instead draws `random.Random(0).sample(range(4), 4)` for
each row in file order, four times over the file by default, and averages the four passes. Both
put the correct answer under each letter with probability 1/4, but the letters of one question
differ between the two; here a question keeps its letters whatever rows come before it (a
subset, a reordered or filtered file), and all `eval.n` samples see the same order.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from t1.data.fields import (
    ANSWER_NAMES,
    Fields,
    PromptPart,
    first_present,
    lookup,
    require,
    type_name,
)
from t1.errors import DataError
from t1.rewards.multiple_choice import choice_reference, format_choices, parse_choice_reference

CHOICES_NAMES = ("choices", "options")
GPQA_QUESTION = "Question"
GPQA_OPTIONS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
GPQA_ID = "Record ID"
# GPQA's columns -> the meta keys t1 eval tables accuracy by
GPQA_META = {"High-level domain": "domain", "Subdomain": "subdomain"}
# part of every GPQA shuffle key: changing it deals every question a new order
SHUFFLE_SEED = 0
# the verifier of a row with options, unless the row names its own task
TASK = "multiple_choice"


@dataclass
class Choices:
    """A multiple-choice row's options in the order shown, and the right one's letter."""

    options: list[str]
    letter: str
    # the columns read the question from (GPQA's `Question` unless data.prompt_field says)
    fields: Fields
    # the columns read (left out of meta)
    used: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    # GPQA's Record ID, the problem's id where the row has no `id`
    id: str | None = None

    @property
    def reference(self) -> str:
        return choice_reference(self.letter, self.options)


def read_choices(row: dict, where: str, index: int, fields: Fields) -> Choices | None:
    """The row's options and right letter; None for a row that is not multiple choice."""
    if fields.choices is not None:
        value = require(row, fields.choices, "data.choices_field", where)
        found = _listed(row, fields.choices, value, where, fields)
    elif (key := first_present(row, CHOICES_NAMES)) is not None:
        found = _listed(row, key, lookup(row, key), where, fields)
    elif GPQA_OPTIONS[0] in row:
        found = _gpqa(row, where, index, fields)
    else:
        return None
    for column, meta_key in GPQA_META.items():
        if row.get(column) is not None and meta_key not in row:
            found.meta[meta_key] = row[column]
            found.used += (column,)
    return found


def with_options(prompt: PromptPart, options: list[str]) -> PromptPart:
    """The prompt with the lettered options after the question (in its chat's last user turn)."""
    text = f"{prompt.text.rstrip()}\n\n{format_choices(options)}"
    messages = prompt.messages
    if messages is not None:
        messages = [*messages[:-1], {**messages[-1], "content": text}]
    return PromptPart(text, messages, prompt.tail, prompt.used)


def shuffle_order(key: str, n: int) -> list[int]:
    """The options' original places in the order shown (see the module docstring)."""

    def rank(i: int) -> bytes:
        return hashlib.sha256(f"{SHUFFLE_SEED}:{key}:{i}".encode()).digest()

    return sorted(range(n), key=rank)


def _listed(row: dict, key: str, value: Any, where: str, fields: Fields) -> Choices:
    """A row whose options are one column: a list, ARC's {text, label}, or {letter: text}."""
    labels: list[str] | None = None
    if isinstance(value, dict) and isinstance(value.get("text"), list):
        labels = value.get("label")
        value = value["text"]
        if not isinstance(labels, list) or len(labels) != len(value):
            labels = None
    elif isinstance(value, dict):
        labels, value = [str(k) for k in value], list(value.values())
    if not isinstance(value, list):
        raise DataError(f"{where}: '{key}' must be a list of options, got {type_name(value)}")
    options = _options(value, lambda i: f"'{key}' option {_letter(i)}", key, where)
    answer_key = fields.answer or first_present(row, ANSWER_NAMES)
    if answer_key is None:
        raise DataError(
            f"{where}: '{key}' lists options but the row has no answer (one of "
            f"{', '.join(repr(n) for n in ANSWER_NAMES)}); set data.answer_field"
        )
    answer = require(row, answer_key, "data.answer_field", where)
    letter = _answer_letter(answer, options, labels, answer_key, where)
    return Choices(options, letter, fields, (key, answer_key))


def _gpqa(row: dict, where: str, index: int, fields: Fields) -> Choices:
    """GPQA's columns: the correct answer and three wrong ones, shuffled by the row's key."""
    missing = [c for c in (GPQA_QUESTION, *GPQA_OPTIONS) if row.get(c) is None]
    if fields.prompt is not None and GPQA_QUESTION in missing:
        missing.remove(GPQA_QUESTION)
    if missing:
        raise DataError(
            f"{where}: a GPQA row (it has 'Correct Answer') lacks "
            f"{', '.join(repr(c) for c in missing)}"
        )
    options = _options(
        [row[c] for c in GPQA_OPTIONS], lambda i: f"'{GPQA_OPTIONS[i]}'", GPQA_OPTIONS[0], where
    )
    record = row.get(GPQA_ID)
    record = str(record).strip() if record is not None and str(record).strip() else None
    key = record or (str(row["id"]) if row.get("id") is not None else str(index))
    order = shuffle_order(key, len(options))
    shown = [options[i] for i in order]
    used = (*GPQA_OPTIONS, *((GPQA_ID,) if record else ()))
    question = replace(fields, prompt=fields.prompt or GPQA_QUESTION)
    return Choices(shown, _letter(order.index(0)), question, used, id=record)


def _options(values: list[Any], name: Callable[[int], str], key: str, where: str) -> list[str]:
    """The options as stripped text: 2 to 26, none empty, no two the same; `name(i)` names
    option i in messages."""
    if not 2 <= len(values) <= 26:
        raise DataError(
            f"{where}: '{key}' has {len(values)} option(s); a multiple-choice row needs "
            "2 to 26 (A-Z)"
        )
    options = [_option_text(v, name(i), where) for i, v in enumerate(values)]
    seen: dict[str, int] = {}
    for i, option in enumerate(options):
        # spaces aside; case counts (chemistry's "Co" and "CO" are two options)
        same = " ".join(option.split())
        if same in seen:
            raise DataError(
                f"{where}: {name(seen[same])} and {name(i)} are the same option "
                f"({option[:80]!r}); a response naming it could not be graded"
            )
        seen[same] = i
    return options


def _option_text(value: Any, name: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DataError(f"{where}: {name} must be a string or number, got {type_name(value)}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a CSV column of numbers reads 3 as 3.0
    text = str(value).strip()
    if not text:
        raise DataError(f"{where}: {name} is empty")
    return text


def _answer_letter(
    answer: Any, options: list[str], labels: list[str] | None, key: str, where: str
) -> str:
    """The letter of the right option: from an index, a label, a letter or the option's text."""
    n = len(options)
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    if isinstance(answer, int) and not isinstance(answer, bool):
        if not 0 <= answer < n:
            raise DataError(
                f"{where}: '{key}' {answer} is not an option index (0 to {n - 1}; the options "
                "are counted from 0)"
            )
        return _letter(answer)
    if not isinstance(answer, str):
        raise DataError(f"{where}: '{key}' must be a letter, an option's text or an index")
    if labels is not None and answer.strip() in map(str, labels):
        return _letter([str(label) for label in labels].index(answer.strip()))
    try:
        return parse_choice_reference(choice_reference(answer, options))[0]
    except DataError:
        if answer.strip() in options:  # options alike but for case ("Co", "CO"): the exact one
            return _letter(options.index(answer.strip()))
        raise DataError(
            f"{where}: '{key}' {answer[:80]!r} is neither a letter of the {n} options "
            f"(A-{_letter(n - 1)}) nor one of their texts"
        ) from None


def _letter(i: int) -> str:
    return string.ascii_uppercase[i]
