"""A test double of vLLM 0.32–0.34, built from their source: the API t1's engine uses, no more.

Every class, method, signature, default and attribute here mirrors vLLM's; the comment on each
names the file it comes from (the same in the 0.32.0, 0.33.0 and 0.34.0 wheels unless a
version is named). Objects answer only the attributes they mirror: anything else raises
AttributeError, so a test fails when the engine reaches for something these versions lack (or
that the double has not mirrored: mirror it from vLLM's source first). Where vLLM would hang,
crash or silently compute garbage, the double raises instead and says so ("stricter").

What runs for real: the engine's model is a transformers model built from the folder t1 wrote,
it samples on CPU (`vllm_double_sampling`), takes weights through the worker's
`reload_weights`, and loses them when put to sleep at level 2 (set to NaN).

    install(monkeypatch)   # sys.modules["vllm"] = the double; t1's check_cuda bypassed
    state(llm)             # the double's internals, for assertions (not part of the mirror)
"""

from __future__ import annotations

import os
import pickle
import sys
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
from vllm_double_sampling import sample_request
from vllm_double_types import (
    Mirrored,
    RequestOutput,
    SamplingParams,
    completion_output,
    set_attrs,
    state,
    vars_of,
)

VERSION = "0.34.0"
SLEEP_TAGS = frozenset(("weights", "kv_cache"))  # vllm/v1/executor/abstract.py SLEEP_TAGS
# vllm/config/parallel.py DistributedExecutorBackend
BACKENDS = (None, "ray", "mp", "uni", "external_launcher")
# vllm/config/model.py LogprobsMode
LOGPROBS_MODES = ("raw_logits", "raw_logprobs", "processed_logits", "processed_logprobs")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# vllm/engine/arg_utils.py EngineArgs fields t1 passes through LLM(**kwargs), and their defaults
ENGINE_ARGS = {
    "load_format": "auto",
    "distributed_executor_backend": None,
    "enable_sleep_mode": False,
    "logprobs_mode": "raw_logprobs",
    "enable_prefix_caching": None,  # None: on for generative models (vllm/config/cache.py)
    "max_model_len": None,
}


@dataclass
class _WorkerState:
    model: Any
    asleep: set = field(default_factory=set)
    weights_lost: bool = False  # level-2 sleep discarded them, no reload since
    loaded: list = field(default_factory=list)  # names of the last reload, in order
    reloads: int = 0


class Worker(Mirrored):
    """vllm/v1/worker/gpu_worker.py Worker, as `collective_rpc` reaches it (WorkerWrapperBase
    forwards attributes to it, vllm/v1/worker/worker_base.py)."""

    API = frozenset({"reload_weights"})

    def __init__(self, model: Any):
        set_attrs(self, _d=_WorkerState(model))

    def reload_weights(
        self,
        weights_iterator: Any = None,
        weights_path: str | None = None,
        is_checkpoint_format: bool = True,
    ) -> None:
        # signature: 0.34 Worker.reload_weights; 0.32/0.33 forward *args/**kwargs to
        # GPUModelRunner.reload_weights with these names (vllm/v1/worker/gpu_model_runner.py)
        d = state(self)
        if "weights" in d.asleep:  # stricter: vLLM would write into released memory
            raise RuntimeError("vLLM double: reload_weights while the weights sleep; wake them")
        if weights_iterator is None:  # would reload the model folder, which holds no weights
            raise RuntimeError("vLLM double: reload from disk is not mirrored (no weights there)")
        params = dict(d.model.named_parameters())
        tied = getattr(d.model.config, "tie_word_embeddings", False)
        d.loaded = []
        # model.load_weights(weights_iterator) (vllm/model_executor/model_loader/reload/inplace.py)
        for name, tensor in weights_iterator:
            if tied and name == "lm_head.weight":
                continue  # of two tied names AutoWeightsLoader loads the first (models/utils.py)
            params[name].data.copy_(tensor)  # KeyError for a name the model lacks, as vLLM
            d.loaded.append(name)
        missing = set(params) - set(d.loaded)
        if missing:  # inplace.py logs "Following weights were not loaded from checkpoint"
            warnings.warn(f"weights not loaded: {sorted(missing)}", stacklevel=2)
        d.weights_lost = bool(missing) and d.weights_lost
        d.reloads += 1


@dataclass
class _LLMState:
    worker: Worker
    tokenizer: Any
    eos_ids: set
    kwargs: dict
    external: bool
    generator: torch.Generator
    tp_group: Any = None
    prefix_cache: bool = True
    cache_entries: bool = False  # the prefix cache holds KV of earlier prompts
    cache_stale: bool = False  # ... computed with weights since replaced
    calls: list = field(default_factory=list)  # (method, kwargs) of every API call


def _check_launcher(tp: int) -> Any:
    """What ExecutorWithExternalLauncher needs (vllm/v1/executor/uniproc_executor.py); returns
    this rank's tensor-parallel group (vllm/distributed/parallel_state.py: consecutive ranks)."""
    for var in ("RANK", "LOCAL_RANK"):
        if var not in os.environ:
            raise KeyError(var)  # int(os.environ["RANK"]) in _distributed_args
    if not (dist.is_available() and dist.is_initialized()):
        for var in ("MASTER_ADDR", "MASTER_PORT"):  # the env:// rendezvous of a new world
            if var not in os.environ:
                raise ValueError(f"environment variable {var} expected, but not set")
        if tp > 1:  # stricter: a world of tp ranks with one process in it would hang
            raise RuntimeError("vLLM double: tensor_parallel_size > 1 needs the other ranks")
        return None
    world = dist.get_world_size()
    if world % tp:
        raise AssertionError(f"world size {world} is not divisible by tp {tp}")
    mine = None
    for start in range(0, world, tp):  # every rank creates every group, in order
        group = dist.new_group(list(range(start, start + tp)))
        if start <= dist.get_rank() < start + tp:
            mine = group
    return mine if tp > 1 else None


def _build_model(path: str, dtype: str, load_format: str) -> Any:
    config = AutoConfig.from_pretrained(path)
    if dtype == "auto":  # LLM docstring: the config's dtype, float16 in place of float32
        dtype = str(getattr(config, "dtype", None) or "float16").removeprefix("torch.")
        dtype = "float16" if dtype == "float32" else dtype
    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype: {dtype}")
    if load_format != "dummy":  # stricter: the double reads no checkpoint files
        raise ValueError(f"vLLM double: load_format={load_format!r} is not mirrored, only dummy")
    model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[dtype]).eval()
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():  # vllm/model_executor/model_loader/dummy_loader.py: small randoms
        for p in model.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) * 2e-3 - 1e-3)
    return model


class LLM(Mirrored):
    """vllm/entrypoints/llm.py LLM: the constructor, generate, sleep, wake_up, collective_rpc,
    reset_prefix_cache (signatures as in 0.32-0.34; `sleep`'s 0.34-only reset_connector is left
    out, so a call that needs it fails here as it would on 0.32/0.33)."""

    API = frozenset({"generate", "sleep", "wake_up", "collective_rpc", "reset_prefix_cache"})

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        seed: int = 0,
        gpu_memory_utilization: float | None = None,
        **kwargs: Any,
    ) -> None:
        for name in kwargs:  # EngineArgs(**kwargs) is a dataclass: unknown names are errors
            if name not in ENGINE_ARGS:
                raise TypeError(
                    f"EngineArgs.__init__() got an unexpected keyword argument '{name}'"
                )
        args = {**ENGINE_ARGS, **kwargs}
        if args["distributed_executor_backend"] not in BACKENDS:
            raise ValueError(f"Unrecognized distributed executor backend: {args}")
        if args["logprobs_mode"] not in LOGPROBS_MODES:
            raise ValueError(f"logprobs_mode must be one of {LOGPROBS_MODES}")
        external = args["distributed_executor_backend"] == "external_launcher"
        group = _check_launcher(tensor_parallel_size) if external else None
        net = _build_model(model, dtype, args["load_format"])
        tok = AutoTokenizer.from_pretrained(model)  # the tokenizer path defaults to the model's
        eos = {tok.eos_token_id}
        gen_eos = GenerationConfig.from_pretrained(model).eos_token_id
        eos.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        set_attrs(
            self,
            _d=_LLMState(
                worker=Worker(net),
                tokenizer=tok,
                eos_ids={e for e in eos if e is not None},
                kwargs={"tensor_parallel_size": tensor_parallel_size, "dtype": dtype, **args},
                external=external,
                generator=torch.Generator().manual_seed(seed),
                tp_group=group,
                prefix_cache=args["enable_prefix_caching"] is not False,
            ),
        )

    def generate(
        self,
        prompts: Any,
        sampling_params: Any = None,
        *,
        use_tqdm: Any = True,
        lora_request: Any = None,
        priority: Any = None,
        tokenization_kwargs: dict | None = None,
        mm_processor_kwargs: dict | None = None,
    ) -> list[RequestOutput]:
        d = state(self)
        w = state(d.worker)
        d.calls.append(("generate", {}))
        if w.asleep:  # stricter: vLLM's paused scheduler would leave the requests waiting
            raise RuntimeError(f"vLLM double: generate while {sorted(w.asleep)} sleep")
        if w.weights_lost:  # stricter: vLLM would sample from discarded weights
            raise RuntimeError("vLLM double: generate after sleep(level=2) without new weights")
        if d.cache_stale:  # stricter: vLLM would reuse KV computed with the old weights
            raise RuntimeError("vLLM double: prefix cache not reset after a weight update")
        items = prompts if isinstance(prompts, list) else [prompts]
        params = sampling_params if sampling_params is not None else SamplingParams()
        per = params if isinstance(params, list) else [params] * len(items)
        ids = [_token_ids(d, p, tokenization_kwargs) for p in items]
        _same_on_the_group(d, ids, per)
        processed = d.kwargs["logprobs_mode"] == "processed_logprobs"
        outputs = []
        for i, (prompt_ids, sp) in enumerate(zip(ids, per)):
            done = sample_request(
                w.model, d.tokenizer, prompt_ids, sp, d.eos_ids, processed, d.generator
            )
            completions = [completion_output(k, c, sp, d.tokenizer) for k, c in enumerate(done)]
            text = items[i] if isinstance(items[i], str) else items[i].get("prompt")
            outputs.append(
                RequestOutput(
                    request_id=str(i),
                    prompt=text,
                    prompt_token_ids=prompt_ids,
                    prompt_logprobs=None,
                    outputs=completions,
                    finished=True,
                )
            )
        d.cache_entries = d.prefix_cache
        return outputs

    def sleep(self, level: int = 1, mode: str = "abort") -> None:
        d, w = state(self), state(state(self).worker)
        d.calls.append(("sleep", {"level": level}))
        if not d.kwargs["enable_sleep_mode"]:  # stricter: no sleep pool, nothing is released
            raise RuntimeError("vLLM double: sleep() without enable_sleep_mode=True")
        if level not in (1, 2):  # level 0 (pause only) is not mirrored
            raise ValueError(f"vLLM double: sleep level {level} is not mirrored")
        if "weights" in w.asleep:  # vllm/v1/executor/abstract.py Executor.sleep
            warnings.warn("Executor is already sleeping.", stacklevel=2)
            return
        w.asleep |= SLEEP_TAGS
        d.cache_entries = d.cache_stale = False  # EngineCore.sleep clears the prefix cache
        if level == 2:  # vllm/v1/worker/gpu_worker.py Worker.sleep: level 2 discards weights
            with torch.no_grad():
                for p in w.model.parameters():
                    p.fill_(float("nan"))
            w.weights_lost = True

    def wake_up(self, tags: list[str] | None = None) -> bool:
        d, w = state(self), state(state(self).worker)
        d.calls.append(("wake_up", {"tags": tags}))
        if not w.asleep:  # vllm/v1/executor/abstract.py Executor.wake_up
            warnings.warn("Executor is not sleeping.", stacklevel=2)
            return True
        for tag in tags or ():
            if tag not in w.asleep:
                warnings.warn(f"Tag {tag} is not in sleeping tags {w.asleep}", stacklevel=2)
                return not w.asleep
        w.asleep -= set(tags) if tags else set(w.asleep)
        return not w.asleep  # vllm/v1/engine/core.py EngineCore.wake_up: fully awake

    def collective_rpc(
        self,
        method: Any,
        timeout: float | None = None,
        args: tuple = (),
        kwargs: dict[str, Any] | None = None,
    ) -> list[Any]:
        d = state(self)
        d.calls.append(("collective_rpc", {"method": method}))
        kwargs = kwargs or {}
        if not d.external:  # the engine core runs in another process: arguments are serialised
            pickle.dumps((args, kwargs))  # a generator cannot be (vllm/v1/serial_utils.py)
        before = state(d.worker).reloads
        if isinstance(method, str):  # vllm/v1/serial_utils.py run_method
            try:
                func = getattr(d.worker, method)
            except AttributeError:
                raise NotImplementedError(f"Method {method!r} is not implemented.") from None
            result = func(*args, **kwargs)
        else:
            result = method(d.worker, *args, **kwargs)
        if state(d.worker).reloads != before and d.cache_entries:
            d.cache_stale = True
        return [result]

    def reset_prefix_cache(
        self, reset_running_requests: bool = False, reset_connector: bool = False
    ) -> bool:
        d = state(self)
        d.calls.append(("reset_prefix_cache", {}))
        d.cache_entries = d.cache_stale = False
        return True


def _token_ids(d: _LLMState, prompt: Any, tokenization_kwargs: dict | None) -> list[int]:
    if isinstance(prompt, dict):  # vllm/inputs/llm.py TokensPrompt (or TextPrompt)
        if "prompt_token_ids" in prompt:
            return list(prompt["prompt_token_ids"])
        prompt = prompt["prompt"]
    return list(d.tokenizer(prompt, **(tokenization_kwargs or {})).input_ids)


def _same_on_the_group(d: _LLMState, ids: list, params: list) -> None:
    """external_launcher's contract: every rank of a TP group feeds the same requests."""
    if d.tp_group is None:
        return
    mine = (ids, [tuple(sorted(vars_of(p).items())) for p in params])
    every: list = [None] * dist.get_world_size(d.tp_group)
    dist.all_gather_object(every, mine, group=d.tp_group)
    if any(other != mine for other in every):  # stricter: vLLM would hang or diverge
        raise RuntimeError("vLLM double: ranks of a tensor-parallel group sent different requests")


@contextmanager
def without_launcher_env() -> Iterator[None]:
    """A process torchrun did not start: its variables removed, and restored afterwards
    (t1's engine sets them for a lone process)."""
    names = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    saved = {name: os.environ.pop(name, None) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def module() -> types.ModuleType:
    """A fresh `vllm` module: vllm/__init__.py exports LLM and SamplingParams lazily."""
    mod = types.ModuleType("vllm")
    mod.__version__ = VERSION
    mod.LLM = LLM
    mod.SamplingParams = SamplingParams
    return mod


def install(monkeypatch: Any = None) -> types.ModuleType:
    """Make `import vllm` give the double and let t1's engine run without CUDA.

    With pytest's `monkeypatch` both are undone after the test; without it (a child process)
    they stay for the life of the process.
    """
    import t1.rollout.vllm as engine

    mod = module()
    if monkeypatch is not None:
        monkeypatch.setitem(sys.modules, "vllm", mod)
        monkeypatch.setattr(engine, "check_cuda", lambda: None)
    else:
        sys.modules["vllm"] = mod
        engine.check_cuda = lambda: None
    return mod
