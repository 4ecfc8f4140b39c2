"""The vLLM engine's CPU-side pieces: selection, errors, parameter and output mapping."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from t1.config import RolloutConfig
from t1.errors import T1Error
from t1.rollout import SamplingParams, make_engine
from t1.rollout.vllm import rollouts_from_outputs, vllm_sampling_kwargs

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here: the missing-package error can't show")
def test_vllm_engine_without_vllm_is_a_clear_error(tiny_model, tiny_tokenizer):
    with pytest.raises(T1Error, match=r"rollout.engine=vllm needs the vllm package.*engine=hf"):
        make_engine(RolloutConfig(engine="vllm"), tiny_model, tiny_tokenizer)


def test_hf_engine_is_selected_by_default(tiny_model, tiny_tokenizer):
    engine = make_engine(RolloutConfig(), tiny_model, tiny_tokenizer)
    assert type(engine).__name__ == "HFEngine"


def test_sampling_kwargs_follow_t1_sampling():
    kw = vllm_sampling_kwargs(
        SamplingParams(
            temperature=1.2, top_p=0.9, min_p=0.05, max_new_tokens=77, stop=["\n\n"], seed=3
        ),
        n=64,
    )
    assert kw == dict(
        n=64,
        temperature=1.2,
        top_p=0.9,
        min_p=0.05,
        max_tokens=77,
        stop=["\n\n"],
        include_stop_str_in_output=True,
        seed=3,
        logprobs=0,
    )
    assert vllm_sampling_kwargs(SamplingParams(), 2)["stop"] is None


def _completion(ids, text, reason, lps):
    return SimpleNamespace(
        token_ids=ids,
        text=text,
        finish_reason=reason,
        logprobs=[{t: SimpleNamespace(logprob=lp)} for t, lp in zip(ids, lps)],
    )


def test_outputs_become_grouped_rollouts():
    outputs = [
        SimpleNamespace(
            prompt_token_ids=[1, 2],
            outputs=[
                _completion([5, 6], "ab", "stop", [-0.1, -0.2]),
                _completion([7], "c", "length", [-1.5]),
            ],
        ),
        SimpleNamespace(
            prompt_token_ids=[3],
            outputs=[
                _completion([8, 9, 10], "xyz", "abort", [-0.3, -0.4, -0.5]),
            ],
        ),
    ]
    rs = rollouts_from_outputs(outputs)
    assert [r.prompt_index for r in rs] == [0, 0, 1]
    assert rs[0].prompt_ids == [1, 2] and rs[0].response_ids == [5, 6]
    assert rs[0].logprobs == [-0.1, -0.2] and rs[0].finish_reason == "stop"
    assert rs[1].finish_reason == "length" and rs[1].text == "c"
    assert rs[2].finish_reason == "stop"  # anything but "length" ended on its own


def test_missing_logprobs_are_an_error():
    bad = [
        SimpleNamespace(
            prompt_token_ids=[1],
            outputs=[SimpleNamespace(token_ids=[2], text="x", finish_reason="stop", logprobs=None)],
        )
    ]
    with pytest.raises(T1Error, match="log-probs"):
        rollouts_from_outputs(bad)
