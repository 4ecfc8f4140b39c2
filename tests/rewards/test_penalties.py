"""Penalty detectors: truncation, repeated n-grams, garbage."""

from __future__ import annotations

import random

from t1.rewards.penalties import (
    is_garbage,
    is_repetitive,
    is_truncated,
    repeated_ngram_share,
    text_share,
)


def test_truncated_only_on_length() -> None:
    assert is_truncated("length")
    assert not is_truncated("stop")
    assert not is_truncated(None)


def test_rep_n_hand_computed() -> None:
    # [1,2,3]*10 has 28 trigrams, 3 distinct: 1 - 3/28 = 25/28
    assert abs(repeated_ngram_share([1, 2, 3] * 10, 3) - 25 / 28) < 1e-12
    # 20 distinct tokens: every bigram new, rep-2 = 0
    assert repeated_ngram_share(list(range(20)), 2) == 0.0
    # too short to judge: 5 tokens give 4 bigrams < MIN_NGRAMS
    assert repeated_ngram_share([1, 1, 1, 1, 1], 2) == 0.0


def test_long_period_loop_is_caught() -> None:
    rng = random.Random(0)
    intro = [rng.randrange(1000, 2000) for _ in range(100)]
    loop = [rng.randrange(3000, 4000) for _ in range(50)]  # a 50-token sentence, longer than n
    ids = intro + loop * 6  # 400 tokens; 381 20-grams; distinct = 100 + 50 = 150 (roughly)
    hit, share = is_repetitive("", ids, n=20, threshold=0.5)
    # distinct 20-grams: those starting in the intro (100) + one per loop phase (50) -> 150;
    # rep-20 = 1 - 150/381 = 0.606
    assert hit and abs(share - (1 - 150 / 381)) < 1e-9
    assert not is_repetitive("", intro + loop, n=20, threshold=0.5)[0]


def test_repetition_on_words_when_no_ids() -> None:
    looping = "Let me check again. " * 40
    assert is_repetitive(looping, None, n=4, threshold=0.5)[0]
    prose = " ".join(f"word{i}" for i in range(200))
    assert not is_repetitive(prose, None, n=4, threshold=0.5)[0]


def test_garbage() -> None:
    assert is_garbage(None, "anything", None)
    assert is_garbage("  ", "anything", None)
    assert not is_garbage("5", "clean text", 0.8)
    noise = "答案是 ☃☃☃ Ж ع \ufffd\ufffd\ufffd\x00\x01" * 10
    assert text_share(noise) < 0.8
    assert is_garbage("5", noise, 0.8)
    assert not is_garbage("5", noise, None)  # the text check is off by default


def test_text_share_accepts_one_foreign_script_and_maths() -> None:
    assert text_share("所以答案是五，对吧") == 1.0  # one script: text (Chinese)
    assert text_share("x ≤ 3 and θ = π/2 ∈ ℝ") > 0.9
    # 10 ASCII letters and 10 replacement characters: half is noise
    assert text_share("abcdefghij" + "\ufffd" * 10) == 0.5
