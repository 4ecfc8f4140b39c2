"""RL and SFT runs under torchrun (or alone) for the data-parallel tests; every rank runs it.

    torchrun --nproc_per_node 2 fsdp_worker.py JOBS.json

JOBS.json is a list of jobs, run one after the other in the same processes:
    {"kind": "rl" | "sft" | "head", "out": results path (no suffix), "run": run dir,
     "overrides": [config overrides], "resume": bool,
     "hf_engine": bool                RL with the HF engine (ranks sample different prompts)
                                      and a held-out evaluation on rank 0, instead of the
                                      scripted engine
     "copy": [source run dir, step]   first copy that run with its checkpoints up to `step`}
An "rl"/"sft" job runs the trainer's loop (checkpoints, metrics, final/) and records, after
every step n, the gradients and the weights (and the anchor's) under `s{n}.grad.`, `s{n}.model.`
and `s{n}.anchor.`; a "head" job computes one loss's gradients through the output head used
outside the model's forward (`root_forward`) and through the plain forward. Rank 0 then writes
`out.safetensors` (whole tensors gathered from the shards: those records, the gradients of the
run's first step under `grad.`, the final weights under `model.` and `anchor.`) and `out.json`
(metrics rows, world size).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))

from rl_toy import ScriptedEngine, toy_config, toy_problems  # noqa: E402

from t1.models import build_char_tokenizer, build_tiny_model  # noqa: E402
from t1.models.sharded import full_state  # noqa: E402
from t1.runs import latest_checkpoint, read_jsonl  # noqa: E402
from t1.train.anchor import AdapterAnchor  # noqa: E402
from t1.train.distributed import DistInfo, close_distributed, init_distributed  # noqa: E402
from t1.train.rl import RLTrainer  # noqa: E402


def whole(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t.detach().clone()


def whole_state(module: Any, prefix: str) -> dict[str, torch.Tensor]:
    """Every state entry, gathered whole (a collective when sharded: every rank calls it)."""
    return {f"{prefix}{k}": v.clone() for k, v in full_state(module)}


def grads_of(model: Any, prefix: str) -> dict[str, torch.Tensor]:
    """The gradients of the trained parameters (a LoRA policy's frozen base has none)."""
    params = model.named_parameters()
    return {f"{prefix}{k}": whole(p.grad) for k, p in params if p.grad is not None}


def anchor_state(anchor: Any, prefix: str) -> dict[str, torch.Tensor]:
    """The anchor whole: a copy of the policy, or a LoRA policy's EMA adapters."""
    if isinstance(anchor, AdapterAnchor):
        return {f"{prefix}{k}": whole(v) for k, v in anchor.tensors().items()}
    return whole_state(anchor, prefix)


def record_rl_steps(trainer: Any) -> dict[str, torch.Tensor]:
    """Wrap the trainer's step so that each one's gradients, weights and anchor are kept."""
    kept: dict[str, torch.Tensor] = {}
    step = trainer.train_step

    def recorded() -> dict:
        row = step()
        s = f"s{trainer.step}."
        kept.update(grads_of(trainer.model, s + "grad.") | whole_state(trainer.model, s + "model."))
        if trainer.anchor is not None:
            kept.update(anchor_state(trainer.anchor, s + "anchor."))
        return row

    trainer.train_step = recorded
    return kept


def first_grads(kept: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The gradients of the first step the run took, under `grad.`."""
    first = min(int(k[1 : k.index(".")]) for k in kept)
    prefix = f"s{first}.grad."
    return {
        "grad." + k.removeprefix(prefix): v.clone() for k, v in kept.items() if k.startswith(prefix)
    }


def run_rl(job: dict, info: DistInfo) -> dict[str, torch.Tensor]:
    cfg = toy_config(job["run"], *job["overrides"])
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    model = build_tiny_model(tok, cfg.model.tiny, seed=0)
    if job.get("hf_engine"):
        held = toy_problems(3)
        trainer = RLTrainer(cfg, model, tok, toy_problems(8), info, eval_problems=held)
    else:
        trainer = RLTrainer(cfg, model, tok, toy_problems(8), info, engine=ScriptedEngine(tok))
    kept = record_rl_steps(trainer)
    trainer.train(resume=job.get("resume", False))
    tensors = whole_state(trainer.model, "model.")
    if trainer.anchor is not None:
        tensors.update(anchor_state(trainer.anchor, "anchor."))
    return {**tensors, **kept, **first_grads(kept)}


def _start_step(run: str, resume: bool) -> int:
    """The step a run starts from: its latest checkpoint's when it resumes."""
    ckpt = latest_checkpoint(Path(run) / "checkpoints") if resume else None
    return int(ckpt.name.removeprefix("step-")) if ckpt else 0


def run_sft(job: dict, info: DistInfo) -> dict[str, torch.Tensor]:
    from test_sft import TINY, make_traces

    import t1.train.sft as sft
    from t1.config import SFTStage, load_config

    real = sft.train_step
    kept: dict[str, torch.Tensor] = {}
    step = [_start_step(job["run"], job.get("resume", False))]

    def recording(model: Any, optimizer: Any, *args: Any, **kwargs: Any) -> tuple[float, float]:
        """train_step; its gradients are kept just before it zeroes them, then its weights."""
        step[0] += 1
        prefix = f"s{step[0]}."
        real_zero = optimizer.zero_grad
        calls = [0]

        def zero_grad(*a: Any, **k: Any) -> None:
            calls[0] += 1
            if calls[0] == 2:  # after backward and the step, before the gradients go
                kept.update(grads_of(model, prefix + "grad."))
            real_zero(*a, **k)

        optimizer.zero_grad = zero_grad
        try:
            out = real(model, optimizer, *args, **kwargs)
        finally:
            optimizer.zero_grad = real_zero
        kept.update(whole_state(model, prefix + "model."))
        return out

    sft.train_step = recording
    overrides = [*TINY, f"trainer.out={job['run']}", *job["overrides"]]
    cfg = load_config(SFTStage, None, overrides)
    try:
        model, _ = sft.train_sft(cfg, make_traces(40), resume=job.get("resume", False), info=info)
    finally:
        sft.train_step = real
    return {**whole_state(model, "model."), **kept, **first_grads(kept)}


def head_batch(vocab: int) -> torch.Tensor:
    return torch.randint(6, vocab, (6, 9), generator=torch.Generator().manual_seed(0))


def head_loss_chunked(model: Any, ids: torch.Tensor, chunk: int, total: int) -> torch.Tensor:
    """Next-token loss from the decoder's hidden states, the output head applied `chunk`
    positions at a time with its weight read directly (a chunked head)."""
    h = model.model(input_ids=ids).last_hidden_state[:, :-1].reshape(-1, model.config.hidden_size)
    targets = ids[:, 1:].reshape(-1)
    weight = model.lm_head.weight
    loss = h.new_zeros(())
    for s in range(0, len(h), chunk):
        logits = torch.nn.functional.linear(h[s : s + chunk], weight)
        loss = loss + torch.nn.functional.cross_entropy(
            logits.float(), targets[s : s + chunk], reduction="sum"
        )
    return loss / total


def run_head(job: dict, info: DistInfo) -> dict[str, torch.Tensor]:
    """Gradients of one loss through `root_forward` + chunked head, and through the forward."""
    from t1.config import TrainConfig
    from t1.models.sharded import root_forward
    from t1.train.sharding import prepare_learner

    cfg = toy_config(job["run"])
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    model = prepare_learner(
        build_tiny_model(tok, cfg.model.tiny, seed=0), TrainConfig(), "float32", info
    )
    ids = head_batch(len(tok))
    mine, total = ids[info.rank :: info.world], ids[:, 1:].numel()
    chunk = 5 + 2 * info.rank  # other chunk counts on each rank: no collective per chunk
    root_forward(model, lambda: head_loss_chunked(model, mine, chunk, total)).backward()
    head = {f"grad_head.{k}": whole(p.grad) for k, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=mine).logits[:, :-1].float()
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), mine[:, 1:].reshape(-1), reduction="sum"
    )
    (loss / total).backward()
    plain = {f"grad_plain.{k}": whole(p.grad) for k, p in model.named_parameters()}
    return {**head, **plain}


def copy_run(source: str, step: int, target: str, info: DistInfo) -> None:
    """`source` as it was right after checkpoint `step` (later checkpoints, final/ dropped)."""
    if info.main:
        shutil.copytree(source, target)
        for ckpt in Path(target, "checkpoints").glob("step-*"):
            if int(ckpt.name.removeprefix("step-")) > step:
                shutil.rmtree(ckpt)
        shutil.rmtree(Path(target, "final"), ignore_errors=True)
    if dist.is_initialized():
        dist.barrier()


def count_empty_passes() -> list[int]:
    """Count the zero-loss passes ranks with fewer micro-batches run (RL and SFT)."""
    import t1.train.packing as packing
    import t1.train.rl_update as rl_update

    count = [0]

    def counting(real: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            return real(*args, **kwargs)

        return run

    rl_update._empty_pass = counting(rl_update._empty_pass)
    packing._empty_loss = counting(packing._empty_loss)
    return count


def main(jobs_path: str) -> None:
    from t1.train.distributed import all_sum

    torch.set_num_threads(1)
    info = init_distributed("cpu")
    empty = count_empty_passes()
    for job in json.loads(Path(jobs_path).read_text()):
        if "copy" in job:
            copy_run(*job["copy"], job["run"], info)
        empty[0] = 0
        tensors = {"rl": run_rl, "sft": run_sft, "head": run_head}[job["kind"]](job, info)
        passes = int(all_sum(torch.tensor(empty[0]), info))  # over all ranks
        if info.main:
            save_file({k: v.contiguous() for k, v in tensors.items()}, job["out"] + ".safetensors")
            metrics = Path(job["run"]) / "metrics.jsonl"
            rows = read_jsonl(metrics) if metrics.exists() else []
            log = {"rows": rows, "world": info.world, "empty_passes": passes}
            Path(job["out"] + ".json").write_text(json.dumps(log))
    close_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
