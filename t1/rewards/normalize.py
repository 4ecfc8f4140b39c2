"""String and number normal forms of short math answers: the fast path of `math_equal`.

`normalize_answer` maps spellings of one answer to one string (the MATH convention of Hendrycks
et al., extended): spaces, `\\left`/`\\right`, `\\!`, `\\dfrac`->`\\frac`, `\\frac12`->`\\frac{1}{2}`,
`^\\circ`, `\\%`, trailing units in `\\text{}`, thousands separators, `x = ` prefixes, trailing `.`,
base subscripts (`1011_2` -> `1011`: Math-Verify ignores them, and agreeing with it is the goal).

`parse_number` reads the plain numeric forms exactly, as a `Fraction`: `-3`, `0.5`, `.5`, `1/2`,
`\\frac{1}{2}`, `-\\frac{3}{4}`, `1{,}000`, `2.5\\times10^{3}` (not `1e3`:
in LaTeX that is 1·e·3, as Math-Verify reads it). Anything else is None:
numbers are read by regexes with bounded digit counts, never by `eval` or `sympify`.
"""

from __future__ import annotations

import re
from fractions import Fraction

# digits of one number, and the largest power of ten, that the fast path reads
MAX_DIGITS = 40
MAX_EXPONENT = 60

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
_UNIT_TAIL_RE = re.compile(
    r"^(.*?\d)\s*\\(?:text|mbox|mathrm)\s*\{\s*[a-zA-Z][a-zA-Z .^0-9]*\}(?:\^\{?\d\}?)?$"
)
_FRAC_SHORT_RE = re.compile(r"\\frac\s*(\d|\{[^{}]*\})\s*(\d|\{[^{}]*\})")
_SQRT_SHORT_RE = re.compile(r"\\sqrt\s*(\d+)")
_COMMAND_SPACE_RE = re.compile(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])")
_BASE_RE = re.compile(r"^([-+]?\d+)_\{?\d+\}?$")
_ASSIGN_RE = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*(?=[^=])")
_THOUSANDS_RE = re.compile(r"^[-+]?\d{1,3}(?:(?:,|\{,\}|\\,)\d{3})+(?:\.\d+)?$")
_INT_RE = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)$")
_SLASH_RE = re.compile(r"^([-+]?\d+)/([-+]?\d+)$")
_FRAC_RE = re.compile(r"^([-+]?)\\frac\{([-+]?\d+)\}\{([-+]?\d+)\}$")
_SCI_RE = re.compile(r"^([-+]?(?:\d+(?:\.\d*)?|\.\d+))(?:\\times|\\cdot|\*)10\^\{?([-+]?\d+)\}?$")


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
    unit = _UNIT_TAIL_RE.match(s.strip())
    if unit:
        s = unit.group(1)
    s = _TEXT_WRAP_RE.sub(lambda m: m.group(1), s)
    s = _ASSIGN_RE.sub("", s.strip())
    s = s.replace("~", "")
    thousands = _THOUSANDS_RE.match(s)  # before spaces go: "10, 080" is a list, not 10080
    s = _COMMAND_SPACE_RE.sub("\\1\0", s)  # "\\pi r" must not become "\\pir"
    s = "".join(s.split()).replace("\0", " ")
    s = _FRAC_SHORT_RE.sub(lambda m: f"\\frac{_braced(m.group(1))}{_braced(m.group(2))}", s)
    s = _SQRT_SHORT_RE.sub(lambda m: f"\\sqrt{{{m.group(1)}}}", s)
    if thousands:
        s = s.replace("{,}", "").replace("\\,", "").replace(",", "")
    s = s.rstrip(".")
    s = _BASE_RE.sub(r"\1", s)  # "1011_2" -> "1011": Math-Verify ignores the base too
    if s.startswith("."):
        s = "0" + s
    elif s.startswith("-."):
        s = "-0" + s[1:]
    return s


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


def _braced(arg: str) -> str:
    return arg if arg.startswith("{") else "{" + arg + "}"
