"""Inference scaling by truncation: exact cuts, own answers, forced answers graded, the step."""

from __future__ import annotations

import pytest
from eval_fakes import FakeProblem, ReadingCompleter

from t1.config import DataConfig
from t1.eval.complete import GreedyCompleter
from t1.eval.scaling import (
    curves,
    default_suffix,
    finished_within,
    forced_input,
    grade_budgets,
    model_label,
    needed_budgets,
    scaling_curve,
)
from t1.rewards import get_verifier
from t1.rollout.base import Rollout, SamplingParams

SUFFIX = default_suffix("math")
PLAIN = DataConfig(chat_template="off")


def _rollout(tok, response: str, finish: str = "length", index: int = 0) -> Rollout:
    ids = tok.encode(response, add_special_tokens=False)
    prompt_ids = tok.encode("Q?", add_special_tokens=False)
    return Rollout(index, prompt_ids, ids, [0.0] * len(ids), finish, response)


def test_default_suffix_is_a_small_per_task_table():
    assert default_suffix("math").endswith("\\boxed{")
    assert default_suffix("no-such-task") == default_suffix("math")


def test_forced_input_keeps_exactly_b_response_tokens(tiny_tokenizer):
    ro = _rollout(tiny_tokenizer, "abcdefghij" * 3)  # 30 response tokens
    suffix_ids = tiny_tokenizer.encode(SUFFIX, add_special_tokens=False)
    for b in (1, 7, 29):
        ids = forced_input(ro, b, suffix_ids)
        # prompt (2 tokens: "Q", "?") + b response tokens + suffix
        assert len(ids) == 2 + b + len(suffix_ids)
        assert ids[2 : 2 + b] == ro.response_ids[:b]
        assert ids[2 + b :] == suffix_ids


def test_finished_within_needs_a_natural_stop(tiny_tokenizer):
    stopped = _rollout(tiny_tokenizer, "x" * 12, finish="stop")
    cut = _rollout(tiny_tokenizer, "x" * 12, finish="length")
    assert finished_within(stopped, 12) and not finished_within(stopped, 11)
    assert not finished_within(cut, 12)  # cut by the limit: its end is not an answer


def test_grade_budgets_cuts_at_b_and_short_responses_keep_their_answer(tiny_tokenizer):
    tok = tiny_tokenizer
    long = _rollout(tok, "." * 10 + "x=42" + "." * 26)  # 40 tokens, cut by the limit
    short = _rollout(tok, "so \\boxed{7}", finish="stop", index=1)  # 12 tokens, stopped
    completer = ReadingCompleter(tok, SUFFIX)
    budgets = [8, 12, 13, 14, 40]
    grades = grade_budgets(
        [long, short], ["42", "7"], budgets, completer, SUFFIX, 4, get_verifier("math")
    )
    # long is forced at all 5 budgets; short only at b=8 (< its 12 tokens): 6 completions
    n_suffix = len(tok.encode(SUFFIX, add_special_tokens=False))
    kept = sorted(len(ids) - 2 - n_suffix for ids in completer.inputs)
    assert kept == [8, 8, 12, 13, 14, 40]
    # long: b=8 "........" and b=12 "..........x=" hold no digit -> "0}" wrong; b=13 reads
    # "x=4" -> "4}" wrong; b >= 14 reads "42" -> "\boxed{42}" right
    assert [grades[0][b][1] for b in budgets] == [False, False, False, True, True]
    assert grades[0][14][0] == "42"
    # short: forced at 8 ("so \boxe" has no digit -> wrong), its own "\boxed{7}" from 12 on
    assert [grades[1][b][1] for b in budgets] == [False, True, True, True, True]
    assert grades[1][40][0] == "7"


def test_forced_answer_is_graded_against_the_reference(tiny_tokenizer):
    tok = tiny_tokenizer
    ro = _rollout(tok, "x=41 then x=42 ....")
    verifier = get_verifier("math")
    # reads "41" at b=4 and "42" at b=14: only the second matches the reference
    grades = grade_budgets(
        [ro], ["42"], [4, 14], ReadingCompleter(tok, SUFFIX), SUFFIX, 4, verifier
    )
    assert grades[0][4] == ("41", False)
    assert grades[0][14] == ("42", True)


def test_summariser_reads_the_kept_text_in_its_own_prompt_format(tiny_tokenizer):
    tok = tiny_tokenizer
    ro = _rollout(tok, "x=42 and more")
    completer = ReadingCompleter(tok, SUFFIX)
    grades = grade_budgets(
        [ro], ["42"], [4], completer, SUFFIX, 4, get_verifier("math"),
        policy_tokenizer=tok, completer_prompts=["Summarise: Q?"],
    )  # fmt: skip
    # the summariser sees its own prompt, the first 4 response tokens as text, the suffix
    assert tok.decode(completer.inputs[0]) == "Summarise: Q?" + "x=42" + SUFFIX
    assert grades[0][4] == ("42", True)


def test_needed_budgets_adds_parallel_cuts():
    # budgets 8, 16; k=2 adds 4, 8; k=4 adds 2, 4
    assert needed_budgets([8, 16], [2, 4], n=4) == [2, 4, 8, 16]
    # with 2 samples per problem, k=4 is impossible and adds nothing
    assert needed_budgets([8, 16], [2, 4], n=2) == [4, 8, 16]


def _fixed_position(i: int, j: int) -> str:
    """Problem i, sample j: 10 dots, then "x=<answer>" at tokens 10-13, then filler."""
    return "." * 10 + f"x={40 + i}" + "." * 40


def test_answer_at_fixed_position_shows_a_step(tiny_tokenizer, scripted_engine):
    tok = tiny_tokenizer
    problems = [FakeProblem(str(i), "What is x?", str(40 + i)) for i in range(3)]
    engine = scripted_engine(_fixed_position)
    result = scaling_curve(
        engine,
        ReadingCompleter(tok, SUFFIX),
        tok,
        problems,
        task="math",
        budgets=[4, 8, 13, 14, 32],
        sampling=SamplingParams(temperature=1.0, max_new_tokens=7),
        data_cfg=PLAIN,
        bootstrap=200,
        progress=False,
    )
    # one generation at the largest budget, whatever max_new_tokens the caller passed
    assert engine.calls == [(3, 1, 32)]
    acc = [p["accuracy"] for p in result["sequential"]]
    # the answer's last digit is token 13 (0-based), so it is whole from b = 14 on
    assert acc == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert [p["budget"] for p in result["sequential"]] == [4, 8, 13, 14, 32]
    assert all(p["forced"] == 1.0 for p in result["sequential"])  # every response is cut
    assert result["len_mean"] == 32


def _early_and_late(i: int, j: int) -> str:
    """Sample 0 answers at tokens 10-13, sample 1 at tokens 30-33 (both longer than 40)."""
    at = 10 if j == 0 else 30
    return "." * at + "x=42" + "." * (50 - at)


def test_parallel_majority_at_equal_tokens(tiny_tokenizer, scripted_engine):
    tok = tiny_tokenizer
    result = scaling_curve(
        scripted_engine(_early_and_late),
        ReadingCompleter(tok, SUFFIX),
        tok,
        [FakeProblem("a", "What is x?", "42")],
        task="math",
        budgets=[14, 28, 40],
        sampling=SamplingParams(),
        data_cfg=PLAIN,
        n=2,
        parallel_ks=[2],
        bootstrap=100,
        progress=False,
    )
    # sequential: b=14, 28: sample 0 right, sample 1 reads nothing -> 1/2; b=40: both right
    assert [p["accuracy"] for p in result["sequential"]] == [0.5, 0.5, 1.0]
    par = {p["budget"]: p for p in result["parallel"]}
    # maj@2 at b=14: two samples of 7 tokens, both "0" -> wrong
    # b=28: 14 tokens each: "42" (sample 0) vs "0" tie -> first seen "42" -> right
    # b=40: 20 tokens each: same tie -> right
    assert [par[b]["accuracy"] for b in (14, 28, 40)] == [0.0, 1.0, 1.0]
    assert par[28]["per_sample_budget"] == 14


def test_curves_interval_brackets_the_mean(tiny_tokenizer):
    tok = tiny_tokenizer
    ros = [_rollout(tok, "abc", index=i) for i in range(4)]
    grades = [{2: ("1", i % 2 == 0)} for i in range(4)]  # problems 0 and 2 right
    seq = curves(ros, grades, [2], bootstrap=500)["sequential"][0]
    assert seq["accuracy"] == 0.5
    assert 0.0 <= seq["lo"] <= 0.5 <= seq["hi"] <= 1.0


def test_greedy_completer_batches_like_single_inputs(tiny_model, tiny_tokenizer):
    tok = tiny_tokenizer
    inputs = [tok.encode(t, add_special_tokens=False) for t in ("1+1=", "12*34+5=", "a")]
    batched = GreedyCompleter(tiny_model, tok, batch_size=3).complete(inputs, 6)
    single = GreedyCompleter(tiny_model, tok, batch_size=1).complete(inputs, 6)
    assert batched == single  # left padding and the mask leave each continuation unchanged
    assert all(len(c) <= 6 and tok.eos_token_id not in c for c in batched)
    assert tiny_model.training  # the completer restores the caller's mode


@pytest.mark.parametrize("bad", [[], [0, 4]])
def test_scaling_curve_rejects_bad_budgets(bad, tiny_tokenizer, scripted_engine):
    from t1.errors import ConfigError

    with pytest.raises(ConfigError, match="scale.budgets"):
        scaling_curve(
            scripted_engine(_fixed_position),
            ReadingCompleter(tiny_tokenizer, SUFFIX),
            tiny_tokenizer,
            [FakeProblem("a", "q", "1")],
            task="math",
            budgets=bad,
            sampling=SamplingParams(),
            data_cfg=PLAIN,
            progress=False,
        )


def test_model_labels_are_short_and_unique():
    taken: set[str] = set()
    assert model_label("runs/demo/rl/checkpoints/step-9", taken) == "rl/step-9"
    assert model_label("runs/demo/sft/final", taken) == "sft/final"
    assert model_label("a/model", taken) == "model"
    assert model_label("b/model", taken) == "b/model"  # "model" is taken: add the parent
