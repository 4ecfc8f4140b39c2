"""HFEngine: grouping, finish reasons, stop strings, padding, determinism, mode handling."""

from __future__ import annotations

import sys

import pytest
import torch
from controlled_lm import scripted_model
from rounding import logprob_tolerance

from t1.config import RolloutConfig
from t1.errors import T1Error
from t1.rollout import HFEngine, RolloutEngine, SamplingParams, collate_rollouts, make_engine
from t1.rollout.hf import should_compact

PROMPTS = ["<user>1+1=?<assistant>", "<user>12*3=?<assistant>", "<user>7<assistant>"]


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def chaotic_model(tokenizer) -> torch.nn.Module:
    """Untied embeddings with large weights: greedy outputs vary from prompt to prompt (a tied
    random tiny model greedily repeats its last input token)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        tie_word_embeddings=False,
        initializer_range=0.5,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return LlamaForCausalLM(config)


def test_k_samples_grouped_by_prompt(tiny_model, tiny_tokenizer):
    engine = HFEngine(tiny_model, tiny_tokenizer, batch_size=5)  # batches cut across groups
    out = engine.generate(PROMPTS, 4, SamplingParams(max_new_tokens=6, seed=0))
    assert isinstance(engine, RolloutEngine)
    assert [r.prompt_index for r in out] == [0] * 4 + [1] * 4 + [2] * 4
    assert [r.meta["sample_index"] for r in out] == [0, 1, 2, 3] * 3
    for r in out:
        assert r.prompt_ids == ids(tiny_tokenizer, PROMPTS[r.prompt_index])
        assert len(r.logprobs) == len(r.response_ids) >= 1


def test_finish_reasons_match_tokens(tiny_model, tiny_tokenizer):
    # a random 100-token vocabulary ends with eos ~1 % of the time per token: both reasons occur
    engine = HFEngine(tiny_model, tiny_tokenizer)
    out = engine.generate(PROMPTS, 16, SamplingParams(max_new_tokens=40, seed=3))
    eos = tiny_tokenizer.eos_token_id
    reasons = {r.finish_reason for r in out}
    assert reasons == {"stop", "length"}
    for r in out:
        if r.finish_reason == "stop":
            assert r.response_ids[-1] == eos and eos not in r.response_ids[:-1]
        else:
            assert len(r.response_ids) == 40 and eos not in r.response_ids
        assert r.text == tiny_tokenizer.decode(r.response_ids, skip_special_tokens=True)


def test_eos_stops_and_is_kept_in_ids_not_text(tiny_tokenizer):
    script = ids(tiny_tokenizer, "ok") + [tiny_tokenizer.eos_token_id] + ids(tiny_tokenizer, "zz")
    model = scripted_model(tiny_tokenizer, script)
    (r,) = HFEngine(model, tiny_tokenizer).generate(["x"], 1, SamplingParams(max_new_tokens=9))
    assert r.response_ids == script[:3]
    assert r.text == "ok" and r.finish_reason == "stop"


def test_length_when_max_new_tokens_reached(tiny_tokenizer):
    model = scripted_model(tiny_tokenizer, ids(tiny_tokenizer, "abcdefgh"))
    (r,) = HFEngine(model, tiny_tokenizer).generate(["x"], 1, SamplingParams(max_new_tokens=5))
    assert r.text == "abcde" and r.finish_reason == "length"


def test_stop_string_cuts_text_and_tokens(tiny_tokenizer):
    model = scripted_model(tiny_tokenizer, ids(tiny_tokenizer, "so 4 ## END; more text"))
    sp = SamplingParams(max_new_tokens=20, stop=["END", "never"])
    out = HFEngine(model, tiny_tokenizer).generate(["x", "y"], 2, sp)
    for r in out:
        assert r.text == "so 4 ## END"
        assert r.response_ids == ids(tiny_tokenizer, "so 4 ## END")
        assert r.finish_reason == "stop"


def test_earliest_stop_string_wins(tiny_tokenizer):
    model = scripted_model(tiny_tokenizer, ids(tiny_tokenizer, "a; b. c"))
    sp = SamplingParams(max_new_tokens=20, stop=[".", ";"])
    (r,) = HFEngine(model, tiny_tokenizer).generate(["x"], 1, sp)
    assert r.text == "a;" and r.finish_reason == "stop"


def test_stop_string_on_last_allowed_token_is_stop(tiny_tokenizer):
    model = scripted_model(tiny_tokenizer, ids(tiny_tokenizer, "abcXYZ"))
    sp = SamplingParams(max_new_tokens=4, stop=["X"])
    (r,) = HFEngine(model, tiny_tokenizer).generate(["x"], 1, sp)
    assert r.text == "abcX" and r.finish_reason == "stop"


@pytest.mark.numerics
def test_left_padding_gives_same_greedy_output_as_alone(tiny_tokenizer):
    greedy = SamplingParams(temperature=0.0, max_new_tokens=12)
    engine = HFEngine(chaotic_model(tiny_tokenizer), tiny_tokenizer)
    together = engine.generate(PROMPTS, 1, greedy)
    assert len({tuple(r.response_ids) for r in together}) == len(PROMPTS)  # not degenerate
    # padded or alone: two paths to a log-prob, within tests/rounding.py's bound (n:
    # logprob_terms, m: path_magnitude, large here: weights of std 0.5)
    atol = logprob_tolerance(engine.model, collate_rollouts(together, 0).input_ids)
    for i, prompt in enumerate(PROMPTS):
        (alone,) = engine.generate([prompt], 1, greedy)
        assert together[i].response_ids == alone.response_ids
        assert together[i].logprobs == pytest.approx(alone.logprobs, rel=0, abs=atol)


def test_seed_makes_calls_reproducible(tiny_model, tiny_tokenizer):
    engine = HFEngine(tiny_model, tiny_tokenizer, batch_size=4)
    sp = SamplingParams(temperature=1.2, top_p=0.9, max_new_tokens=10, seed=7)
    a = engine.generate(PROMPTS, 3, sp)
    b = engine.generate(PROMPTS, 3, sp)
    c = engine.generate(PROMPTS, 3, SamplingParams(temperature=1.2, max_new_tokens=10, seed=8))
    assert [r.response_ids for r in a] == [r.response_ids for r in b]
    assert [r.response_ids for r in a] != [r.response_ids for r in c]


def test_seed_none_follows_global_rng(tiny_model, tiny_tokenizer):
    engine = HFEngine(tiny_model, tiny_tokenizer)
    sp = SamplingParams(max_new_tokens=8)
    torch.manual_seed(11)
    a = engine.generate(PROMPTS, 2, sp)
    torch.manual_seed(11)
    b = engine.generate(PROMPTS, 2, sp)
    assert [r.response_ids for r in a] == [r.response_ids for r in b]


@pytest.mark.parametrize("training", [True, False])
def test_mode_restored_and_no_grad(tiny_model, tiny_tokenizer, training):
    tiny_model.train(training)
    threads = torch.get_num_threads()
    engine = HFEngine(tiny_model, tiny_tokenizer)  # generates with 1 thread (a small model)
    engine.generate(PROMPTS[:1], 2, SamplingParams(max_new_tokens=4, seed=0))
    assert tiny_model.training is training
    assert torch.get_num_threads() == threads
    assert all(p.grad is None for p in tiny_model.parameters())


def test_update_weights_shares_the_module(tiny_model, tiny_tokenizer):
    cfg = RolloutConfig(engine="hf", batch_size=8, hf_threads=3)
    engine = make_engine(cfg, tiny_model, tiny_tokenizer)
    assert engine.model is tiny_model and engine.batch_size == 8 and engine.num_threads == 3
    other = torch.nn.Linear(1, 1)
    engine.update_weights(other)
    assert engine.model is other


def test_vllm_missing_is_a_clear_error(tiny_model, tiny_tokenizer, monkeypatch):
    monkeypatch.setitem(sys.modules, "t1.rollout.vllm", None)  # import now raises ImportError
    with pytest.raises(T1Error, match="vLLM"):
        make_engine(RolloutConfig(engine="vllm"), tiny_model, tiny_tokenizer)


@pytest.mark.parametrize(
    "field, value", [("temperature", -1.0), ("top_p", 0.0), ("min_p", 1.0), ("max_new_tokens", 0)]
)
def test_bad_sampling_values_are_errors(tiny_model, tiny_tokenizer, field, value):
    sp = SamplingParams(**{field: value})
    with pytest.raises(T1Error, match=field):
        HFEngine(tiny_model, tiny_tokenizer).generate(PROMPTS, 1, sp)


@pytest.mark.parametrize(
    "n_rows, n_alive, steps_left, expected",
    [
        (64, 64, 100, False),  # nothing finished
        (64, 63, 100, True),  # 1 dead row x 100 steps = 100 row-steps >= 64 (one full step)
        (64, 63, 50, False),  # 1 x 50 = 50 < 64
        (64, 32, 2, True),  # 32 x 2 = 64 >= 64
        (64, 0, 0, False),  # no step left to save
    ],
)
def test_should_compact(n_rows, n_alive, steps_left, expected):
    assert should_compact(n_rows, n_alive, steps_left) is expected


def first_positions(rollouts) -> dict[int, set[int]]:
    """token id -> the set of positions at which it first occurs in each response."""
    seen: dict[int, set[int]] = {}
    for r in rollouts:
        for tok in set(r.response_ids):
            seen.setdefault(tok, set()).add(r.response_ids.index(tok))
    return seen


@pytest.mark.numerics
def test_dropping_finished_rows_changes_no_other_row(tiny_tokenizer):
    # greedy decoding does not depend on the batch; declaring as an extra eos a token that greedy
    # emits at different steps in different rows makes the rows finish at different steps
    prompts = [f"<user>{i}*{i}+{7 * i}<assistant>" for i in range(8)]
    model = chaotic_model(tiny_tokenizer)
    engine = HFEngine(model, tiny_tokenizer)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=24)
    free = engine.generate(prompts, 1, greedy)
    spread = {t: len(p) for t, p in first_positions(free).items()}
    extra_eos = max(spread, key=spread.get)
    assert spread[extra_eos] > 1
    eos = tiny_tokenizer.eos_token_id
    model.generation_config.eos_token_id = [eos, extra_eos]
    results = {}
    for cost in (0.0, 1e9):  # compact at every finish / never
        engine.compact_cost = cost
        results[cost] = engine.generate(prompts, 1, greedy)
    assert len({len(r.response_ids) for r in results[0.0]}) > 1
    # compacted or not: other batch shapes, within tests/rounding.py's bound for a log-prob
    atol = logprob_tolerance(model, collate_rollouts(free, 0).input_ids)
    for a, b, f in zip(results[0.0], results[1e9], free):
        assert a.response_ids == b.response_ids
        assert a.logprobs == pytest.approx(b.logprobs, rel=0, abs=atol)
        ends = [f.response_ids.index(t) + 1 for t in (extra_eos, eos) if t in f.response_ids]
        assert a.response_ids == f.response_ids[: min(ends, default=24)]
        assert a.finish_reason == ("stop" if ends else "length")
