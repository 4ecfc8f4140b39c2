"""String and number normal forms of short math answers: the fast path of `math_equal`.

`normalize_answer` maps spellings of one answer to one string (the MATH convention of Hendrycks
et al., extended): spaces, `\\left`/`\\right`, `\\!`, `\\dfrac`->`\\frac`, `\\frac12`->`\\frac{1}{2}`,
`^\\circ`, `\\%`, a trailing unit in `\\text{}` (after anything, as Math-Verify drops it), thousands
separators, `x = ` prefixes, trailing `.`,
base subscripts (`1011_2` -> `1011`: Math-Verify ignores them, and agreeing with it is the goal).

`is_plain` says when both readers read an answer the same way, so that the fast path may call it
different from another: digits, single letters, operators, brackets and a few commands.

`parse_number` reads the plain numeric forms exactly, as a `Fraction`: `-3`, `0.5`, `.5`, `1/2`,
`\\frac{1}{2}`, `-\\frac{3}{4}`, `1{,}000`, `2.5\\times10^{3}` (not `1e3`:
in LaTeX that is 1·e·3, as Math-Verify reads it). Anything else is None:
numbers are read by regexes with bounded digit counts, never by `eval` or `sympify`.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

# digits of one number, and the largest power of ten, that the fast path reads
MAX_DIGITS = 40
MAX_EXPONENT = 60
# answers whose readings are remembered (the K samples of a prompt share one reference, and
# many of them one answer)
CACHE_SIZE = 8192

# spacing commands, `\\$` and `$`; `(?<!\\)`: the `\\` of a matrix row break is not a command
_DROP_RE = re.compile(r"(?<!\\)\\(?:[!,;: $]|qquad|quad|displaystyle|limits)|\$")
_RENAME = (
    ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"),
    ("\\cfrac", "\\frac"),
    ("\\le ", "\\leq "),
    ("\\ge ", "\\geq "),
    ("∞", "\\infty"),
    ("−", "-"),
    ("\\emptyset", "\\varnothing"),
)
# MATH writes thousands as `10,\\!080` or `10{,}080`: a separator however spaced, never a list
_SEPARATOR_RE = re.compile(r"(\d)(?:,\\!|\{,\})\s*(?=\d{3}(?!\d))")
_LEFT_RIGHT_RE = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![a-zA-Z])")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\circ(?![a-zA-Z])|\\degree")
_PERCENT_RE = re.compile(r"\\?%")
_TEXT_WRAP_RE = re.compile(
    r"\\(?:text|textbf|textit|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}"
)
# Math-Verify drops everything from the first text command on when the answer ends in a brace
# (a unit: "\\frac{1}{3}\\text{ m}", "5\\mbox{ cm}^2"), as long as something is left
_TEXT_TAIL_RE = re.compile(
    r"\\(?:text|mbox|mathrm|mathit|mathbf|textbf|textit|textrm|textnormal)\s*\{.*\}"
    r"(?:\^\d|\^\{\d\}|\{\^\d\})?$",
    re.DOTALL,
)
# TeX's short arguments as Math-Verify reads them: \\frac123 is 1/23, \\frac1{x}, \\sqrt23 is 3√2
_FRAC_DIGITS_RE = re.compile(r"\\frac\s?(\d)\s?(\d+)")
_FRAC_DIGIT_BRACE_RE = re.compile(r"\\frac\s?(\d)\s?(?=\{)")
_SQRT_SHORT_RE = re.compile(r"\\sqrt\s?(\d)")
# "2 3" is two numbers to Math-Verify (it reads 5): the space must not join them into 23
_DIGIT_SPACE_RE = re.compile(r"(?<=\d)\s+(?=\d)")
_LIST_COMMA_RE = re.compile(r"(?<=\d),\s+(?=\d{3}(?!\d))")
_COMMAND_SPACE_RE = re.compile(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])")
_BASE_RE = re.compile(r"^([-+]?\d+)_\{?\d+\}?$")
_ASSIGN_RE = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*(?=[^=])")
_THOUSANDS_RE = re.compile(r"^[-+]?\d{1,3}(?:(?:,|\{,\}|\\,)\d{3})+(?:\.\d+)?$")
_INT_RE = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)$")
_SLASH_RE = re.compile(r"^([-+]?\d+)/([-+]?\d+)$")
_FRAC_RE = re.compile(r"^([-+]?)\\frac\{([-+]?\d+)\}\{([-+]?\d+)\}$")
_SCI_RE = re.compile(r"^([-+]?(?:\d+(?:\.\d*)?|\.\d+))(?:\\times|\\cdot|\*)10\^\{?([-+]?\d+)\}?$")


# what `is_plain` accepts
_COMMAND_RE = re.compile(r"\\([a-zA-Z]+|.)")
_FRAC_SHORT_RE = re.compile(r"\\[dt]?frac\s?\d\s?(?:\d|\{)")
_ENV_NAME_RE = re.compile(r"\{\s*[pb]?matrix\s*\}")
# "2516_8": both readers drop the base (see `normalize_answer`)
_BASE_TAIL_RE = re.compile(r"(?<=\d)_\{?\d+\}?$")
_PLAIN_COMMANDS = frozenset(
    "frac dfrac tfrac sqrt pi cdot times div infty pm cup left right circ begin end".split()
)
# `\\{ \\}` set braces, spacing, `\\$` `\\%` (dropped by both readers), `\\\\` matrix rows
_PLAIN_SYMBOLS = frozenset("{}!,;: $%\\")
_NOT_PLAIN = tuple(
    re.compile(pattern)
    for pattern in (
        r"[^0-9a-zA-Z+\-*/^()\[\]{},.=!&$ \x01]",  # relations, | _ % quotes: read their own ways
        r"[a-zA-Z]{2}",  # words, units, multi-letter names ("and" is a comma to Math-Verify)
        r"(?:\d|\}|\s)\s*(?:[tshdclgmo]|[a-h]\s*\.)\s*$",  # a unit letter Math-Verify drops
        r"\d\s+\d",  # "2 3": two numbers, which Math-Verify adds
        r"\}\s*\d",  # "\\frac{1}{2}3": Math-Verify rewrites it
    )
)
# "1,000" outside brackets is a thousands separator to Math-Verify, inside them a list's comma
_NEGATED_RE = re.compile(r"-\s*(?:[(\[]|\\left|\\\{)")
_LIST_THOUSANDS_RE = re.compile(r"(?<=\d),\d{3}(?!\d)")


@functools.lru_cache(maxsize=CACHE_SIZE)
def normalize_answer(answer: str) -> str:
    """One string per spelling-equivalent answer; compare two answers by comparing these.

    >>> normalize_answer("\\\\left( 3, \\\\dfrac{\\\\pi}{2} \\\\right)")
    '(3,\\\\frac{\\\\pi}{2})'
    >>> normalize_answer("1,000 \\\\text{ cm}")
    '1000'
    """
    s = _SEPARATOR_RE.sub(r"\1", answer.strip())
    s = _DROP_RE.sub("", s)
    for old, new in _RENAME:
        s = s.replace(old, new)
    s = _LEFT_RIGHT_RE.sub("", s)
    s = _DEGREE_RE.sub("", s)
    s = _PERCENT_RE.sub("", s)
    unit = _TEXT_TAIL_RE.search(s.strip())
    if unit and s.strip()[: unit.start()].strip():
        s = s.strip()[: unit.start()]
    s = _TEXT_WRAP_RE.sub(lambda m: m.group(1), s)
    s = _ASSIGN_RE.sub("", s.strip())
    s = s.replace("~", "")
    thousands = _THOUSANDS_RE.match(s)  # before spaces go: "10, 080" is a list, not 10080
    s = _COMMAND_SPACE_RE.sub("\\1\0", s)  # "\\pi r" must not become "\\pir"
    s = _DIGIT_SPACE_RE.sub("\0", s)
    if not thousands:  # "10, 080" stays a list when read again (`parse_number` normalises too)
        s = _LIST_COMMA_RE.sub(",\0", s)
    s = "".join(s.split()).replace("\0", " ")
    s = _FRAC_DIGITS_RE.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_DIGIT_BRACE_RE.sub(r"\\frac{\1}", s)
    s = _SQRT_SHORT_RE.sub(r"\\sqrt{\1}", s)
    if thousands:
        s = s.replace("{,}", "").replace("\\,", "").replace(",", "")
    s = s.rstrip(".")
    s = _BASE_RE.sub(r"\1", s)  # "1011_2" -> "1011": Math-Verify ignores the base too
    if s.startswith("."):
        s = "0" + s
    elif s.startswith("-."):
        s = "-0" + s[1:]
    return s


@functools.lru_cache(maxsize=CACHE_SIZE)
def parse_number(answer: str) -> Fraction | None:
    """The exact value of a plainly numeric answer, else None (expressions, tuples, words).

    >>> parse_number("\\\\frac{3}{4}"), parse_number("-0.75"), parse_number("2.5\\\\times10^{3}")
    (Fraction(3, 4), Fraction(-3, 4), Fraction(2500, 1))
    """
    s = normalize_answer(answer) if isinstance(answer, str) else ""
    if not s or sum(c.isdigit() for c in s) > MAX_DIGITS:
        return None
    if _INT_RE.match(s):
        return Fraction(s)
    m = _SLASH_RE.match(s)
    if m:
        return _ratio(m.group(1), m.group(2))
    m = _FRAC_RE.match(s)
    if m:
        value = _ratio(m.group(2), m.group(3))
        return None if value is None else (-value if m.group(1) == "-" else value)
    m = _SCI_RE.match(s)
    if m:
        exponent = int(m.group(2))
        if abs(exponent) > MAX_EXPONENT:
            return None
        return Fraction(m.group(1)) * Fraction(10) ** exponent
    return None


def _ratio(num: str, den: str) -> Fraction | None:
    d = int(den)
    return None if d == 0 else Fraction(int(num), d)


@functools.lru_cache(maxsize=CACHE_SIZE)
def is_plain(answer: str) -> bool:
    """True when every part of `answer` means the same to the fast path and to Math-Verify, so
    that a difference the fast path finds is a real one (it may then answer "not equal").

    Plain: digits, single-letter variables, + - * / ^ ! = , . brackets, and the commands in
    `_PLAIN_COMMANDS` with braced arguments. Not plain: words and units (Math-Verify drops a
    unit after a number, "3h" is 3 to it), text commands, `\\frac12`-style short arguments,
    "2 3" (5 to it), "1,000" inside a list, and anything else it reads in its own way.
    """
    s = answer.strip()
    if not s or not s.isascii() or len(s) > 500:
        return False
    unit = _TEXT_TAIL_RE.search(s)
    if unit and s[: unit.start()].strip():
        s = s[: unit.start()].strip()  # both readers drop a text unit at the end
    matrix = "\\begin{" in s
    for m in _COMMAND_RE.finditer(s):
        name = m.group(1)
        if name.isalpha() and name not in _PLAIN_COMMANDS:
            return False
        if not name.isalpha() and name not in _PLAIN_SYMBOLS or (name == "\\" and not matrix):
            return False
        if name in ("frac", "dfrac", "tfrac", "sqrt") and not _plain_arguments(s, name, m.end()):
            return False
    # commands become \x01 (not a space: "\\sqrt{2} \\pm 1" has no "} 1" in it)
    bare = _COMMAND_RE.sub("\x01", s.replace("\\!", ""))  # Math-Verify deletes \\! first
    bare = _BASE_TAIL_RE.sub("", _ENV_NAME_RE.sub("", bare))
    if any(pattern.search(bare) for pattern in _NOT_PLAIN):
        return False
    if "\\cup" in s and _NEGATED_RE.search(s):
        return False  # "-(1, 2) \\cup (3, 4)": Math-Verify reads it its own way
    if not _THOUSANDS_RE.match(s.replace("\\!", "")) and any(
        _depth(bare, m.start()) == 0 for m in _LIST_THOUSANDS_RE.finditer(bare)
    ):
        return False  # "1,000, 2": thousands, or three elements?
    return matrix or "&" not in bare


def _depth(s: str, pos: int) -> int:
    """Brackets open at `pos`."""
    head = s[:pos]
    return sum(head.count(c) for c in "([{") - sum(head.count(c) for c in ")]}")


def _plain_arguments(s: str, name: str, pos: int) -> bool:
    """The \\frac or \\sqrt `name` ending at `pos` has braced arguments, or short ones that
    both readers brace alike (`\\frac12`, `\\frac{1}{23}` for `\\frac123`, `\\sqrt2`)."""
    if s[pos : pos + 1] in ("{", "["):
        return True
    short = _SQRT_SHORT_RE if name == "sqrt" else _FRAC_SHORT_RE
    return short.match(s, pos - len(name) - 1) is not None
