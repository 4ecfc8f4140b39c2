"""Masking, packing and the per-token loss of SFT (t1.train.packing)."""

from __future__ import annotations

import math

import pytest
import torch
from rounding import assert_grads_close, bound, grad_terms, largest_logprob, logprob_tolerance

from t1.train.packing import (
    IGNORE,
    Example,
    batch_loss,
    collate,
    encode_example,
    fingerprint,
    loss_tokens,
    make_batch,
    masked_token_loss,
    pack_rows,
    response_suffix,
    split_micro,
)


def test_pack_rows_first_fit_decreasing():
    # sorted: 5 (i0), 4 (i2), 3 (i1), 2 (i3); capacity 7:
    # 5 -> row A (2 left); 4 -> row B (3 left); 3 -> row B (0 left); 2 -> row A (0 left)
    assert pack_rows([5, 3, 4, 2], 7) == [[0, 3], [2, 1]]
    # a sequence as long as the row gets a row of its own
    assert pack_rows([7, 1], 7) == [[0], [1]]


def test_collate_packs_rows_no_longer_than_the_longest_sequence():
    exs = [Example(list(range(6, 6 + n)), 1) for n in (10, 4, 5, 3)]
    batch = collate(exs, pack=True, max_len=100, pad_id=0)
    # capacity 10: [10], [5 + 4], [3] (FFD); rows padded to the longest row, 10
    assert batch.input_ids.shape == (3, 10)
    assert batch.position_ids[1].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 0]
    unpacked = collate(exs, pack=False, max_len=100, pad_id=0)
    assert unpacked.input_ids.shape == (4, 10)
    assert batch.n_tokens == unpacked.n_tokens == 22


def test_make_batch_positions_labels_and_padding():
    a = Example(ids=[10, 11, 12, 13], n_prompt=2)  # prompt 10 11, response 12 13
    b = Example(ids=[20, 21, 22], n_prompt=1)  # prompt 20, response 21 22
    c = Example(ids=[30, 31], n_prompt=1)
    batch = make_batch([a, b, c], [[0, 1], [2]], pad_id=0)
    assert batch.input_ids.tolist() == [[10, 11, 12, 13, 20, 21, 22], [30, 31, 0, 0, 0, 0, 0]]
    # positions restart at each sequence; padding is a segment of its own
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 0, 1, 2], [0, 1, 0, 1, 2, 3, 4]]
    # position t predicts token t+1 of the same sequence, response tokens only:
    # a: 10->11 is prompt (no loss), 11->12, 12->13, 13 ends a;  b: 20->21, 21->22, 22 ends b
    x = IGNORE
    assert batch.labels.tolist() == [[x, 12, 13, x, 21, 22, x], [31, x, x, x, x, x, x]]
    assert batch.n_tokens == 9
    assert loss_tokens([a, b, c]) == 2 + 2 + 1 == int((batch.labels != IGNORE).sum())


def test_masked_loss_against_hand_values():
    # uniform logits over V = 4 give -log(1/4) = log 4 per target; 3 targets, normalised by 6
    logits = torch.zeros(1, 4, 4)
    labels = torch.tensor([[IGNORE, 1, 2, 3]])
    loss = masked_token_loss(logits, labels, normaliser=6)
    # ~6 float32 roundings of positive values: relative error <= 6·EPS32/2 = 3.6e-7 < 1e-6
    assert loss.item() == pytest.approx(3 * math.log(4) / 6, rel=1e-6)
    # a confident right answer on one target: logit 10 on the label, 0 elsewhere
    logits[0, 1, 1] = 10.0
    expected = (-math.log(math.exp(10) / (math.exp(10) + 3)) + 2 * math.log(4)) / 3
    # its loss log(1 + 3e^-10) = 1.4e-4 comes out of sums at magnitude up to 10 (the logit):
    # ~8 roundings at magnitude <= 10
    assert masked_token_loss(logits, labels, 3).item() == pytest.approx(expected, abs=bound(8, 10))


def test_prompt_tokens_carry_no_loss_or_gradient(tiny_model):
    """Changing prompt *targets* leaves the loss unchanged; logits at prompt positions get no grad."""
    ex = Example(ids=[7, 8, 9, 10, 11, 12], n_prompt=4)
    batch = collate([ex], pack=True, max_len=64, pad_id=0)
    out = tiny_model(
        input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False
    ).logits
    out.retain_grad()
    loss = masked_token_loss(out, batch.labels, loss_tokens([ex]))
    loss.backward()
    grad_rows = out.grad[0].abs().sum(-1)  # (T,)
    # positions 0..2 predict prompt tokens 8, 9, 10; position 5 predicts nothing
    assert grad_rows[:3].eq(0).all() and grad_rows[5] == 0
    assert grad_rows[3] > 0 and grad_rows[4] > 0  # they predict response tokens 11, 12


def _examples(rng: torch.Generator, n: int) -> list[Example]:
    out = []
    for _ in range(n):
        length = int(torch.randint(6, 40, (1,), generator=rng))
        n_prompt = int(torch.randint(1, length - 1, (1,), generator=rng))
        out.append(Example(torch.randint(6, 90, (length,), generator=rng).tolist(), n_prompt))
    return out


def _loss_and_grads(model, batches, normaliser):
    model.zero_grad()
    total = 0.0
    for b in batches:
        loss = batch_loss(model, b, normaliser)
        loss.backward()
        total += loss.item()
    return total, {k: p.grad.clone() for k, p in model.named_parameters()}


def _assert_same_loss_and_grads(model, a, b, examples) -> None:
    """Two summation orders of one loss (the mean of the targets' −log p) and its gradient,
    within the float32 bounds of tests/rounding.py (n roundings at magnitude m differ by
    <= n·EPS32·m): each −log p moves by <= d (n: logprob_terms, m: path_magnitude) and the mean
    over the targets rounds at magnitude <= L; a gradient entry retraces a log-prob's path
    forward and back and sums over every position of the examples."""
    rows = collate(examples, pack=False, max_len=80, pad_id=0)
    d = logprob_tolerance(model, rows.input_ids)
    L = largest_logprob(model, rows.input_ids, 1.0)
    assert a[0] == pytest.approx(b[0], rel=0, abs=d + bound(loss_tokens(examples), L))
    P = rows.input_ids.shape[1]
    assert_grads_close(a[1], b[1], grad_terms(model.config, P, rows.input_ids.numel()))


@pytest.mark.numerics
def test_packed_and_unpacked_batches_give_the_same_loss_and_gradient(tiny_model):
    exs = _examples(torch.Generator().manual_seed(0), 9)
    n = loss_tokens(exs)
    packed = collate(exs, pack=True, max_len=80, pad_id=0)
    unpacked = collate(exs, pack=False, max_len=80, pad_id=0)
    assert packed.input_ids.shape[0] < unpacked.input_ids.shape[0] == 9
    packed_out = _loss_and_grads(tiny_model, [packed], n)
    unpacked_out = _loss_and_grads(tiny_model, [unpacked], n)
    # same tokens and targets; only the float summation order differs
    _assert_same_loss_and_grads(tiny_model, packed_out, unpacked_out, exs)


@pytest.mark.numerics
def test_micro_batching_does_not_change_loss_or_gradient(tiny_model):
    """Gradient accumulation over 3 micro-batches == one batch (loss normalised by the step's N)."""
    exs = _examples(torch.Generator().manual_seed(1), 9)
    n = loss_tokens(exs)
    whole = [collate(exs, True, 80, 0)]
    parts = [collate(c, True, 80, 0) for c in split_micro(exs, 3)]
    whole_out = _loss_and_grads(tiny_model, whole, n)
    parts_out = _loss_and_grads(tiny_model, parts, n)
    _assert_same_loss_and_grads(tiny_model, whole_out, parts_out, exs)


@pytest.mark.numerics
def test_packed_sequences_do_not_see_each_other(tiny_model):
    """Rewriting sequence A changes nothing in the per-token loss of B packed after it."""
    b_ex = Example([40, 41, 42, 43, 44, 45], 2)
    b_alone = collate([b_ex], True, 64, 0)
    reference = batch_loss(tiny_model, b_alone, 1).item()
    for a_ids in ([10, 11, 12], [60, 61, 62, 63, 64, 65, 66]):
        row = make_batch([Example(a_ids, len(a_ids)), b_ex], [[0, 1]], 0)
        assert row.input_ids.shape == (1, len(a_ids) + 6)
        # A contributes no loss (all prompt), so the row's loss is B's alone: B's 4 targets'
        # −log p, each within d (tests/rounding.py), summed (normaliser 1) at magnitude <= 4·L
        d = logprob_tolerance(tiny_model, row.input_ids)
        tol = 4 * d + bound(4, 4 * largest_logprob(tiny_model, row.input_ids, 1.0))
        assert batch_loss(tiny_model, row, 1).item() == pytest.approx(reference, rel=0, abs=tol)


def test_encode_example_and_tiny_chat_suffix(tiny_tokenizer):
    assert response_suffix(tiny_tokenizer, chat=True) == "<eos>"
    assert response_suffix(tiny_tokenizer, chat=False) == "<eos>"
    ex = encode_example(tiny_tokenizer, "<user>1+1<assistant>", "2<eos>")
    assert ex.n_prompt == 5  # <user>, "1", "+", "1", <assistant>: one token each
    assert len(ex.ids) == 5 + 2  # "2" and <eos>
    assert ex.ids[-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(ex.ids[ex.n_prompt :]) == "2<eos>"


def test_split_micro_and_fingerprint():
    assert split_micro(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_micro([1, 2], 5) == [[1], [2]]  # never an empty micro-batch
    a = [Example([1, 2, 3], 1)]
    assert fingerprint(a) == fingerprint([Example([1, 2, 3], 1)])
    assert fingerprint(a) != fingerprint([Example([1, 2, 3], 2)])
