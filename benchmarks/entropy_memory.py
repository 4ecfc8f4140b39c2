"""Peak extra memory of `t1.algo.token_entropy` against the naive float32 softmax formula.

    naive:    x = logits.float();  H = −Σ_v softmax(x)_v · log_softmax(x)_v
    chunked:  t1.algo.token_entropy(logits, chunk_size)

How it measures (CPU, Linux): each method runs in a fresh Python subprocess. The worker builds
the logits (filled in place, so building them never peaks above their own size), warms the method
up on a small input (thread pools, lazy init), then resets the kernel's peak-RSS counter (writes
"5" to /proc/self/clear_refs, which resets VmHWM) and reads VmRSS as the baseline. After the call
(and `.sum().backward()` with --grad) it reads VmHWM. "Peak extra" = VmHWM − baseline: every byte
the process touched at its worst moment beyond the inputs, torch allocations or not. torch's CPU
allocator returns large blocks to the OS on free, so RSS follows tensor lifetimes. With --grad
the figure includes the (…, V) gradient of the logits, which both methods must produce.

    python benchmarks/entropy_memory.py                       # (8, 512, 50000), float32 + bfloat16
    python benchmarks/entropy_memory.py --grad --dtype float32
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

MIB = 1024 * 1024


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1))


def _run(method: str, logits, chunk_size: int, grad: bool):
    import torch

    from t1.algo import token_entropy

    if method == "naive":
        x = logits.float()
        out = -(torch.softmax(x, -1) * torch.log_softmax(x, -1)).sum(-1)
    else:
        out = token_entropy(logits, chunk_size=chunk_size)
    if grad:
        out.sum().backward()
    return out.detach()


def worker(method: str, shape: list[int], dtype_name: str, chunk_size: int, grad: bool) -> None:
    """Measure one method in this (fresh) process and print one JSON line."""
    import torch

    torch.set_num_threads(2)
    dtype = getattr(torch, dtype_name)
    gen = torch.Generator().manual_seed(0)
    warm = torch.randn(4, 8, 64, generator=gen).to(dtype).requires_grad_(grad)
    _run(method, warm, chunk_size, grad)
    logits = torch.empty(shape, dtype=dtype).normal_(0.0, 3.0, generator=gen)
    logits.requires_grad_(grad)
    Path("/proc/self/clear_refs").write_text("5")
    base = _status_kib("VmRSS")
    start = time.perf_counter()
    out = _run(method, logits, chunk_size, grad)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    record = {
        "method": method,
        "extra_mib": (peak - base) / 1024,
        "logits_mib": logits.numel() * logits.element_size() / MIB,
        "seconds": seconds,
        "mean_entropy": out.double().mean().item(),
    }
    print(json.dumps(record))


def measure(method: str, args: argparse.Namespace, dtype_name: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--dtype", dtype_name]
    cmd += ["--shape", *map(str, args.shape), "--chunk-size", str(args.chunk_size)]
    cmd += ["--grad"] if args.grad else []
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{method} worker failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[8, 512, 50_000])
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], action="append")
    parser.add_argument("--chunk-size", type=int, default=512)
    parser.add_argument("--grad", action="store_true", help="also run backward")
    parser.add_argument("--worker", choices=["naive", "chunked"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        dtype = (args.dtype or ["float32"])[0]
        return worker(args.worker, args.shape, dtype, args.chunk_size, args.grad)
    mode = "forward+backward" if args.grad else "forward"
    print(
        f"shape {tuple(args.shape)}, chunk_size {args.chunk_size}, {mode}; peak extra = VmHWM − VmRSS"
    )
    for dtype_name in args.dtype or ["float32", "bfloat16"]:
        naive, chunked = (measure(m, args, dtype_name) for m in ("naive", "chunked"))
        gap = abs(naive["mean_entropy"] - chunked["mean_entropy"])
        print(
            f"{dtype_name:>9} logits ({naive['logits_mib']:.0f} MiB): "
            f"naive {naive['extra_mib']:.0f} MiB in {naive['seconds']:.2f} s, "
            f"chunked {chunked['extra_mib']:.0f} MiB in {chunked['seconds']:.2f} s, "
            f"ratio {naive['extra_mib'] / max(chunked['extra_mib'], 1e-9):.1f}x, "
            f"|mean H gap| {gap:.1e}"
        )


if __name__ == "__main__":
    main()
