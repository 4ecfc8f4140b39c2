"""Answer phrases read down to their expression: "Answer: $9$", "the final answer is 34".

    read_final_answer   after "final answer": the first " is" within 100 characters, then X
                        ("Final Answer: The largest $n$ is 34." -> "34")
    read_after          after "answer": ":" / "is" / nothing, then X; or a short clause ending in
                        " is", then X ("The answer to part (a) is $5$" -> "5")

X is read as Math-Verify reads a phrase's answer where that is right: a math environment
(`$..$`, `$$..$$`, `\\(..\\)`, `\\[..\\]`), several joined by "," / "and" / "or" (-> "a, b", a
set), or a `\\boxed{}`; else the rest of the sentence cut before its first prose word
("7\\frac{1}{2} cups" -> "7\\frac{1}{2}"), where Math-Verify would keep only the first number;
a sentence of prose is searched for " is X", then its first math, then its first number.

Every read looks at a bounded window after its anchor (`MAX_ANSWER_CHARS`).
"""

from __future__ import annotations

import re

# an extracted answer longer than this is not an answer but a paragraph the anchor swallowed
MAX_ANSWER_CHARS = 1000
# how far after "final answer" its " is" may start (Math-Verify's window)
IS_WINDOW = 100
# how far into a prose sentence its first formula is looked for (Math-Verify's window)
MATH_WINDOW = 50
# formulas one phrase may join ("$a$, $b$ and $c$")
MAX_JOINED = 6

_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_LEAD_RE = re.compile(r"[\s*]*(?:is\b)?[\s*]*[:：]?[\s*]*", re.I)
_IS_RE = re.compile(r"\sis\b[ \t]*[:：]?[ \t]*", re.I)
_JOIN_RE = re.compile(r"\s*(?:,?\s*\b(?:and|or)\b|,)\s*")
_ENV_RE = re.compile(r"\$\$|\$|\\\(|\\\[")
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_WORD_RE = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_NUMBER_RE = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+")
_CLOSE = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}


def read_final_answer(text: str, pos: int) -> tuple[str, int] | None:
    """(answer, end) stated by "final answer ... is X" whose "final answer" ends at `pos`."""
    found = _IS_RE.search(text, pos, pos + IS_WINDOW + 8)
    if found is None or found.start() - pos > IS_WINDOW:
        return None
    return read_expression(text, found.end())


def read_after(text: str, pos: int) -> tuple[str, int] | None:
    """(answer, end) an "answer" anchor ending at `pos` states, or None when it states none."""
    lead = _LEAD_RE.match(text, pos)
    start = lead.end() if lead else pos
    if start > pos and text[pos:start].strip(" \t*"):  # "answer:" or "answer is"
        found = read_expression(text, start)
    elif _ENV_RE.match(text, start) or _BOX_RE.match(text, start):  # "Answer $9$"
        found = read_expression(text, start)
    else:  # "the answer to part (a) is X": a clause, then " is"
        clause = _sentence(text[pos : pos + IS_WINDOW + 8])
        verb = _IS_RE.search(clause)
        found = read_expression(text, pos + verb.end()) if verb else None
    return found


def read_expression(text: str, pos: int) -> tuple[str, int] | None:
    """(expression, end) read at `pos`: formulas, a box, or a sentence cut to its maths."""
    while pos < len(text) and text[pos] in " \t*":
        pos += 1
    if _ENV_RE.match(text, pos):
        return _formulas(text, pos)
    box = _BOX_RE.match(text, pos)
    if box:
        end = _closing_brace(text, box.end() - 1)
        return (text[pos : end + 1], end + 1) if end is not None else None
    sentence = _sentence(text[pos : pos + MAX_ANSWER_CHARS])
    if not sentence.strip():
        return None
    first_word = _WORD_RE.match(sentence.lstrip())
    if first_word is None:
        answer = clean(_before_prose(sentence))
        return (answer, pos + len(sentence)) if answer else None
    return _from_prose(text, pos, sentence)


def clean(answer: str) -> str:
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


def _from_prose(text: str, pos: int, sentence: str) -> tuple[str, int] | None:
    """A sentence of prose: its " is X", else its first formula, else its first number."""
    verb = _IS_RE.search(sentence)
    if verb is not None:
        inner = read_expression(text, pos + verb.end())
        if inner is not None:
            return inner
    env = _ENV_RE.search(sentence, 0, MATH_WINDOW)
    if env is not None:
        return _formulas(text, pos + env.start())
    number = _NUMBER_RE.search(sentence)
    if number is not None:
        return number.group(0), pos + number.end()
    answer = clean(sentence)
    return (answer, pos + len(sentence)) if answer and len(answer.split()) <= 3 else None


def _formulas(text: str, pos: int) -> tuple[str, int] | None:
    """One math environment at `pos`, and those joined to it by "," / "and" / "or"."""
    parts: list[str] = []
    end = pos
    while len(parts) < MAX_JOINED:
        found = _environment(text, pos)
        if found is None:
            break
        parts.append(found[0])
        end = found[1]
        joint = _JOIN_RE.match(text, end)
        if joint is None or not _ENV_RE.match(text, joint.end()):
            break
        pos = joint.end()
    answers = [clean(p) for p in parts if clean(p)]
    return (", ".join(answers), end) if answers else None


def _environment(text: str, pos: int) -> tuple[str, int] | None:
    """(content, end) of the math environment opening at `pos` (`$` ones stay on one line)."""
    opener = _ENV_RE.match(text, pos)
    if opener is None:
        return None
    close = _CLOSE[opener.group(0)]
    start = opener.end()
    limit = min(len(text), start + MAX_ANSWER_CHARS)
    i = start
    while i < limit:
        if text.startswith(close, i) and text[i - 1] != "\\" and i > start:
            return text[start:i], i + len(close)
        if text[i] == "\n" and close == "$":
            return None
        i += 1
    return None


def _closing_brace(text: str, i: int) -> int | None:
    """The `}` matching the `{` at `i`, within `MAX_ANSWER_CHARS`."""
    depth = 0
    for j in range(i, min(len(text), i + MAX_ANSWER_CHARS)):
        ch = text[j]
        if ch == "{" and text[j - 1] != "\\":
            depth += 1
        elif ch == "}" and text[j - 1] != "\\":
            depth -= 1
            if depth == 0:
                return j
    return None


def _sentence(rest: str) -> str:
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


def _before_prose(s: str) -> str:
    """`s` up to its first English word outside braces and commands ("12 apples" -> "12")."""
    for m in _WORD_RE.finditer(s):
        head = s[: m.start()]
        if head.count("{") <= head.count("}") and head.strip():
            return head
    return s
