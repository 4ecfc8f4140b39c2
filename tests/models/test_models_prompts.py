"""build_prompt: template, system prompt and chat template, as text."""

from __future__ import annotations

import copy

import pytest

from t1.config import DataConfig
from t1.errors import ConfigError
from t1.models import build_prompt


def test_chat_template_with_system_prompt(tiny_tokenizer):
    cfg = DataConfig(prompt_template="Q: {prompt}", system_prompt="Be brief.")
    text = build_prompt(tiny_tokenizer, "1+1?", cfg)
    assert text == "<system>Be brief.<user>Q: 1+1?<assistant>"


def test_auto_without_chat_template_is_plain_text(tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = None
    cfg = DataConfig(prompt_template="Q: {prompt}\nA:", system_prompt="Be brief.")
    assert build_prompt(tok, "1+1?", cfg) == "Be brief.\n\nQ: 1+1?\nA:"
    with pytest.raises(ConfigError, match="chat_template"):
        build_prompt(tok, "1+1?", DataConfig(chat_template="on"))


def test_off_ignores_the_tokenizer_template(tiny_tokenizer):
    assert build_prompt(tiny_tokenizer, "7*6", DataConfig(chat_template="off")) == "7*6"


def test_braces_in_template_and_problem_survive(tiny_tokenizer):
    cfg = DataConfig(prompt_template="{prompt} Put the answer in \\boxed{}.", chat_template="off")
    assert build_prompt(tiny_tokenizer, "f(x)={x}", cfg) == "f(x)={x} Put the answer in \\boxed{}."


def test_template_without_placeholder_is_a_config_error(tiny_tokenizer):
    with pytest.raises(ConfigError, match="prompt_template"):
        build_prompt(tiny_tokenizer, "1+1", DataConfig(prompt_template="Solve:"))


def test_messages_are_used_as_written(tiny_tokenizer):
    messages = [{"role": "user", "content": "hi"}]
    cfg = DataConfig(prompt_template="IGNORED {prompt}", system_prompt="S")
    assert build_prompt(tiny_tokenizer, messages, cfg) == "<system>S<user>hi<assistant>"
    assert messages == [{"role": "user", "content": "hi"}]  # the caller's list is not modified
