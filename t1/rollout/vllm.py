"""A colocated vLLM rollout engine behind the `RolloutEngine` protocol (`rollout.engine: vllm`).

vLLM's offline `LLM` runs in the learner's own process (`external_launcher` under torchrun, so
each rank hosts one engine and tensor parallelism groups ranks), shares the GPU with the
learner through `rollout.gpu_memory_utilization`, and sleeps between rollouts when
`rollout.sleep_between_steps` is set, handing its KV-cache memory back to the learner.

Weights go to the engine in memory after every optimiser step: `update_weights(model)` feeds
the learner's state dict to the engine model's `load_weights` (no files), then drops the prefix
cache, whose entries were computed with the old weights. The sampling log-probs are vLLM's
*processed* log-probs (after temperature), i.e. log softmax(logits / T), the distribution the
learner recomputes; `tests/rollout/test_vllm_gpu.py` checks the two agree after an update.

`vllm` is imported only when this engine is built: `import t1` and the CPU test suite never
need it.
"""

from __future__ import annotations

import tempfile
from typing import Any

import torch

from t1.errors import T1Error
from t1.rollout.base import Rollout, SamplingParams


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise T1Error(
            f"rollout.engine=vllm needs the vllm package ({e}); "
            "install it with `pip install 't1-rl[vllm]'` or set rollout.engine=hf"
        ) from None
    return vllm


def check_cuda() -> None:
    if not torch.cuda.is_available():
        raise T1Error(
            "rollout.engine=vllm needs a CUDA GPU and none is visible; set rollout.engine=hf "
            "to sample with transformers on this machine"
        )


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
    """vLLM `RequestOutput`s (one per prompt, `n` completions each) to t1 `Rollout`s."""
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


class VLLMEngine:
    """Rollouts with vLLM on the learner's GPU; weights synced in memory after each step."""

    def __init__(self, rollout_cfg: Any, model: Any, tokenizer: Any):
        vllm = _import_vllm()
        check_cuda()
        import torch.distributed as dist

        self.cfg, self.tokenizer = rollout_cfg, tokenizer
        self.batch_size = rollout_cfg.batch_size
        # vLLM builds its model from a folder once; later weights arrive in memory
        self._init_dir = tempfile.TemporaryDirectory(prefix="t1-vllm-")
        model.save_pretrained(self._init_dir.name, safe_serialization=True)
        tokenizer.save_pretrained(self._init_dir.name)
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.llm = vllm.LLM(
            model=self._init_dir.name,
            dtype=str(model.dtype).removeprefix("torch."),
            gpu_memory_utilization=rollout_cfg.gpu_memory_utilization,
            tensor_parallel_size=rollout_cfg.tensor_parallel_size,
            distributed_executor_backend="external_launcher" if distributed else None,
            enable_sleep_mode=rollout_cfg.sleep_between_steps,
            logprobs_mode="processed_logprobs",
            enable_prefix_caching=True,
            seed=0,
        )
        self._sleeping = False
        self._sleep()

    def _engine_model(self) -> Any:
        executor = self.llm.llm_engine.model_executor
        return executor.driver_worker.worker.model_runner.model

    def _wake(self) -> None:
        if self._sleeping:
            self.llm.wake_up()
            self._sleeping = False

    def _sleep(self) -> None:
        if self.cfg.sleep_between_steps and not self._sleeping:
            self.llm.sleep(level=1)
            self._sleeping = True

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> list[Rollout]:
        vllm = _import_vllm()
        self._wake()
        try:
            params = vllm.SamplingParams(**vllm_sampling_kwargs(sampling, n))
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        finally:
            self._sleep()
        return rollouts_from_outputs(outputs)

    @torch.no_grad()
    def update_weights(self, model: Any) -> None:
        self._wake()
        try:
            target = self._engine_model()
            target.load_weights(weights=((k, v) for k, v in model.state_dict().items()))
            self.llm.reset_prefix_cache()
        finally:
            self._sleep()

    def close(self) -> None:
        self._init_dir.cleanup()
