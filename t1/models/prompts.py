"""Turning a problem into the exact text a model is asked to continue.

    user   = data.prompt_template with "{prompt}" replaced by the problem text
    prompt = chat_template([system?, user], add_generation_prompt=True)      (chat models)
           = system + "\\n\\n" + user                                        (no chat template)

The result is text, not ids, so every engine (HF, vLLM) tokenises the same string; the engines
tokenise it without adding special tokens a second time where the text already starts with BOS.

`format_prompts` is the one way a problem becomes a prompt: curation, RL training, evaluation and
inference scaling all call it, so a pass rate measured while curating is measured on the prompt
that training then sees. A problem that came with a chat list (`messages`) is asked as that chat.
`data.preset` (t1.presets) fills in the template and system prompt when the config is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from t1.errors import ConfigError


def format_user_turn(problem_text: str, template: str) -> str:
    """`template` with "{prompt}" replaced; plain replacement, so braces elsewhere (\\boxed{}) stay."""
    if "{prompt}" not in template:
        raise ConfigError(
            f"data.prompt_template must contain '{{prompt}}' where the problem goes, got {template!r}"
        )
    return template.replace("{prompt}", problem_text)


def uses_chat_template(tokenizer: Any, mode: str) -> bool:
    """Whether to wrap prompts in the chat template: "auto" follows the tokenizer."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if mode == "on" and not has_template:
        raise ConfigError("data.chat_template is 'on' but the tokenizer has no chat template")
    return has_template if mode == "auto" else mode == "on"


def build_messages(
    problem: str | list[dict[str, str]], template: str, system_prompt: str | None
) -> list[dict[str, str]]:
    """The chat messages of one problem: a text problem becomes one user turn (plus system)."""
    if isinstance(problem, str):
        messages = [{"role": "user", "content": format_user_turn(problem, template)}]
    else:
        messages = [dict(m) for m in problem]
    if system_prompt is not None and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def build_prompt(tokenizer: Any, problem_text: str | list[dict[str, str]], data_cfg: Any) -> str:
    """The prompt text for one problem under `data_cfg` (a `DataConfig`).

    `problem_text` may also be a chat list (`messages` rows); it is then used as written, with
    the system prompt prepended when it has none.
    """
    messages = build_messages(problem_text, data_cfg.prompt_template, data_cfg.system_prompt)
    if uses_chat_template(tokenizer, data_cfg.chat_template):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    parts = [m["content"] for m in messages]
    return "\n\n".join(parts)


def format_prompts(tokenizer: Any, problems: Sequence[Any], data_cfg: Any) -> list[str]:
    """The prompt of each problem (a `Problem`, `Trace`, or anything with `.prompt`): its chat
    list when the row had one, else its text, through `build_prompt`."""
    return [
        build_prompt(tokenizer, getattr(p, "prompt_input", None) or p.prompt, data_cfg)
        for p in problems
    ]
