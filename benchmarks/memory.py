"""Memory of the learner at scale, measured on CPU: the chunked output head, and FSDP2 sharding.

    python benchmarks/memory.py head     # peak memory: chunked head vs full logits
    python benchmarks/memory.py fsdp     # per-rank bytes under FSDP2 at 1, 2 and 4 processes
    python benchmarks/memory.py          # both

1. `head`: the learner's log-prob + entropy pass, forward and backward, for R positions of
   hidden size H through a vocabulary of V (defaults: Qwen2.5-1.5B's H = 1536, Qwen2.5's
   V = 152 064, R = 4096), float32:
       full:     logits = hidden @ W^T, then `t1.rollout.logprobs.tempered_logprobs` (the pass
                 the learner took before the chunked head: (R, V) float32 logits)
       chunked:  `t1.rollout.head.head_logprobs` (chunks of `head_chunk_size(V)` positions)
   Each runs in a fresh Python subprocess, which builds the inputs (hidden states and W, with
   `requires_grad`), warms the method up on a small input, resets the kernel's peak-RSS counter
   (writes "5" to /proc/self/clear_refs, which resets VmHWM to the current RSS) and reads VmRSS
   as the baseline; after the forward and `backward()` it reads VmHWM. "Peak extra" = VmHWM -
   baseline: every byte the process touched at its worst moment beyond the inputs, torch
   allocations or not (torch's CPU allocator returns large blocks to the OS on free, so RSS
   follows tensor lifetimes). Both include W's (V, H) gradient, which both must produce.
2. `fsdp`: a randomly initialised Llama-shaped model of ~110 M parameters (hidden 768, 12 layers,
   12 heads, 4 kv heads, MLP 2048, vocabulary 32 000, tied embeddings), `fully_shard` per
   decoder layer then the root, gloo, N = 1, 2, 4 processes (torch.multiprocessing); one
   forward/backward on a small batch and one AdamW step, so that gradients and optimizer states
   exist; an anchor copy sharded the same way (fp32, no gradient). Per rank: the bytes of the
   local shards of the parameters, gradients, AdamW states (exp_avg, exp_avg_sq, step) and
   anchor, read from the DTensors' `to_local()`; the largest rank is reported. float32
   throughout (CPU: no bf16 compute policy; the sharded fp32 state is what the policy keeps).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1024 * 1024


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1))


# ---- 1. the chunked head against full logits ---------------------------------------------------


def _head_pass(method: str, hidden, weight, targets, temperature: float):
    """Forward + backward of sum(logp) + 0.01 sum(H); returns (sum logp, sum H)."""
    import torch

    from t1.rollout.head import head_logprobs
    from t1.rollout.logprobs import tempered_logprobs

    if method == "full":
        logits = torch.nn.functional.linear(hidden, weight)[None]  # (1, R, V)
        logp, ent = tempered_logprobs(logits, targets[None], temperature, True)
    else:
        logp, ent = head_logprobs(hidden, weight, None, targets, temperature, True)
    (logp.sum() + 0.01 * ent.sum()).backward()
    return float(logp.detach().double().sum()), float(ent.detach().double().sum())


def head_worker(method: str, R: int, V: int, H: int, threads: int) -> None:
    """Measure one method in this (fresh) process and print one JSON line."""
    import torch

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)

    def inputs(r: int, v: int):
        hidden = torch.empty(r, H).normal_(generator=gen).requires_grad_()
        weight = torch.empty(v, H).normal_(0.0, H**-0.5, generator=gen).requires_grad_()
        return hidden, weight, torch.randint(0, v, (r,), generator=gen)

    _head_pass(method, *inputs(8, 1000), 1.2)  # warm-up
    hidden, weight, targets = inputs(R, V)
    Path("/proc/self/clear_refs").write_text("5")
    base = _status_kib("VmRSS")
    start = time.perf_counter()
    sums = _head_pass(method, hidden, weight, targets, 1.2)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    grads = [float(t.grad.double().norm()) for t in (hidden, weight)]
    record = {"method": method, "extra_mib": (peak - base) / 1024, "seconds": seconds}
    record.update(sums=sums, grad_norms=grads)
    print(json.dumps(record))


def _subprocess(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"worker {args} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_head(args: argparse.Namespace) -> None:
    from t1.rollout.head import head_chunk_size

    R, V, H = args.positions, args.vocab, args.hidden
    print(
        f"head: R = {R} positions, V = {V}, H = {H}, float32, forward + backward of logp and "
        f"entropy; chunk = {head_chunk_size(V)} positions; {args.threads} thread(s)"
    )
    print(
        f"  one (R, V) float32 tensor: {R * V * 4 / MIB:.0f} MiB; W's gradient: {V * H * 4 / MIB:.0f} MiB"
    )
    res = {}
    for method in ("full", "chunked"):
        cmd = ["--head-worker", method, "--positions", str(R), "--vocab", str(V)]
        res[method] = _subprocess(cmd + ["--hidden", str(H), "--threads", str(args.threads)])
        r = res[method]
        print(f"  {method:>7}: peak extra {r['extra_mib']:.0f} MiB, {r['seconds']:.1f} s")
    full, chunked = res["full"], res["chunked"]
    gaps = [abs(a - b) / max(abs(b), 1e-30) for a, b in zip(chunked["sums"], full["sums"])]
    gaps += [abs(a - b) / b for a, b in zip(chunked["grad_norms"], full["grad_norms"])]
    print(
        f"  ratio full / chunked: memory {full['extra_mib'] / chunked['extra_mib']:.1f}x, "
        f"time {full['seconds'] / chunked['seconds']:.2f}x; relative gaps of sum logp, sum H, "
        f"|grad hidden|, |grad W|: {', '.join(f'{g:.1e}' for g in gaps)}"
    )


# ---- 2. FSDP2: per-rank bytes at N processes ----------------------------------------------------

FSDP_MODEL = dict(
    vocab_size=32_000,
    hidden_size=768,
    intermediate_size=2048,
    num_hidden_layers=12,
    num_attention_heads=12,
    num_key_value_heads=4,
    tie_word_embeddings=True,
)


def _local_bytes(tensors) -> int:
    """Bytes of this rank's shards of `tensors` (DTensors or plain tensors)."""
    total = 0
    for t in tensors:
        local = t.to_local() if hasattr(t, "to_local") else t
        total += local.numel() * local.element_size()
    return total


def _shard(model, mesh) -> None:
    from torch.distributed.fsdp import fully_shard

    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)


def fsdp_rank(rank: int, world: int, out: str) -> None:
    """One rank: build, shard, one step; rank 0 writes every rank's byte counts to `out`."""
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(1)
    store = f"file://{Path(out).parent / 'store'}"  # rendezvous through a file: no port to pick
    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # the same full model on every rank before sharding
        model = LlamaForCausalLM(LlamaConfig(**FSDP_MODEL))
        n_params = sum(p.numel() for p in model.parameters())
        anchor = copy.deepcopy(model).requires_grad_(False)  # before fully_shard: no deepcopy after
        mesh = init_device_mesh("cpu", (world,))
        _shard(model, mesh)
        _shard(anchor, mesh)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        ids = torch.randint(0, FSDP_MODEL["vocab_size"], (2, 16), generator=torch.Generator())
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        states = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
        mine = {
            "params": _local_bytes(model.parameters()),
            "grads": _local_bytes(p.grad for p in model.parameters() if p.grad is not None),
            "optimizer": _local_bytes(states),
            "anchor": _local_bytes(anchor.parameters()),
        }
        everyone = [None] * world
        dist.all_gather_object(everyone, mine)
        if rank == 0:
            Path(out).write_text(json.dumps({"n_params": n_params, "ranks": everyone}))
    finally:
        dist.destroy_process_group()


def run_fsdp(args: argparse.Namespace) -> None:
    import torch.multiprocessing as mp

    print(
        "fsdp: Llama-shaped model "
        + ", ".join(f"{k} {v}" for k, v in FSDP_MODEL.items())
        + "; fully_shard per layer + root, gloo; MiB per rank (largest rank)"
    )
    print("  N | params | grads | AdamW | anchor |  total | total x N / total at N=1")
    first = None
    for world in args.world:
        with tempfile.TemporaryDirectory() as tmp:
            out = str(Path(tmp) / "bytes.json")
            mp.spawn(fsdp_rank, args=(world, out), nprocs=world, join=True)
            result = json.loads(Path(out).read_text())
        top = max(result["ranks"], key=lambda r: sum(r.values()))
        total = sum(top.values())
        first = first or total * world  # the N = 1 total (world 1 runs first)
        cells = [top[k] / MIB for k in ("params", "grads", "optimizer", "anchor")]
        print(
            f"  {world} | " + " | ".join(f"{c:6.1f}" for c in cells) + f" | {total / MIB:6.1f} | "
            f"{total * world / first:.3f}   ({result['n_params'] / 1e6:.1f} M parameters)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", nargs="?", choices=["head", "fsdp", "all"], default="all")
    parser.add_argument("--positions", type=int, default=4096)
    parser.add_argument("--vocab", type=int, default=152_064)
    parser.add_argument("--hidden", type=int, default=1536)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--world", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--head-worker", choices=["full", "chunked"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.head_worker:
        return head_worker(args.head_worker, args.positions, args.vocab, args.hidden, args.threads)
    if args.part in ("head", "all"):
        run_head(args)
    if args.part in ("fsdp", "all"):
        if args.world[0] != 1:
            raise SystemExit("--world must start with 1 (the baseline of the ratio)")
        run_fsdp(args)


if __name__ == "__main__":
    main()
