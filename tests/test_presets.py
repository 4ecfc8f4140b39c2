"""Prompt presets: what each fills in, that explicit keys win, and the prompt they produce."""

from __future__ import annotations

import logging

import pytest

from t1.config import EvalStage, RLStage, ScaleStage, SFTStage, SynthStage, load_config
from t1.errors import ConfigError
from t1.models import build_prompt
from t1.presets import PRESETS, apply_preset

BOXED = "Please reason step by step, and put your final answer within \\boxed{}."


def test_a_preset_sets_instruction_verifier_and_answer_format_together() -> None:
    cfg = load_config(RLStage, None, ["data.preset=gsm8k"])
    assert cfg.data.prompt_template == (
        '{prompt} Let\'s think step by step and output the final answer after "####".'
    )
    assert cfg.reward.task == "gsm8k" and cfg.data.system_prompt is None
    scale = load_config(ScaleStage, None, ["data.preset=gpqa"])
    assert scale.reward.task == "gpqa" and scale.scale.suffix == "\n\nAnswer: "
    assert scale.data.prompt_template.endswith("Think step by step before answering.\n\n{prompt}")
    synth = load_config(SynthStage, None, ["data.preset=gsm8k"])
    assert synth.synth.verifier == "gsm8k"
    qwen = load_config(EvalStage, None, ["data.preset=qwen_math"])
    assert (qwen.data.prompt_template, qwen.data.system_prompt) == ("{prompt}", BOXED)


def test_keys_set_explicitly_win_over_the_preset(tmp_path, caplog) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  preset: gsm8k\n  system_prompt: Be brief.\n")
    with caplog.at_level(logging.WARNING, logger="t1.config"):
        cfg = load_config(RLStage, path, ["reward.task=math"])
    assert [r.getMessage() for r in caplog.records] == [
        "data.preset=gsm8k: keeping data.system_prompt='Be brief.' set in the config "
        "(the preset's: None)",
        "data.preset=gsm8k: keeping reward.task='math' set in the config (the preset's: 'gsm8k')",
    ]
    assert cfg.reward.task == "math"  # the command line's
    assert cfg.data.system_prompt == "Be brief."  # the file's
    assert "####" in cfg.data.prompt_template  # the preset's, as nothing else set it
    # the default value written out is still a choice the preset must not undo
    cfg = load_config(RLStage, None, ["data.preset=math", "data.prompt_template={prompt}"])
    assert cfg.data.prompt_template == "{prompt}" and cfg.reward.task == "math"


def test_none_changes_nothing_and_unknown_names_are_errors() -> None:
    cfg = load_config(RLStage, None, ["data.preset=none"])
    cfg.data.preset = None
    assert cfg == load_config(RLStage)
    assert load_config(SFTStage, None, ["data.preset=none"]).data.prompt_template == "{prompt}"
    with pytest.raises(ConfigError, match="unknown preset 'gsm8'.*did you mean 'gsm8k'"):
        load_config(RLStage, None, ["data.preset=gsm8"])


def test_every_preset_places_the_problem_and_names_a_known_verifier() -> None:
    from t1.rewards import get_verifier

    for name, preset in PRESETS.items():
        assert preset.template.count("{prompt}") == 1, name
        if preset.verifier != "gpqa":  # the multiple-choice verifier is registered elsewhere
            get_verifier(preset.verifier)


def test_the_preset_prompt_through_the_chat_template(tiny_tokenizer) -> None:
    cfg = load_config(EvalStage, None, ["data.preset=math"])
    assert build_prompt(tiny_tokenizer, "1+1?", cfg.data) == f"<user>1+1?\n{BOXED}<assistant>"
    cfg.data.chat_template = "off"
    assert build_prompt(tiny_tokenizer, "1+1?", cfg.data) == f"1+1?\n{BOXED}"
    qwen = apply_preset(load_config(EvalStage), set())  # no preset: unchanged
    qwen.data.preset = "qwen_math"
    apply_preset(qwen)
    assert (
        build_prompt(tiny_tokenizer, "1+1?", qwen.data) == f"<system>{BOXED}<user>1+1?<assistant>"
    )
