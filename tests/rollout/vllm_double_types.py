"""The vLLM double's data types: mirrored attribute access, SamplingParams, outputs.

See vllm_double.py. Each class answers only the attributes it mirrors from vLLM 0.32-0.34 (the
file named beside it); `state(obj)` reaches the double's internals, for tests only.
"""

from __future__ import annotations

from typing import Any


class Mirrored:
    """Attribute access limited to the names a class mirrors (`API`); internals live in `_d`."""

    API: frozenset[str] = frozenset()

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("__") or name in type(self).API:
            return object.__getattribute__(self, name)
        raise AttributeError(
            f"vLLM double: {type(self).__name__}.{name} is not part of the vLLM 0.32-0.34 API "
            "mirrored here (mirror it from vLLM's source, citing the file, before using it)"
        )


def state(obj: Mirrored) -> Any:
    """The double's internal state of `obj`, for test assertions only."""
    return object.__getattribute__(obj, "_d")


def set_attrs(obj: Mirrored, **values: Any) -> None:
    """Store fields on a mirrored object (only reads are restricted)."""
    for k, v in values.items():
        object.__setattr__(obj, k, v)


class Logprob(Mirrored):
    API = frozenset({"logprob", "rank", "decoded_token"})  # vllm/logprobs.py Logprob

    def __init__(self, logprob: float, rank: int | None = None, decoded_token: str | None = None):
        set_attrs(self, logprob=logprob, rank=rank, decoded_token=decoded_token)


class CompletionOutput(Mirrored):
    # vllm/outputs.py CompletionOutput (fields t1 may read)
    API = frozenset(
        {"index", "text", "token_ids", "cumulative_logprob", "logprobs", "finish_reason"}
        | {"stop_reason"}
    )

    def __init__(self, **fields: Any):
        set_attrs(self, **fields)


class RequestOutput(Mirrored):
    # vllm/outputs.py RequestOutput.__init__ (request_id, prompt, prompt_token_ids,
    # prompt_logprobs, outputs, finished, ...)
    API = frozenset(
        {"request_id", "prompt", "prompt_token_ids", "prompt_logprobs", "outputs", "finished"}
    )

    def __init__(self, **fields: Any):
        set_attrs(self, **fields)


class SamplingParams(Mirrored):
    """vllm/sampling_params.py SamplingParams: a msgspec Struct, keyword fields with defaults."""

    FIELDS = {  # name -> default, as declared there
        "n": 1,
        "temperature": 1.0,
        "top_p": 1.0,
        "min_p": 0.0,
        "seed": None,
        "stop": None,
        "max_tokens": 16,
        "logprobs": None,
        "skip_special_tokens": True,
        "include_stop_str_in_output": False,
    }
    API = frozenset(FIELDS)

    def __init__(self, **kwargs: Any):
        for name in kwargs:
            if name not in SamplingParams.FIELDS:  # msgspec's message for an unknown field
                raise TypeError(f"Unexpected keyword argument '{name}'")
        values = {**SamplingParams.FIELDS, **kwargs}
        # __post_init__: tiny temperatures raised, stop normalised to a list, seed -1 is None
        if 0 < values["temperature"] < 1e-2:
            values["temperature"] = 1e-2
        stop = values["stop"]
        values["stop"] = [] if stop is None else [stop] if isinstance(stop, str) else list(stop)
        values["seed"] = None if values["seed"] == -1 else values["seed"]
        _verify_sampling(values)
        set_attrs(self, **values)


def _verify_sampling(v: dict[str, Any]) -> None:
    """SamplingParams._verify_args (vllm/sampling_params.py; VLLMValidationError there)."""
    checks = [
        (0.0 <= v["temperature"] <= 2.0, f"temperature must be in [0, 2], got {v['temperature']}."),
        (0.0 < v["top_p"] <= 1.0, f"top_p must be in (0, 1], got {v['top_p']}."),
        (0.0 <= v["min_p"] <= 1.0, f"min_p must be in [0, 1], got {v['min_p']}."),
        (v["max_tokens"] is None or v["max_tokens"] >= 1, "max_tokens must be at least 1"),
        (v["n"] >= 1, f"n must be at least 1, got {v['n']}."),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def vars_of(params: SamplingParams) -> dict[str, Any]:
    return {k: object.__getattribute__(params, k) for k in SamplingParams.FIELDS}


def completion_output(index: int, c: Any, params: Any, tokenizer: Any) -> CompletionOutput:
    logprobs = None
    if params.logprobs is not None:  # vllm/logprobs.py: one {id: Logprob} per position
        logprobs = [
            {tok: Logprob(lp, rank, tokenizer.decode([tok]))}
            for tok, (lp, rank) in zip(c.token_ids, c.logprobs)
        ]
    return CompletionOutput(
        index=index,
        text=c.text,
        token_ids=list(c.token_ids),
        cumulative_logprob=sum(lp for lp, _ in c.logprobs) if logprobs is not None else None,
        logprobs=logprobs,
        finish_reason=c.finish_reason,
        stop_reason=c.stop_reason,
    )
