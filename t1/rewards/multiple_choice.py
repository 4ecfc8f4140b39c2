"""The multiple-choice verifier (GPQA, MMLU-style): the chosen option, as a letter or by its text.

Reference (the problem's `answer`), one of:

    "B"                                    the right letter ("(B)", "B)" and "b" too)
    {"answer": "B", "choices": [...]}      JSON: the letter (or the right option's text) and the
                                           options in order, A first; "options" may be a list or
                                           {"A": ..., "B": ...}. With the options, a response
                                           that names the right option's text is right too.

`choice_reference(answer, choices)` writes the JSON form and `format_choices(choices)` the lines
"(A) ..." a prompt shows, so the two always letter the options alike.

The response's choice, first found wins:

    1. the final `\\boxed{...}`: "B", "(B)", "\\text{B}", "B) text", or an option's text
    2. the last answer phrase: "The answer is (C)", "Answer: C", "the correct option is C",
       "Final answer: C"; or its option text
    3. a last line that is a letter alone ("(D)", "**D**"), or with the option's text

The verdict's `answer` is the letter (so majority votes count "B", "(B)" and the option's text
as one answer); a choice that names no option is kept as written and graded wrong.
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections.abc import Sequence

from t1.errors import DataError
from t1.rewards.base import RewardResult, verdict
from t1.rewards.extraction import last_boxed
from t1.rewards.phrases import clean

# letters a reference may name when it gives no options (MMLU-Pro has ten: A-J)
MAX_LETTERS = 10
# text compared against the options, at most (a paragraph is not an option's name)
MAX_OPTION_CHARS = 500

# "B", "(B)", "B.", "B) Paris": a letter, then perhaps the option's text
_LETTER_RE = re.compile(r"^[\s*]*[(\[]?\s*([A-Za-z])\s*(?:[)\].:]\s*(.*?))?[\s*]*$", re.S)
_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
# the letter is case-sensitive: "the answer is a bit subtle" names no option
_PHRASE_RE = re.compile(
    r"(?:answer|correct\s+(?:option|choice))\s*(?:is|would\s+be|should\s+be)?\s*[:：]?\s*"
    # the letter may sit in math dollars: simple-evals' template asks for 'Answer: $LETTER'
    r"(?:option\s+|choice\s+)?\**\s*[(\[]?\s*\$?\s*((?-i:[A-J]))\s*\$?\s*[)\]]?(?![A-Za-z0-9])",
    re.I,
)
# a lower-case letter counts where it can't be a word: "Answer: (b)", "Final answer: b."
_LOWER_RE = re.compile(r"answer\s*(?:is)?\s*[:：]\s*[(\[]?([a-j])[)\]]?\s*\.?\s*$", re.I | re.M)
# a last line that starts with a capital letter alone: "(D)", "**D**", "D) the option's text"
_LAST_LINE_RE = re.compile(r"^\W*[A-J](?![A-Za-z])")
_PHRASE_TEXT_RE = re.compile(r"answer\s*(?:is)?\s*[:：]?\s*([^\n]+)", re.I)


class MultipleChoiceVerifier:
    """A choice among lettered options, compared with the right letter."""

    in_process = True

    def __init__(self, timeout_s: float | None = None) -> None:
        del timeout_s  # bounded: regexes over bounded windows

    def __call__(self, text: str, reference: str) -> RewardResult:
        letter, options = parse_choice_reference(reference)
        chosen = response_choice(text, options) if isinstance(text, str) else None
        if chosen is None:
            return verdict(False, None)
        return verdict(chosen == letter, chosen)


def response_choice(text: str, options: Sequence[str] = ()) -> str | None:
    """The letter a response chooses (or what it wrote, when that names no option), or None."""
    boxed = last_boxed(text)
    if boxed is not None:
        return _as_letter(boxed, options) or clean(boxed)
    tail = text[-4 * MAX_OPTION_CHARS :]
    found = None
    for found in _PHRASE_RE.finditer(tail):  # noqa: B007 - only the last match matters
        pass
    lower = None
    for lower in _LOWER_RE.finditer(tail):  # noqa: B007 - only the last match matters
        pass
    if lower is not None and (found is None or lower.start() > found.start()):
        found = lower
    if found is not None:
        return found.group(1).upper()
    named = None
    for named in _PHRASE_TEXT_RE.finditer(tail):  # noqa: B007 - only the last match matters
        pass
    if named is not None and options:
        by_text = _option_letter(named.group(1), options)
        if by_text is not None:
            return by_text
    lines = tail.strip().splitlines()
    last = lines[-1] if lines else ""
    return _as_letter(last, options) if _LAST_LINE_RE.match(last) else None


def parse_choice_reference(reference: str) -> tuple[str, tuple[str, ...]]:
    """(right letter, options) of a reference (see the module docstring); `DataError` if bad."""
    return _parse_reference(reference if isinstance(reference, str) else json.dumps(reference))


def choice_reference(answer: str, choices: Sequence[str]) -> str:
    """The JSON reference for options `choices` (A first) whose right one is `answer` (a letter
    or the right option's text)."""
    letter, _ = _parse_reference(json.dumps({"answer": answer, "choices": list(choices)}))
    return json.dumps({"answer": letter, "choices": list(choices)}, ensure_ascii=False)


def format_choices(choices: Sequence[str]) -> str:
    """The options as a prompt shows them: "(A) first\\n(B) second...", lettered as the
    reference letters them."""
    return "\n".join(f"({string.ascii_uppercase[i]}) {c}" for i, c in enumerate(choices))


@functools.lru_cache(maxsize=4096)
def _parse_reference(reference: str) -> tuple[str, tuple[str, ...]]:
    text = reference.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DataError(f"multiple-choice reference {text[:80]!r} is not JSON") from exc
        options = _options(data, text)
        letter = _as_letter(str(data.get("answer", "")), options)
        if letter is None:
            raise DataError(
                f"multiple-choice reference {text[:80]!r}: 'answer' is neither a letter of the "
                f"{len(options)} options nor one of their texts"
            )
        return letter, options
    letter = _as_letter(text, ())
    if letter is None:
        raise DataError(
            f"multiple-choice reference {text[:80]!r} is neither a letter A-"
            f"{string.ascii_uppercase[MAX_LETTERS - 1]} nor JSON "
            '{"answer": "B", "choices": [...]}'
        )
    return letter, ()


def _options(data: object, text: str) -> tuple[str, ...]:
    """The options of a JSON reference, in letter order."""
    raw = data.get("choices", data.get("options")) if isinstance(data, dict) else None
    if isinstance(raw, dict):
        raw = [raw[k] for k in sorted(raw)]
    if not isinstance(raw, list) or not 2 <= len(raw) <= 26:
        raise DataError(
            f"multiple-choice reference {text[:80]!r}: 'choices' must be a list of 2-26 options"
        )
    return tuple(str(option) for option in raw)


def _as_letter(answer: str, options: Sequence[str]) -> str | None:
    """The letter `answer` names: a letter ("B", "(B)", "B) text"), else an option's text."""
    plain = clean(_TEXT_WRAP_RE.sub(lambda m: m.group(1), answer))
    m = _LETTER_RE.match(plain[:MAX_OPTION_CHARS])
    count = len(options) or MAX_LETTERS
    if m and m.group(1).upper() in string.ascii_uppercase[:count]:
        rest = (m.group(2) or "").strip()
        if not rest or not options or _same_text(rest, options[ord(m.group(1).upper()) - 65]):
            return m.group(1).upper()
    return _option_letter(plain, options)


def _option_letter(answer: str, options: Sequence[str]) -> str | None:
    """The letter of the option whose text `answer` is (case, spaces, `$` and end dots aside)."""
    if len(answer) > MAX_OPTION_CHARS:
        return None
    matches = [i for i, option in enumerate(options) if _same_text(answer, option)]
    return string.ascii_uppercase[matches[0]] if len(matches) == 1 else None


def _same_text(a: str, b: str) -> bool:
    return _key(a) == _key(b)


def _key(text: str) -> str:
    return " ".join(clean(text.replace("$", "")).lower().split()).rstrip(".")
