"""Answer extraction: the final answer a response (or a reference solution) commits to.

Where an answer may sit, in the order `style="auto"` tries them:

    1. the final statement: the last group of `\\boxed{...}` / `\\fbox{...}`, or a later
       "final answer ... is X", whichever ends last (a correction after a box wins)
    2. the last `<answer>...</answer>` tag (TinyZero-style Countdown prompts)
    3. a GSM8K tail `#### N`
    4. the last phrase anchor: "Answer: X", "the answer is X", "Answer $X$"

A group of boxes is one answer split over several boxes (`\\boxed{1}, \\boxed{2}`): going left from
the last box, an earlier box joins while the text between is under 10 characters, or under 70
with a separator (`,` `;` "and" "or") and a different content; the contents are joined by ", ",
which Math-Verify and the fast path read as a set (its rule, latex2sympy2_extended's
`extract_boxed_content`, followed here). A phrase is read down to its expression
(`t1.rewards.phrases`).

Every scan is linear in the text (one brace-matching pass, regexes without nested quantifiers,
bounded windows), so a hostile response (`\\frac{` x 10 000, megabytes of braces) costs
milliseconds, never a hang.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from t1.rewards.phrases import MAX_ANSWER_CHARS, clean, read_after, read_final_answer

Style = Literal["auto", "boxed", "tag", "gsm8k", "phrase", "number"]
STYLES: tuple[str, ...] = ("auto", "boxed", "tag", "gsm8k", "phrase", "number")

# Math-Verify's box-joining distances (see the module docstring)
NEAR_CHARS = 10
SEPARATED_CHARS = 70
# answer anchors read from the end before giving up (a real response states its answer last)
MAX_ANCHORS = 64

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_SEPARATOR_RE = re.compile(r"\b(?:and|or)\b|[,;]")
_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_HASH_RE = re.compile(r"####[ \t]*([^\n]*)")
_NUMBER_RE = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+")
# "answer" as an anchor: "Answer: X", "answer is X", "answer $X$", "answer to (a) is X"
_ANSWER_RE = re.compile(r"answer(?![a-z])", re.I)
_FINAL_RE = re.compile(r"final\s+answer(?![a-z])", re.I)


@dataclass(frozen=True)
class Box:
    # where `\boxed` starts, where its content starts, and where the box ends (its last char)
    start: int
    begin: int
    end: int
    # the content ends before `end` when braced (`\boxed{x}`), at it when bare (`\boxed x`)
    braced: bool = True

    def content(self, text: str) -> str:
        return text[self.begin : self.end if self.braced else self.end + 1]


def extract_answer(text: str, style: Style | str = "auto") -> str | None:
    """The final answer in `text`, cleaned of `$`-delimiters and trailing punctuation.

    None when the chosen style finds nothing (the reward treats that as "no parseable answer").

    >>> extract_answer("so $x=3$, hence \\\\boxed{\\\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    >>> extract_answer("She has 16 - 3 = 13 left.\\n#### 13")
    '13'
    >>> extract_answer("Final Answer: The largest $n$ is 34.")
    '34'
    """
    if not isinstance(text, str) or not text:
        return None
    if style == "auto":
        for finder in (_final_statement, _last_tag, _last_hash, _last_phrase):
            found = finder(text)
            if found is not None:
                return found
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
    return finders[style](text)


def reference_answer(reference: str) -> str:
    """A reference reduced to its answer: a MATH `solution` -> its last boxes, GSM8K -> `#### N`.

    A reference that is already a bare answer comes back stripped, never None, so a dataset
    row can hold either form.
    """
    found = last_boxed(reference)
    if found is None:
        found = _last_hash(reference)
    return found if found is not None else clean(reference)


def last_boxed(text: str) -> str | None:
    """The last group of boxes, joined by ", " (see the module docstring), or None.

    An unclosed final box (a response cut at the length limit) falls back to the previous one.
    """
    group = box_group(text)
    return None if group is None else group[0]


def box_group(text: str) -> tuple[str, int] | None:
    """(content of the last group of boxes, end of its last box), or None without a box."""
    boxes = find_boxes(text)
    if not boxes:
        return None
    group = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        if box.end >= group[-1].start:  # a box around the later one: not a second box
            break
        gap = text[box.end + 1 : group[-1].start]
        separated = len(gap) < SEPARATED_CHARS and _SEPARATOR_RE.search(gap) is not None
        if len(gap) < NEAR_CHARS or (separated and box.content(text) != group[-1].content(text)):
            group.append(box)
        else:
            break
    contents: list[str] = []
    for box in reversed(group):
        content = clean(box.content(text))
        if content and (not contents or contents[-1] != content):
            contents.append(content)
    if not contents:
        return None
    return ", ".join(contents), boxes[-1].end + 1


def find_boxes(text: str) -> list[Box]:
    """Every closed `\\boxed{...}` / `\\fbox{...}` (and `\\boxed 5`), in order of appearance."""
    starts = [m for m in _BOXED_RE.finditer(text)]
    if not starts:
        return []
    closing = _matching_braces(text, starts[0].end())
    boxes = []
    for m in starts:
        i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            end = closing.get(i)
            if end is not None:
                boxes.append(Box(m.start(), i + 1, end))
            continue
        bare = re.match(r"[^\s$]+", text[i : i + MAX_ANSWER_CHARS])
        if i > m.end() and bare:
            boxes.append(Box(m.start(), i, i + bare.end() - 1, braced=False))
    return boxes


def last_number(text: str) -> str | None:
    """The last number in `text` (GSM8K free form), thousands separators removed."""
    last = None
    for last in _NUMBER_RE.finditer(text):  # noqa: B007 - only the last match matters
        pass
    return None if last is None else last.group(0).replace(",", "")


def _final_statement(text: str) -> str | None:
    """The last box group or "final answer ... is X", whichever ends later in the text."""
    group = box_group(text)
    phrase = _last_anchor(text, "final", _FINAL_RE, read_final_answer)
    if phrase is not None and (group is None or phrase[1] > group[1]):
        return _unbox(phrase[0])
    return group[0] if group is not None else None


def _last_anchor(
    text: str,
    word: str,
    anchor_re: re.Pattern[str],
    read: Callable[[str, int], tuple[str, int] | None],
) -> tuple[str, int] | None:
    """What the last of the `MAX_ANCHORS` last anchors that states something states."""
    lower = text.lower()
    pos = lower.rfind(word)
    for _ in range(MAX_ANCHORS):
        if pos < 0:
            break
        anchor = anchor_re.match(text, pos)
        found = read(text, anchor.end()) if anchor else None
        if found is not None:
            return found
        pos = lower.rfind(word, 0, pos)
    return None


def _unbox(answer: str) -> str:
    """A phrase whose answer is boxed ("the final answer is $\\boxed{5}$") -> the box's content."""
    if "\\boxed" in answer or "\\fbox" in answer:
        return last_boxed(answer) or answer
    return answer


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
    return None if found is None else clean(found.group(1))


def _last_hash(text: str) -> str | None:
    idx = text.rfind("####")
    if idx < 0:
        return None
    found = _HASH_RE.match(text, idx)
    return clean(found.group(1)) if found and found.group(1).strip() else None


def _last_phrase(text: str) -> str | None:
    """What the last answer anchor states, read down to its expression."""
    found = _last_anchor(text, "answer", _ANSWER_RE, read_after)
    return None if found is None else _unbox(found[0])
