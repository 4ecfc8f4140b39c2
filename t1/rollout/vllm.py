"""A colocated vLLM rollout engine behind the `RolloutEngine` protocol (`rollout.engine: vllm`).

Checked against the source of vLLM 0.32, 0.33 and 0.34 (the `vllm` extra pins that range). Each
training process hosts one `vllm.LLM` in its own process, as torchrun launched it:

- `distributed_executor_backend="external_launcher"` always, one process included: vLLM then
  runs its worker in this process (it turns off its engine-core subprocess,
  vllm/config/parallel.py) and joins the torch.distributed world torchrun set up
  (vllm/v1/executor/uniproc_executor.py, `ExecutorWithExternalLauncher`); alone, without
  torchrun, `launcher_env` supplies the variables that executor reads. TRL does the same for
  one process (trl/generation/vllm_generation.py, `_init_vllm`).
- Tensor parallelism: vLLM groups consecutive ranks, `tensor_parallel_size` per group; every
  rank of a group must feed the same prompts with the same seeds and gets the same outputs
  (the executor's docstring). `t1.rollout.groups` gives a group its prompts and each rank its
  share of the outputs; the world size must be a multiple of the group size.
- Weights: the engine is built with `load_format="dummy"` (no checkpoint written or read) and
  receives the learner's weights in memory, one parameter at a time from possibly FSDP2-sharded
  modules (`t1.rollout.weights.iter_full_weights`), through the worker's `reload_weights`
  (`llm.collective_rpc("reload_weights", kwargs={"weights_iterator": ...})`, the path vLLM
  documents in docs/training/layerwise.md; vllm/v1/worker/gpu_worker.py). Then the prefix
  cache is reset: its entries were computed with the old weights.
- Memory: with `rollout.sleep_between_steps`, `sleep()` (the trainer calls it after each
  rollout) puts vLLM to sleep at level 2, which discards weights and KV cache rather than
  parking the weights in host memory as level 1 does; the next weight update wakes the
  weights alone (`wake_up(tags=["weights"])`), loads them, and only the next `generate`
  wakes the KV cache (`wake_up(tags=["kv_cache"])`), so the KV cache is never resident while
  weights move (vllm/entrypoints/llm.py `sleep`, `wake_up`; the order TRL's `sync_weights`
  and verl's `update_weights` in verl/workers/fsdp_workers.py follow). A `generate` after a
  level-2 sleep with no update in between reloads the weights from the module it last got.
- Log-probs: vLLM's *processed* log-probs (`logprobs_mode="processed_logprobs"`), those of the
  distribution it samples from (after temperature, top-p, min-p); with top_p=1 and min_p=0
  that is log softmax(logits / T), what the learner recomputes.
- Prompts go in as token ids (`TokensPrompt`), encoded as the HF engine encodes them, so the
  learner scores exactly the tokens the sampler saw.

`vllm` is imported only when this engine is built: `import t1` and the CPU test suite never
need it. `tests/rollout/vllm_double.py` mirrors the parts of vLLM's API used here, line by line
with the file each comes from, and the CPU tests run this engine against it.
"""

from __future__ import annotations

import os
import socket
import tempfile
import warnings
from typing import Any

import torch
import torch.distributed as dist

from t1.errors import T1Error
from t1.models.sharded import compute_dtype
from t1.rollout.base import Rollout, SamplingParams
from t1.rollout.groups import check_engine_groups
from t1.rollout.hf import encode_prompts
from t1.rollout.weights import iter_full_weights

# the vLLM releases whose source this engine was checked against (pyproject's `vllm` extra)
SUPPORTED_VLLM = ("0.32", "0.33", "0.34")


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise T1Error(
            f"rollout.engine=vllm needs the vllm package ({e}); "
            "install it with `pip install 't1-rl[vllm]'` or set rollout.engine=hf"
        ) from None
    return vllm


def check_version(version: str) -> None:
    """Warn when the installed vLLM is not one this engine was checked against."""
    if ".".join(version.split(".")[:2]) not in SUPPORTED_VLLM:
        warnings.warn(
            f"vLLM {version}: t1's vLLM engine was checked against vLLM "
            f"{', '.join(SUPPORTED_VLLM)}; other releases may have changed the API it uses",
            stacklevel=3,
        )


def check_cuda() -> None:
    if not torch.cuda.is_available():
        raise T1Error(
            "rollout.engine=vllm needs a CUDA GPU and none is visible; set rollout.engine=hf "
            "to sample with transformers on this machine"
        )


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher_env() -> None:
    """The torchrun variables `external_launcher` reads, for a process torchrun did not start.

    Its executor reads RANK and LOCAL_RANK, and joins the world with `env://` (MASTER_ADDR,
    MASTER_PORT) when torch.distributed is not initialised yet. Under torchrun they are set and
    left alone.
    """
    _, world = _world()
    if world > 1 or "RANK" in os.environ:
        return
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))


def vllm_sampling_kwargs(sampling: SamplingParams, n: int) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams` matching t1's `SamplingParams`."""
    return dict(
        n=n,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        min_p=sampling.min_p,
        max_tokens=sampling.max_new_tokens,
        stop=list(sampling.stop) or None,
        include_stop_str_in_output=True,  # t1 keeps the stop string in the text
        seed=sampling.seed,
        logprobs=0,  # the sampled token's log-prob only
    )


def rollouts_from_outputs(outputs: list[Any]) -> list[Rollout]:
    """vLLM `RequestOutput`s (one per prompt, `n` completions each) to t1 `Rollout`s.

    A completion's `logprobs` holds one {token id: Logprob} mapping per position, as a list
    or a `FlatLogprobs` (vllm/logprobs.py); both iterate the same way.
    """
    rollouts = []
    for i, out in enumerate(outputs):
        prompt_ids = list(out.prompt_token_ids)
        for c in out.outputs:
            ids = list(c.token_ids)
            if c.logprobs is None or len(c.logprobs) != len(ids):
                raise T1Error("vLLM returned no per-token log-probs (logprobs=0 was asked for)")
            logprobs = [float(step[tok].logprob) for step, tok in zip(c.logprobs, ids)]
            rollouts.append(
                Rollout(
                    prompt_index=i,
                    prompt_ids=prompt_ids,
                    response_ids=ids,
                    logprobs=logprobs,
                    finish_reason="length" if c.finish_reason == "length" else "stop",
                    text=c.text,
                )
            )
    return rollouts


def _write_model_folder(model: Any, tokenizer: Any, path: str) -> None:
    """What vLLM builds the engine from: the model's config and the tokenizer, no weights."""
    model.config.save_pretrained(path)
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        generation.save_pretrained(path)
    tokenizer.save_pretrained(path)


class VLLMEngine:
    """Rollouts with vLLM in the learner's process; weights pushed in memory after each step."""

    def __init__(self, rollout_cfg: Any, model: Any, tokenizer: Any):
        vllm = _import_vllm()
        check_version(vllm.__version__)
        check_cuda()
        _, world = _world()
        check_engine_groups(world, rollout_cfg.tensor_parallel_size)
        launcher_env()
        self.cfg, self.tokenizer, self.model = rollout_cfg, tokenizer, model
        self.batch_size = rollout_cfg.batch_size
        # the learner's compute dtype (`model.dtype`), not its float32 masters
        self.dtype = compute_dtype(model)
        self._folder = tempfile.TemporaryDirectory(prefix="t1-vllm-")
        _write_model_folder(model, tokenizer, self._folder.name)
        self.llm = vllm.LLM(
            model=self._folder.name,
            dtype=str(self.dtype).removeprefix("torch."),
            load_format="dummy",  # random weights until update_weights pushes the learner's
            tensor_parallel_size=rollout_cfg.tensor_parallel_size,
            distributed_executor_backend="external_launcher",
            gpu_memory_utilization=rollout_cfg.gpu_memory_utilization,
            enable_sleep_mode=rollout_cfg.sleep_between_steps,
            logprobs_mode="processed_logprobs",
            enable_prefix_caching=True,
            # one engine seed for every rank: a tensor-parallel group must sample alike
            seed=0,
        )
        # the memory kinds ("weights", "kv_cache") vLLM holds released, and whether the
        # engine's weights are the learner's (level 2 discards them; dummy ones are not)
        self._asleep: set[str] = set()
        self._weights_current = False
        self.update_weights(model)

    def _wake(self, tag: str) -> None:
        if tag in self._asleep:
            if torch.cuda.is_available():
                # vLLM maps the memory it wakes into itself (vllm/device_allocator/cumem.py):
                # blocks the learner freed but torch still caches would be out of its reach
                torch.cuda.empty_cache()
            self.llm.wake_up(tags=[tag])
            self._asleep.discard(tag)

    def sleep(self) -> None:
        """Hand the GPU memory back to the learner until the next update or rollout."""
        if self.cfg.sleep_between_steps and not self._asleep:
            self.llm.sleep(level=2)
            self._asleep = {"weights", "kv_cache"}
            self._weights_current = False

    @torch.no_grad()
    def update_weights(self, model: Any) -> None:
        """Load `model`'s weights into the engine (a collective when `model` is sharded)."""
        self._wake("weights")  # the KV cache stays released while the weights move
        weights = iter_full_weights(model, self.dtype)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()
        self.model, self._weights_current = model, True

    def ensure_weights(self) -> None:
        """Load the learner's weights if the engine's are stale (a level-2 sleep since the last
        update: a skipped step, or a `generate` after `sleep`). A collective when the learner is
        sharded, so every rank calls it together before work in which ranks call `generate` a
        different number of times (the held-out evaluation's shares)."""
        if not self._weights_current:
            self.update_weights(self.model)

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> list[Rollout]:
        vllm = _import_vllm()
        self.ensure_weights()
        self._wake("kv_cache")
        params = vllm.SamplingParams(**vllm_sampling_kwargs(sampling, n))
        inputs = [{"prompt_token_ids": ids} for ids in encode_prompts(self.tokenizer, prompts)]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        return rollouts_from_outputs(outputs)

    def close(self) -> None:
        self._folder.cleanup()
