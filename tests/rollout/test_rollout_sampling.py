"""The sampler draws from the requested distribution: temperature, top-p, min-p (statistical)."""

from __future__ import annotations

import math

import pytest
import torch
from controlled_lm import fixed_logits_model
from rounding import bound

from t1.rollout import HFEngine, SamplingParams
from t1.rollout.sampling import draw, filter_logits, sample_next, top_p_mask

CHARS = "abcde"
LOGITS = {"a": 2.0, "b": 1.0, "c": 0.0, "d": -1.0, "e": -2.0}


def first_token_freqs(tokenizer, sampling: SamplingParams, n: int = 4000) -> list[float]:
    """Empirical frequencies of a..e as the first response token, through the real engine."""
    model = fixed_logits_model(tokenizer, LOGITS)
    engine = HFEngine(model, tokenizer, batch_size=n)
    rollouts = engine.generate(["x"], n, sampling)
    counts = [sum(r.text == ch for r in rollouts) for ch in CHARS]
    assert sum(counts) == n  # nothing outside a..e is ever drawn
    return [c / n for c in counts]


def assert_close_to(freqs: list[float], expected: list[float], n: int = 4000) -> None:
    """Each frequency within 4.5 binomial standard deviations (plus a hair for p = 0)."""
    for f, p in zip(freqs, expected):
        sd = math.sqrt(p * (1 - p) / n)
        assert abs(f - p) <= 4.5 * sd + 1e-9, (freqs, expected)


@pytest.mark.parametrize(
    "sampling, expected",
    [
        # T = 2: z = (1, .5, 0, -.5, -1); e^z = 2.718, 1.649, 1, .6065, .3679, sum 6.341
        (SamplingParams(temperature=2.0), [0.4287, 0.2600, 0.1577, 0.0957, 0.0580]),
        # T = 1: e^z = 7.389, 2.718, 1, .3679, .1353, sum 11.61 -> .6364 .2341 .0861 .0317 .0117;
        # top-p .7: a alone (.6364) < .7, a + b = .8705 >= .7 -> keep a, b: 7.389/10.107 = .7311
        (SamplingParams(temperature=1.0, top_p=0.7), [0.7311, 0.2689, 0.0, 0.0, 0.0]),
        # min-p .1: keep p >= .06364 -> a, b, c: 7.389, 2.718, 1 over 11.107
        (SamplingParams(temperature=1.0, min_p=0.1), [0.6652, 0.2447, 0.0900, 0.0, 0.0]),
        # T = .5: z = (4, 2, 0, -2, -4); e^z = 54.6, 7.389, 1, .1353, .0183, sum 63.14
        (SamplingParams(temperature=0.5), [0.8647, 0.1170, 0.0158, 0.0021, 0.0003]),
    ],
)
def test_engine_samples_follow_requested_distribution(tiny_tokenizer, sampling, expected):
    sampling.max_new_tokens = 1
    sampling.seed = 123
    assert_close_to(first_token_freqs(tiny_tokenizer, sampling), expected)


def test_reported_logprob_is_unfiltered_tempered(tiny_tokenizer):
    # with top-p .7 only a and b are drawn, but the reported log-prob is log softmax(z / T):
    # at T = 1, log(.6364) = -0.4519 for a and log(.2341) = -1.4519 for b
    model = fixed_logits_model(tiny_tokenizer, LOGITS)
    sp = SamplingParams(temperature=1.0, top_p=0.7, max_new_tokens=1, seed=0)
    rollouts = HFEngine(model, tiny_tokenizer).generate(["x"], 64, sp)
    lse = math.log(sum(math.exp(v) for v in LOGITS.values()))
    # log softmax over 5 finite logits: ~8 float32 roundings at magnitude <= |z − lse| <= 5
    # differ from the float64 value by <= 8·(EPS32/2)·5 = 2.4e-6
    for r in rollouts:
        assert r.logprobs[0] == pytest.approx(LOGITS[r.text] - lse, abs=1e-5)


def test_greedy_is_argmax():
    logits = torch.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 4.0]])
    tok, logp = sample_next(logits, temperature=0.0)
    assert tok.tolist() == [1, 0]
    # log softmax at T = 1: 3 - log(e^0 + e^3 + e^1) = 3 - 3.1698 = -0.1698
    assert logp[0].item() == pytest.approx(-0.16985, abs=1e-4)


def test_filter_keeps_top_token_even_for_tiny_top_p():
    z = torch.tensor([[0.0, 0.1, 0.2]])
    out = filter_logits(z, top_p=1e-6, min_p=0.0)
    assert torch.isfinite(out).tolist() == [[False, False, True]]


@pytest.mark.numerics
@pytest.mark.parametrize("scale", [8.0, 0.05])  # peaked: nucleus in the top 256; flat: not
def test_top_p_mask_matches_transformers_warper(scale):
    from transformers.generation.logits_process import TopPLogitsWarper

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(6, 5000, generator=gen) * scale
    ours = top_p_mask(z, 0.9)
    theirs = torch.isinf(TopPLogitsWarper(0.9)(torch.zeros(6, 1, dtype=torch.long), z.clone()))
    # both keep a token when the mass of the likelier tokens is < 0.9, summing float32
    # probabilities (<= 1) in different orders: a softmax normaliser and a cumulative sum, <= 2V
    # terms, differ by <= bound(2V, 1) = 1.2e-3. Only a token whose exact mass (float64) lies
    # that close to 0.9 may go either way.
    p = z.double().softmax(-1)
    sorted_p, order = p.sort(-1, descending=True)
    before = torch.empty_like(p).scatter_(-1, order, sorted_p.cumsum(-1) - sorted_p)
    either = (before - 0.9).abs() <= bound(2 * z.shape[-1], 1.0)
    assert torch.equal(ours[~either], theirs[~either]) and either.sum() < 0.01 * z.numel()
    kept = (~ours).sum(-1)
    assert (kept < 256).all() if scale > 1 else (kept > 256).all()


def test_draw_never_picks_a_zero_probability_token():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]] * 2000)
    tok = draw(probs, torch.Generator().manual_seed(1))
    assert set(tok.tolist()) == {1, 3}
    # 2000 draws of a fair choice: 1000 +- 4.5 * sqrt(2000 * .25) = 1000 +- 101
    assert abs((tok == 1).sum().item() - 1000) <= 101
