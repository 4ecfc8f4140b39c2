"""Answer extraction: the final answer a response (or a reference solution) commits to.

Where an answer may sit, in the order `style="auto"` tries them:

    1. the last closed `\\boxed{...}` / `\\fbox{...}` (nested braces; also `\\boxed 5`)
    2. the last `<answer>...</answer>` tag (TinyZero-style Countdown prompts)
    3. a GSM8K tail `#### N`
    4. the last phrase anchor: "Final answer: X", "Answer: X", "the answer is X"

Every scan is linear in the text (one brace-matching pass, regexes without nested quantifiers),
so a hostile response (`\\frac{` x 10 000, megabytes of braces) costs milliseconds, never a hang.
"""

from __future__ import annotations

import re
from typing import Literal

Style = Literal["auto", "boxed", "tag", "gsm8k", "phrase", "number"]
STYLES: tuple[str, ...] = ("auto", "boxed", "tag", "gsm8k", "phrase", "number")

# an extracted answer longer than this is not an answer but a paragraph the anchor swallowed
MAX_ANSWER_CHARS = 1000

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_HASH_RE = re.compile(r"####[ \t]*([^\n]*)")
# matched where "answer" occurs: "Answer: X", "answer is: X", "the (final) answer is X"
_PHRASE_RE = re.compile(r"answer\s*(?:is\s*)?[:：]\s*|answer\s+is\s+(?:[:：]\s*)?", re.I)
_NUMBER_RE = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+")
_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def extract_answer(text: str, style: Style | str = "auto") -> str | None:
    """The final answer in `text`, cleaned of `$`-delimiters and trailing punctuation.

    None when the chosen style finds nothing (the reward treats that as "no parseable answer").

    >>> extract_answer("so $x=3$, hence \\\\boxed{\\\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    >>> extract_answer("She has 16 - 3 = 13 left.\\n#### 13")
    '13'
    >>> extract_answer("Thus the answer is $42$.")
    '42'
    """
    if not isinstance(text, str) or not text:
        return None
    if style == "auto":
        for finder in (last_boxed, _last_tag, _last_hash, _last_phrase):
            found = finder(text)
            if found is not None:
                return _clean(found)
        return None
    finders = {
        "boxed": last_boxed,
        "tag": _last_tag,
        "gsm8k": _last_hash,
        "phrase": _last_phrase,
        "number": last_number,
    }
    if style not in finders:
        raise ValueError(f"unknown extraction style {style!r}; valid: {', '.join(STYLES)}")
    found = finders[style](text)
    return None if found is None else _clean(found)


def reference_answer(reference: str) -> str:
    """A reference reduced to its answer: a MATH `solution` -> its last box, GSM8K -> `#### N`.

    A reference that is already a bare answer comes back stripped, never None, so a dataset
    row can hold either form.
    """
    found = last_boxed(reference)
    if found is None:
        found = _last_hash(reference)
    return _clean(found if found is not None else reference)


def last_boxed(text: str) -> str | None:
    """Content of the last *closed* `\\boxed{...}`/`\\fbox{...}`, or of `\\boxed X` (no braces).

    An unclosed final box (a response cut at the length limit) falls back to the previous one.
    """
    starts = [m.end() for m in _BOXED_RE.finditer(text)]
    if not starts:
        return None
    closing = _matching_braces(text, starts[0])
    for start in reversed(starts):
        i = start
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            end = closing.get(i)
            if end is not None:
                return text[i + 1 : end]
            continue
        bare = re.match(r"[^\s$]+", text[i : i + MAX_ANSWER_CHARS])
        if i > start and bare:
            return bare.group(0)
    return None


def last_number(text: str) -> str | None:
    """The last number in `text` (GSM8K free form), thousands separators removed."""
    last = None
    for last in _NUMBER_RE.finditer(text):  # noqa: B007 - only the last match matters
        pass
    return None if last is None else last.group(0).replace(",", "")


def _matching_braces(text: str, begin: int) -> dict[int, int]:
    """Position of each `{` at or after `begin` -> its matching `}`; `\\{`, `\\}` are literal."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    i, n = begin, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def _last_tag(text: str) -> str | None:
    found = None
    if "<answer>" in text.lower():
        for found in _TAG_RE.finditer(text):  # noqa: B007 - only the last match matters
            pass
    return None if found is None else found.group(1)


def _last_hash(text: str) -> str | None:
    idx = text.rfind("####")
    if idx < 0:
        return None
    found = _HASH_RE.match(text, idx)
    return found.group(1) if found and found.group(1).strip() else None


def _last_phrase(text: str) -> str | None:
    """What follows the last answer anchor, up to the end of its sentence or line."""
    lower = text.lower()
    pos = lower.rfind("answer")
    anchor = None
    while pos >= 0 and anchor is None:
        anchor = _PHRASE_RE.match(text, pos)
        pos = lower.rfind("answer", 0, pos)
    if anchor is None:
        return None
    rest = text[anchor.end() : anchor.end() + MAX_ANSWER_CHARS]
    rest = _cut_sentence(rest)
    return rest if rest.strip() else None


def _cut_sentence(rest: str) -> str:
    """Up to the first newline or sentence-ending period outside `$...$` math."""
    in_math = False
    for i, ch in enumerate(rest):
        if ch == "$":
            in_math = not in_math
        elif ch == "\n" and (not in_math or i > 0 and rest[i - 1] == "\n"):
            return rest[:i]
        elif ch == "." and not in_math and (i + 1 == len(rest) or rest[i + 1].isspace()):
            return rest[:i]
    return rest


def _clean(answer: str) -> str:
    """Strip math delimiters, surrounding spaces and trailing sentence punctuation."""
    s = answer.strip()
    changed = True
    while changed and s:
        changed = False
        for left, right in _WRAPPERS:
            if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
                inner = s[len(left) : len(s) - len(right)]
                if left == "$" and "$" in inner:
                    continue  # "$x$ and $y$": two formulas, not one wrapped formula
                s, changed = inner.strip(), True
        stripped = s.rstrip(".,;:").rstrip()
        if stripped != s and not stripped.endswith("\\"):
            s, changed = stripped, True
    return s
