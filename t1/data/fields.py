"""Which column of a row holds what: the names the field uses, and the user's own mapping.

Without a mapping the first of the usual names that the row has (and that is not null) is used:

    problem text   prompt, problem, question, instruction, input, query
                   (an `instruction` row's non-empty `input` is appended, as Alpaca writes it;
                   a `prompt` that is a chat list, as verl's parquet files hold, is the chat)
    chat list      messages, conversations: [{role, content}] or ShareGPT's [{from, value}]
                   (human -> user, gpt -> assistant)
    answer         answer, final_answer, ground_truth, reward_model.ground_truth (verl)
    SFT response   response, output, completion, solution, answer; else the chat's last
                   assistant turn
    options        choices, options (multiple choice; see t1.data.choices)

`data.prompt_field`, `data.messages_field`, `data.answer_field`, `data.response_field` and
`data.choices_field` name the column instead (a dotted name reads a nested field:
`reward_model.ground_truth`); a named column that a row lacks is an error listing the columns
the row has.

A chat list is cut after its last user turn: what follows is an answer, never part of a prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t1.errors import DataError

PROMPT_NAMES = ("prompt", "problem", "question", "instruction", "input", "query")
MESSAGES_NAMES = ("messages", "conversations")
ANSWER_NAMES = ("answer", "final_answer", "ground_truth", "reward_model.ground_truth")
RESPONSE_NAMES = ("response", "output", "completion", "solution", "answer")
# ShareGPT speakers as chat-template roles
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


@dataclass(frozen=True)
class Fields:
    """The column of each part of a row; None: the first of the usual names present."""

    prompt: str | None = None
    messages: str | None = None
    answer: str | None = None
    response: str | None = None
    choices: str | None = None

    @classmethod
    def from_config(cls, data_cfg: Any) -> Fields:
        return cls(
            prompt=getattr(data_cfg, "prompt_field", None),
            messages=getattr(data_cfg, "messages_field", None),
            answer=getattr(data_cfg, "answer_field", None),
            response=getattr(data_cfg, "response_field", None),
            choices=getattr(data_cfg, "choices_field", None),
        )

    def mapped(self) -> dict[str, str]:
        """{config key: column} of the columns the user named."""
        keys = {"prompt": self.prompt, "messages": self.messages}
        keys |= {"answer": self.answer, "response": self.response, "choices": self.choices}
        return {f"data.{k}_field": v for k, v in keys.items() if v is not None}


def type_name(value: Any) -> str:
    """JSON's name for a Python value, for messages a user can match to their file."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return names.get(type(value), type(value).__name__)


def columns_of(row: dict) -> str:
    return ", ".join(f"'{k}'" for k in row) or "none"


def lookup(row: dict, name: str) -> Any:
    """row[name]; a dotted name that is not itself a column walks nested objects."""
    if name in row or "." not in name:
        return row.get(name)
    value: Any = row
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def first_present(row: dict, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if lookup(row, n) is not None), None)


def require(row: dict, name: str, config_key: str, where: str) -> Any:
    """The mapped column's value, or an error naming the columns the row does have."""
    value = lookup(row, name)
    if value is None:
        raise DataError(
            f"{where}: no column '{name}' ({config_key}); the row's columns: {columns_of(row)}"
        )
    return value


def check_text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: '{key}' must be a string, got {type_name(value)}")
    if not value.strip():
        raise DataError(f"{where}: '{key}' is empty")
    return value


def get_text(row: dict, key: str, where: str, required: bool = True) -> str | None:
    """row[key] as a non-empty string; None when absent and not required."""
    value = row.get(key)
    if value is None:
        if required:
            raise DataError(f"{where}: missing '{key}'")
        return None
    return check_text(value, key, where)


def check_messages(value: Any, key: str, where: str) -> list[dict[str, str]]:
    """A chat list [{role, content}] (or ShareGPT's [{from, value}]) with a user turn."""
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: '{key}' must be a non-empty array of {{role, content}}")
    out = []
    for i, m in enumerate(value):
        sharegpt = isinstance(m, dict) and "role" not in m and "from" in m
        role, content = (m.get("from"), m.get("value")) if sharegpt else _role_content(m)
        if not isinstance(role, str) or not isinstance(content, str):
            raise DataError(f"{where}: {key}[{i}] must be an object with string role, content")
        out.append({"role": _ROLES.get(role, role), "content": content})
    if not any(m["role"] == "user" and m["content"].strip() for m in out):
        raise DataError(f"{where}: '{key}' has no non-empty user turn")
    return out


def _role_content(m: Any) -> tuple[Any, Any]:
    return (m.get("role"), m.get("content")) if isinstance(m, dict) else (None, None)


def split_chat(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict]]:
    """(the chat up to and including its last user turn, the turns after it)."""
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return messages[: last_user + 1], messages[last_user + 1 :]


@dataclass
class PromptPart:
    """The problem text of a row, its chat list (None for a text row), and what came after."""

    text: str
    messages: list[dict[str, str]] | None
    # the chat's turns after its last user turn (an assistant answer, in SFT data)
    tail: list[dict[str, str]]
    # the columns the prompt was read from (left out of meta)
    used: tuple[str, ...]


def get_prompt(row: dict, where: str, fields: Fields = Fields()) -> PromptPart:
    """The problem text: the mapped column, else the first usual name, else the chat list."""
    if fields.prompt is not None:
        return _prompt_from(
            row, fields.prompt, require(row, fields.prompt, "data.prompt_field", where), where
        )
    if fields.messages is not None:
        value = require(row, fields.messages, "data.messages_field", where)
        return _chat_part(check_messages(value, fields.messages, where), (fields.messages,))
    key = first_present(row, PROMPT_NAMES) or first_present(row, MESSAGES_NAMES)
    if key is None:
        names = ", ".join(f"'{k}'" for k in (*PROMPT_NAMES, *MESSAGES_NAMES))
        raise DataError(
            f"{where}: missing the problem text (one of {names}); the row's columns: "
            f"{columns_of(row)} (set data.prompt_field or data.messages_field)"
        )
    return _prompt_from(row, key, lookup(row, key), where)


def _prompt_from(row: dict, key: str, value: Any, where: str) -> PromptPart:
    if isinstance(value, list) or key in MESSAGES_NAMES:
        return _chat_part(check_messages(value, key, where), (key,))
    text = check_text(value, key, where)
    extra = row.get("input") if key == "instruction" else None
    if isinstance(extra, str) and extra.strip():
        return PromptPart(f"{text}\n\n{extra}", None, [], (key, "input"))
    return PromptPart(text, None, [], (key,))


def _chat_part(messages: list[dict[str, str]], used: tuple[str, ...]) -> PromptPart:
    prompt, tail = split_chat(messages)
    last_user = prompt[-1]["content"]
    return PromptPart(last_user, prompt, tail, used)
