"""The vLLM engine's whole flow on CPU, against a double of vLLM 0.32-0.34 (vllm_double.py).

Build, generate, sleep, wake, update weights, their order, and the error paths, in one process;
tests/rollout/test_vllm_tp.py runs a two-process tensor-parallel group. The mapping of t1's
sampling parameters and of vLLM's outputs is checked at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import vllm_double  # noqa: E402
from rounding import logprob_tolerance  # noqa: E402

from t1.config import RolloutConfig  # noqa: E402
from t1.errors import ConfigError, T1Error  # noqa: E402
from t1.rollout import SamplingParams, collate_rollouts, compute_logprobs, make_engine  # noqa: E402
from t1.rollout.hf import encode_prompts  # noqa: E402
from t1.rollout.vllm import (  # noqa: E402
    VLLMEngine,
    check_version,
    rollouts_from_outputs,
    vllm_sampling_kwargs,
)

PROMPTS = ["<user>12+7=?<assistant>", "<user>hello<assistant>"]
SAMPLING = SamplingParams(temperature=1.2, max_new_tokens=12, seed=5)


@pytest.fixture
def double(monkeypatch):
    """The double as `vllm`, CUDA bypassed, in a process torchrun did not start."""
    with vllm_double.without_launcher_env():
        yield vllm_double.install(monkeypatch)


def _engine(model, tok, **cfg):
    return make_engine(RolloutConfig(engine="vllm", **cfg), model, tok)


def _calls(engine) -> list[tuple]:
    return [(name, kw) for name, kw in vllm_double.state(engine.llm).calls]


def _learner_logp(model, tok, rollouts, T):
    batch = collate_rollouts(rollouts, tok.pad_token_id)
    with torch.no_grad():
        learner = compute_logprobs(model, batch, T)
    R = batch.response_mask.shape[1]
    sampler = torch.tensor([r.logprobs + [0.0] * (R - len(r.logprobs)) for r in rollouts])
    m = batch.response_mask.bool()
    return (learner - sampler)[m].abs()


def _assert_engine_has_the_learners_logp(model, tok, rollouts, T) -> None:
    """The engine's reported log-probs are the learner's on the same float32 weights, computed
    on another path (KV-cache steps against one full pass): within tests/rounding.py's bound
    for one log-prob of `model` on these rows. An engine on other weights is off by 0.1-1
    nats, and the bound stays far below that."""
    d = logprob_tolerance(model, collate_rollouts(rollouts, tok.pad_token_id).input_ids, T)
    gap = float(_learner_logp(model, tok, rollouts, T).max())
    assert gap <= d < 0.01, f"engine and learner log-probs differ by {gap:.3g} (bound {d:.3g})"


def _perturb_(model, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a learner step: weights the engine does not have yet
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))


def test_build_uses_external_launcher_and_pushes_the_learners_weights(
    double, tiny_model, tiny_tokenizer
):
    engine = _engine(tiny_model, tiny_tokenizer)
    d = vllm_double.state(engine.llm)
    assert d.kwargs["distributed_executor_backend"] == "external_launcher"  # one process too
    assert d.kwargs["load_format"] == "dummy" and d.kwargs["logprobs_mode"] == "processed_logprobs"
    assert d.kwargs["enable_sleep_mode"] is True and d.kwargs["dtype"] == "float32"
    worker = vllm_double.state(d.worker)
    assert worker.loaded == [n for n, _ in tiny_model.named_parameters()]  # layer by layer
    for (_, theirs), mine in zip(worker.model.named_parameters(), tiny_model.parameters()):
        assert torch.equal(theirs, mine)
    assert [c[0] for c in _calls(engine)] == ["collective_rpc", "reset_prefix_cache"]
    engine.close()


@pytest.mark.numerics
def test_generate_returns_grouped_rollouts_with_the_learners_log_probs(
    double, tiny_model, tiny_tokenizer
):
    engine = _engine(tiny_model, tiny_tokenizer)
    rollouts = engine.generate(PROMPTS, 3, SAMPLING)
    assert [r.prompt_index for r in rollouts] == [0, 0, 0, 1, 1, 1]
    ids = encode_prompts(tiny_tokenizer, PROMPTS)
    assert [r.prompt_ids for r in rollouts] == [ids[0]] * 3 + [ids[1]] * 3
    assert all(1 <= len(r.response_ids) <= 12 for r in rollouts)
    assert len({tuple(r.response_ids) for r in rollouts}) > 1  # seed + i per sample
    _assert_engine_has_the_learners_logp(tiny_model, tiny_tokenizer, rollouts, 1.2)
    again = engine.generate(PROMPTS, 3, SAMPLING)
    assert [r.response_ids for r in again] == [r.response_ids for r in rollouts]  # seeded


@pytest.mark.numerics
def test_sleep_then_update_wakes_weights_first_and_the_next_rollout_uses_them(
    double, tiny_model, tiny_tokenizer
):
    engine = _engine(tiny_model, tiny_tokenizer)
    before = engine.generate(PROMPTS, 2, SAMPLING)
    engine.sleep()
    worker = vllm_double.state(vllm_double.state(engine.llm).worker)
    assert worker.asleep == {"weights", "kv_cache"} and worker.weights_lost  # level 2
    assert next(worker.model.parameters()).isnan().all()
    _perturb_(tiny_model, 1)
    start = len(_calls(engine))
    engine.update_weights(tiny_model)
    assert worker.asleep == {"kv_cache"}  # the KV cache stays released while weights move
    after = engine.generate(PROMPTS, 2, SAMPLING)
    assert [(c[0], c[1].get("tags", c[1].get("method"))) for c in _calls(engine)[start:]] == [
        ("wake_up", ["weights"]),
        ("collective_rpc", "reload_weights"),
        ("reset_prefix_cache", None),
        ("wake_up", ["kv_cache"]),
        ("generate", None),
    ]
    assert vllm_double.state(engine.llm).calls[start - 1] == ("sleep", {"level": 2})
    _assert_engine_has_the_learners_logp(tiny_model, tiny_tokenizer, after, 1.2)
    # the rollouts before the update came from other weights: far from the new learner
    assert _learner_logp(tiny_model, tiny_tokenizer, before, 1.2).max() > 0.01


@pytest.mark.numerics
def test_a_rollout_after_sleep_without_update_reloads_the_held_weights(
    double, tiny_model, tiny_tokenizer
):
    engine = _engine(tiny_model, tiny_tokenizer)
    engine.generate(PROMPTS, 2, SAMPLING)
    engine.sleep()  # e.g. a skipped (non-finite) step: no update follows
    rollouts = engine.generate(PROMPTS, 2, SAMPLING)
    _assert_engine_has_the_learners_logp(tiny_model, tiny_tokenizer, rollouts, 1.2)


@pytest.mark.numerics
def test_without_sleep_mode_nothing_sleeps_and_the_prefix_cache_is_reset(
    double, tiny_model, tiny_tokenizer
):
    engine = _engine(tiny_model, tiny_tokenizer, sleep_between_steps=False)
    engine.generate(PROMPTS, 2, SAMPLING)
    engine.sleep()
    _perturb_(tiny_model, 2)
    engine.update_weights(tiny_model)
    rollouts = engine.generate(PROMPTS, 2, SAMPLING)
    names = [c[0] for c in _calls(engine)]
    assert "sleep" not in names and "wake_up" not in names
    _assert_engine_has_the_learners_logp(tiny_model, tiny_tokenizer, rollouts, 1.2)


# ---------------------------------------------------------------- what the double catches


class RemovedAttribute(VLLMEngine):
    """Reaches for `LLM.set_tokenizer`, which vLLM removed before 0.32."""

    def generate(self, prompts, n, sampling):
        self.llm.set_tokenizer(self.tokenizer)
        return super().generate(prompts, n, sampling)


class RemovedKeyword(VLLMEngine):
    """Passes token ids as `generate(prompt_token_ids=...)`, a keyword gone before 0.32."""

    def generate(self, prompts, n, sampling):
        ids = encode_prompts(self.tokenizer, prompts)
        params = sys.modules["vllm"].SamplingParams(**vllm_sampling_kwargs(sampling, n))
        return rollouts_from_outputs(self.llm.generate(None, params, prompt_token_ids=ids))


class NoPrefixReset(VLLMEngine):
    """Updates the weights but keeps the prefix cache computed with the old ones."""

    def update_weights(self, model):
        self._wake("weights")
        weights = [(n, p.detach()) for n, p in model.named_parameters()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights)})
        self.model, self._weights_current = model, True


def test_an_engine_reaching_for_an_attribute_vllm_lacks_fails(double, tiny_model, tiny_tokenizer):
    engine = RemovedAttribute(RolloutConfig(engine="vllm"), tiny_model, tiny_tokenizer)
    with pytest.raises(AttributeError, match=r"LLM\.set_tokenizer is not part of the vLLM"):
        engine.generate(PROMPTS, 2, SAMPLING)
    engine = RemovedKeyword(RolloutConfig(engine="vllm"), tiny_model, tiny_tokenizer)
    with pytest.raises(TypeError, match="prompt_token_ids"):
        engine.generate(PROMPTS, 2, SAMPLING)


def test_an_engine_without_the_prefix_cache_reset_fails(double, tiny_model, tiny_tokenizer):
    cfg = RolloutConfig(engine="vllm", sleep_between_steps=False)
    engine = NoPrefixReset(cfg, tiny_model, tiny_tokenizer)
    engine.generate(PROMPTS, 2, SAMPLING)
    engine.update_weights(tiny_model)
    with pytest.raises(RuntimeError, match="prefix cache not reset"):
        engine.generate(PROMPTS, 2, SAMPLING)


def test_without_external_launcher_the_in_memory_update_fails(double, tiny_model, tiny_tokenizer):
    # the engine before this design: one process, default backend, so vLLM's engine core is
    # another process and the weights iterator would have to be serialised
    llm = double.LLM(
        model=_folder(tiny_model, tiny_tokenizer), dtype="float32", load_format="dummy"
    )
    weights = ((n, p.detach()) for n, p in tiny_model.named_parameters())
    with pytest.raises(TypeError, match="generator"):
        llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})


def test_the_double_refuses_discarded_weights_and_sleeping_generation(
    double, tiny_model, tiny_tokenizer
):
    llm = _engine(tiny_model, tiny_tokenizer).llm
    params = double.SamplingParams(max_tokens=2)
    llm.sleep(level=2)
    with pytest.raises(RuntimeError, match="while .* sleep"):
        llm.generate([{"prompt_token_ids": [3, 4]}], params)
    llm.wake_up()
    with pytest.raises(RuntimeError, match="without new weights"):
        llm.generate([{"prompt_token_ids": [3, 4]}], params)


def _folder(model, tok) -> str:
    import tempfile

    from t1.rollout.vllm import _write_model_folder

    path = tempfile.mkdtemp(prefix="t1-double-")
    _write_model_folder(model, tok, path)
    return path


# ---------------------------------------------------------------- error paths


def test_without_vllm_is_a_clear_error(monkeypatch, tiny_model, tiny_tokenizer):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    with pytest.raises(T1Error, match=r"rollout.engine=vllm needs the vllm package.*engine=hf"):
        make_engine(RolloutConfig(engine="vllm"), tiny_model, tiny_tokenizer)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: no error to show")
def test_without_cuda_is_a_clear_error(monkeypatch, tiny_model, tiny_tokenizer):
    monkeypatch.setitem(sys.modules, "vllm", vllm_double.module())  # check_cuda not bypassed
    with pytest.raises(T1Error, match="needs a CUDA GPU"):
        make_engine(RolloutConfig(engine="vllm"), tiny_model, tiny_tokenizer)


def test_a_world_that_is_not_a_multiple_of_the_tp_size_is_a_config_error(
    double, tiny_model, tiny_tokenizer
):
    with pytest.raises(ConfigError, match="tensor_parallel_size=2 must divide the world size 1"):
        _engine(tiny_model, tiny_tokenizer, tensor_parallel_size=2)


def test_an_unchecked_vllm_release_warns():
    check_version("0.34.0")  # checked: silent
    with pytest.warns(UserWarning, match=r"vLLM 0\.35\.1: .*checked against vLLM 0\.32"):
        check_version("0.35.1")


def test_hf_engine_is_selected_by_default(tiny_model, tiny_tokenizer):
    engine = make_engine(RolloutConfig(), tiny_model, tiny_tokenizer)
    assert type(engine).__name__ == "HFEngine"


# ---------------------------------------------------------------- parameter and output mapping


def test_sampling_kwargs_follow_t1_sampling(double):
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
    double.SamplingParams(**kw)  # every key is a field of vLLM's SamplingParams


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
            outputs=[_completion([8, 9, 10], "xyz", "abort", [-0.3, -0.4, -0.5])],
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
