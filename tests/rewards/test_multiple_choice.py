"""The multiple-choice verifier (`gpqa`): letters, option texts, references, bad references."""

from __future__ import annotations

import json

import pytest

from t1.errors import DataError
from t1.rewards import get_verifier, verifier_names
from t1.rewards.multiple_choice import (
    choice_reference,
    format_choices,
    parse_choice_reference,
    response_choice,
)

CHOICES = ["Helium", "Neon", "$2.5 \\times 10^{-3}$ M", "None of the above"]
REF = choice_reference("B", CHOICES)  # Neon


@pytest.mark.parametrize(
    ("text", "chosen"),
    [
        ("Noble gases are inert... The answer is (B).", "B"),
        ("Answer: B", "B"),
        ("After comparing the shells, the correct option is B.", "B"),
        ("Final answer: **B**", "B"),
        ("Answer: (b)", "B"),  # a lower-case letter alone after the colon
        ("Answer: $B$", "B"),  # the letter in math dollars, as 'Answer: $LETTER' asks
        ("so it is neon.\nAnswer: $ D $", "D"),
        ("$\\boxed{B}$", "B"),
        ("$\\boxed{\\text{(B)}}$", "B"),
        ("$\\boxed{B) Neon}$", "B"),
        ("so the gas must be neon.\n\nAnswer: Neon", "B"),  # the option's text
        ("$\\boxed{\\text{Neon}}$", "B"),
        ("Weighing the options once more.\n\n(B)", "B"),  # a last line that is a letter
        ("The answer is (C).", "C"),
        ("Answer: $2.5 \\times 10^{-3}$ M", "C"),
        ("I first thought (A). Checking again, the answer is D.", "D"),  # the last one counts
        ("The answer is (B). No wait: the answer is (A).", "A"),
    ],
)
def test_choices(text: str, chosen: str) -> None:
    result = get_verifier("gpqa")(text, REF)
    assert result.answer == chosen
    assert result.correct is (chosen == "B")
    assert result.score == (1.0 if chosen == "B" else 0.0)


@pytest.mark.parametrize(
    "text",
    ["I am not sure.", "the answer is a bit subtle", "Answer: a bit more work is needed", ""],
)
def test_no_choice(text: str) -> None:
    result = get_verifier("gpqa")(text, REF)
    assert result.answer is None and not result.correct


def test_a_choice_that_names_no_option_is_wrong_as_written() -> None:
    result = get_verifier("gpqa")("$\\boxed{B) Helium}$", REF)  # letter and text disagree
    assert not result.correct and result.answer == "B) Helium"
    assert not get_verifier("gpqa")("$\\boxed{Argon}$", REF).correct


def test_reference_forms() -> None:
    assert parse_choice_reference("B") == ("B", ())
    assert parse_choice_reference(" (c) ") == ("C", ())
    assert parse_choice_reference(REF) == ("B", tuple(CHOICES))
    by_text = json.dumps({"answer": "Neon", "choices": CHOICES})
    assert parse_choice_reference(by_text)[0] == "B"
    as_dict = json.dumps({"answer": "A", "options": {"B": "y", "A": "x"}})
    assert parse_choice_reference(as_dict) == ("A", ("x", "y"))
    # a bare letter reference grades letters; option texts need the options
    assert get_verifier("multiple_choice")("The answer is (B)", "B").correct
    assert not get_verifier("gpqa")("Answer: Neon", "B").correct


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("Neon", "neither a letter"),
        ("K", "neither a letter"),  # beyond A-J without options
        ('{"answer": "E", "choices": ["a", "b", "c", "d"]}', "neither a letter of the 4"),
        ('{"answer": "A", "choices": ["only one"]}', "list of 2-26 options"),
        ('{"answer": "A", "choices": ', "is not JSON"),
    ],
)
def test_bad_references_are_data_errors(reference: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        get_verifier("gpqa")("Answer: A", reference)


def test_prompt_and_reference_letter_the_options_alike() -> None:
    lines = format_choices(CHOICES).splitlines()
    assert lines[1] == "(B) Neon" and len(lines) == 4
    assert json.loads(REF) == {"answer": "B", "choices": CHOICES}
    assert response_choice(lines[1], CHOICES) == "B"  # a response quoting the option line


def test_registered_names() -> None:
    assert {"gpqa", "multiple_choice", "math", "gsm8k"} <= set(verifier_names())
