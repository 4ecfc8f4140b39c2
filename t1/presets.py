"""Prompt presets: the instruction, the answer format and the verifier, chosen together.

`data.preset: NAME` fills in the keys below unless the config sets them itself (YAML file or
command line): whatever a user writes wins, the preset only supplies what was left out.

    data.prompt_template   the user turn, "{prompt}" standing for the problem text
    data.system_prompt     the system turn (None: none)
    reward.task            the verifier that grades the answer (t1.rewards)
    synth.verifier         the same verifier, where `t1 synth` grades attempts
    scale.suffix           the answer-forcing text `t1 scale` appends after cut thinking,
                           written in the format the instruction asks for (None: the task's)

Every instruction below is copied from where it is used to evaluate or train on that data:

    math, aime, amc, omni_math
        "{problem}\\nPlease reason step by step, and put your final answer within \\boxed{}."
        Qwen2.5-Math's evaluation, PROMPT_TEMPLATES["qwen-boxed"] (user turn) in
        QwenLM/Qwen2.5-Math evaluation/utils.py; that evaluation reads AIME24 and AMC23 with
        the MATH prompt (its load_prompt maps aime24, amc23 to math). The same sentence is
        DeepSeek-R1's recommended math prompt. Omni-MATH answers are LaTeX expressions like
        MATH's, so they are asked and graded the same way (the T1 paper reports Omni-MATH-500).
    qwen_math
        system "Please reason step by step, and put your final answer within \\boxed{}.",
        user "{problem}": PROMPT_TEMPLATES["qwen25-math-cot"] of the same file, the prompt
        Qwen2.5-Math-Instruct is evaluated with.
    deepscaler
        "{problem} Let's think step by step and output the final answer within \\boxed{}.":
        verl's examples/data_preprocess/math_dataset.py, also used to train DeepScaleR.
    gsm8k
        "{question} Let's think step by step and output the final answer after \\"####\\".":
        verl's examples/data_preprocess/gsm8k.py; "#### N" is GSM8K's own answer format
        (openai/grade-school-math), which the `gsm8k` verifier reads (its last number).
    gpqa
        "Answer the following multiple choice question. The last line of your response
        should be of the following format: 'Answer: $LETTER' ... {Question}": the GPQA
        template of openai/simple-evals (common.py QUERY_TEMPLATE_MULTICHOICE), which the
        DeepSeek-R1 report follows. The problem text is the question and its options, as
        t1.data.choices builds it from an option list or GPQA's own columns (shuffled once per
        question) with the lines "(A) ..." where simple-evals writes "A) ..."; or, for a row
        without options, the question with its options already in the text and the letter as
        the answer. The `gpqa` verifier grades the letter or the option's text; `t1 scale`
        forces "Answer: " then a letter, the line the instruction asks for.

`none` (or null) applies nothing: the prompt is the problem text as written.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from typing import Any

from t1.errors import ConfigError

log = logging.getLogger("t1.config")

_BOXED_COT = "Please reason step by step, and put your final answer within \\boxed{}."
_GPQA = (
    "Answer the following multiple choice question. The last line of your response should be "
    "of the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. "
    "Think step by step before answering.\n\n{prompt}"
)


@dataclass(frozen=True)
class Preset:
    # the user turn; "{prompt}" is the problem text
    template: str
    # the t1.rewards verifier that grades the answer
    verifier: str
    system_prompt: str | None = None
    # answer-forcing suffix of `t1 scale` in this preset's answer format (None: the task's)
    suffix: str | None = None


PRESETS: dict[str, Preset] = {
    "math": Preset("{prompt}\n" + _BOXED_COT, "math"),
    "aime": Preset("{prompt}\n" + _BOXED_COT, "math"),
    "amc": Preset("{prompt}\n" + _BOXED_COT, "math"),
    "omni_math": Preset("{prompt}\n" + _BOXED_COT, "math"),
    "qwen_math": Preset("{prompt}", "math", system_prompt=_BOXED_COT),
    "deepscaler": Preset(
        "{prompt} Let's think step by step and output the final answer within \\boxed{}.", "math"
    ),
    "gsm8k": Preset(
        '{prompt} Let\'s think step by step and output the final answer after "####".',
        "gsm8k",
        suffix="\n\n#### ",
    ),
    "gpqa": Preset(_GPQA, "gpqa", suffix="\n\nAnswer: "),
}

# no preset: the config's own values
NONE = ("none", None)


def get_preset(name: str | None) -> Preset | None:
    """The preset called `name`; None for `none`/null; ConfigError naming the nearest one."""
    if name in NONE:
        return None
    if name not in PRESETS:
        close = difflib.get_close_matches(str(name), list(PRESETS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"config key 'data.preset': unknown preset {name!r}{hint}; "
            f"known: {', '.join(PRESETS)}, none"
        )
    return PRESETS[name]


def preset_settings(preset: Preset) -> dict[str, Any]:
    """The dotted config keys a preset fills in, with their values."""
    return {
        "data.prompt_template": preset.template,
        "data.system_prompt": preset.system_prompt,
        "reward.task": preset.verifier,
        "synth.verifier": preset.verifier,
        "scale.suffix": preset.suffix,
    }


def apply_preset(cfg: Any, explicit: set[str] = frozenset()) -> Any:
    """Fill `cfg` (a stage config) from its `data.preset`, leaving the keys in `explicit` alone.

    Keys the stage does not have (a `t1 eval` config has no `scale`) are skipped; an explicit
    value that differs from the preset's is kept and logged, so a config that grades with
    another verifier than the preset's says so.
    """
    data = getattr(cfg, "data", None)
    preset = get_preset(getattr(data, "preset", None))
    if preset is None:
        return cfg
    for key, value in preset_settings(preset).items():
        section, name = key.split(".")
        target = getattr(cfg, section, None)
        if target is None or not hasattr(target, name):
            continue
        if key not in explicit:
            setattr(target, name, value)
        elif getattr(target, name) != value:
            log.warning(
                "data.preset=%s: keeping %s=%r set in the config (the preset's: %r)",
                data.preset,
                key,
                getattr(target, name),
                value,
            )
    return cfg
