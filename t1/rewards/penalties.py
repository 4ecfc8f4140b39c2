"""Penalty detectors (T1, arXiv 2501.11651, sec. 3.2): responses that earn a fixed negative reward.

truncated   the rollout stopped at the length limit (finish reason "length")
repetitive  rep-n > threshold, where rep-n = 1 - |distinct n-grams| / |n-grams| over the
            response token ids (Welleck et al., 2019), or over its words when no ids are given.
            A loop of any period p repeats every n-gram after its first p tokens, so rep-n
            approaches the share of the response spent looping.
garbage     no parseable answer; optionally also text that is mostly not text: the share of
            characters that are ASCII, whitespace, common maths symbols, or letters and digits
            of the response's dominant non-ASCII script falls below a threshold (mixed-script
            noise, control characters, replacement characters).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence

# a response needs at least this many n-grams before it can count as repetitive
MIN_NGRAMS = 8
# characters read when judging how text-like a response is (a prefix and a suffix of this size)
TEXT_SAMPLE_CHARS = 20_000

_MATH_SCRIPTS = frozenset(["GREEK", "DOUBLE-STRUCK", "MATHEMATICAL", "SCRIPT", "BLACK-LETTER"])
_MATH_SYMBOLS = frozenset("≤≥≠≈±×÷−·°√∞∑∏∫πθαβγδεμσφλΔΩ→←⇒⇔∈∉⊂⊆∪∩…’‘“”–—")


def is_truncated(finish_reason: str | None) -> bool:
    return finish_reason == "length"


def repeated_ngram_share(seq: Sequence, n: int) -> float:
    """rep-n = 1 - distinct/total n-grams; 0.0 when the sequence has too few n-grams to judge.

    >>> repeated_ngram_share([1, 2, 3] * 10, 3)  # 28 trigrams, 3 distinct: 1 - 3/28
    0.8928571428571429
    """
    total = len(seq) - n + 1
    if n < 1 or total < MIN_NGRAMS:
        return 0.0
    try:  # one character per token: n-grams become substrings, hashed in C
        chars = "".join(map(chr, seq)) if not isinstance(seq, str) else seq
        distinct = len({chars[i : i + n] for i in range(total)})
    except (TypeError, ValueError, OverflowError):  # words, or ids outside chr's range
        items = list(seq)
        distinct = len(set(zip(*(items[i:] for i in range(n)))))
    return 1.0 - distinct / total


def is_repetitive(
    text: str, response_ids: Sequence[int] | None, n: int, threshold: float
) -> tuple[bool, float]:
    """(repetitive?, rep-n) over the token ids, or the words of `text` when ids are missing."""
    seq = response_ids if response_ids is not None else (text or "").split()
    share = repeated_ngram_share(seq, n)
    return share > threshold, share


def text_share(text: str) -> float:
    """Share of characters that read as text (see module docstring); 1.0 for an empty text."""
    if len(text) > 2 * TEXT_SAMPLE_CHARS:
        text = text[:TEXT_SAMPLE_CHARS] + text[-TEXT_SAMPLE_CHARS:]
    if not text:
        return 1.0
    foreign = [ch for ch in text if ord(ch) > 127 and not _always_text(ch)]
    scripts = Counter(_script(ch) for ch in foreign if ch.isalnum())
    dominant = scripts.most_common(1)[0][0] if scripts else None
    noise = sum(1 for ch in foreign if not (ch.isalnum() and _script(ch) == dominant))
    noise += sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\t\r")
    return 1.0 - noise / len(text)


def is_garbage(answer: str | None, text: str, min_text_share: float | None) -> bool:
    """No answer, or (when `min_text_share` is set) mostly noise."""
    if answer is None or not answer.strip():
        return True
    return min_text_share is not None and text_share(text or "") < min_text_share


def _always_text(ch: str) -> bool:
    """Punctuation, spaces, combining marks, maths symbols and maths letters of any script."""
    if ch in _MATH_SYMBOLS:
        return True
    category = unicodedata.category(ch)
    return category[0] in "PZM" or category == "Sm" or _script(ch) in _MATH_SCRIPTS


def _script(ch: str) -> str:
    """The Unicode script, approximated by the first word of the character's name."""
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"
