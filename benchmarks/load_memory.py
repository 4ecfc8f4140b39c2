"""Peak host memory per rank of loading a model that FSDP2 shards: whole, or by slices.

    python benchmarks/load_memory.py                 # N = 2 and 4 processes, bf16 files
    python benchmarks/load_memory.py --world 2 --dtype float32

The model: benchmarks/memory.py's Llama-shaped ~100 M-parameter model (hidden 768, 12 layers,
vocabulary 32 000, tied), randomly initialised and saved once as an HF folder
(`t1.models.loading.save_model`: model.safetensors, config, tokenizer) in `--dtype`. Then, for
each N, two fresh `torchrun --nproc_per_node N` launches on gloo, each rank loading it for
training with `model.dtype` = `--dtype` and FSDP2 (`train.fsdp` auto):

    full     `t1.models.load_model` whole on CPU, then `prepare_learner` (keeps its slice)
    bounded  `t1.train.sharded_load.load_learner` (meta device, FSDP2, slices read from the file)

Each rank resets the kernel's peak-RSS counter after its imports and the process group (writes
"5" to /proc/self/clear_refs: VmHWM := VmRSS), then loads, and reports VmHWM - that baseline
("peak extra": every byte its pages reached, anonymous or file-backed, the page cache of the
safetensors file mapped by safetensors included), and at the end RssAnon and RssFile - baseline.
The largest rank is shown. Both runs end holding the same float32 shards (4 P / N bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from memory import FSDP_MODEL  # benchmarks/memory.py beside this script: ~100.1 M parameters

MIB = 1024 * 1024


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1))


def write_model(folder: Path, dtype: str) -> int:
    """The randomly initialised model as an HF folder in `dtype`; returns its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from t1.models import build_char_tokenizer
    from t1.models.loading import DTYPES, save_model

    tok = build_char_tokenizer("0123456789")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**FSDP_MODEL)).to(DTYPES[dtype])
    save_model(model, tok, folder)
    return sum(p.numel() for p in model.parameters())


def load_worker(mode: str, folder: str, dtype: str) -> None:
    """One rank under torchrun: load for training, print its memory as one JSON line."""
    import torch
    import torch.distributed as dist

    from t1.config import ModelConfig, TrainConfig
    from t1.models import load_model
    from t1.models.sharded import local_shards
    from t1.train.distributed import init_distributed
    from t1.train.sharded_load import load_sharded
    from t1.train.sharding import prepare_learner

    torch.set_num_threads(1)
    info = init_distributed("cpu")
    cfg, train = ModelConfig(path=folder, dtype=dtype, device="cpu"), TrainConfig()
    dist.barrier()
    Path("/proc/self/clear_refs").write_text("5")
    base = {f: _status_kib(f) for f in ("VmRSS", "RssAnon", "RssFile")}
    if mode == "full":
        model, _ = load_model(cfg)
        model = prepare_learner(model, train, dtype, info)
    else:
        loaded = load_sharded(cfg, train, info)
        if loaded is None:
            raise SystemExit("the bounded path did not apply")
        model = loaded[0]
    record = {
        "rank": info.rank,
        "peak_extra_mib": (_status_kib("VmHWM") - base["VmRSS"]) / 1024,
        "anon_mib": (_status_kib("RssAnon") - base["RssAnon"]) / 1024,
        "file_mib": (_status_kib("RssFile") - base["RssFile"]) / 1024,
        "shard_mib": sum(t.numel() * t.element_size() for t in local_shards(model)) / MIB,
    }
    everyone = [None] * info.world
    dist.all_gather_object(everyone, record)
    if info.main:
        print(json.dumps(everyone))
    dist.barrier()  # no rank tears gloo down while another still gathers
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(mode: str, world: int, folder: Path, dtype: str) -> list[dict]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={world}"]
    cmd += [f"--master_port={_free_port()}", __file__, "--worker", mode, str(folder), dtype]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{mode} at N = {world} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return load_worker(*args.worker)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        n = write_model(folder, args.dtype)
        size = sum(f.stat().st_size for f in folder.glob("*.safetensors")) / MIB
        print(f"{n / 1e6:.1f} M parameters, {args.dtype} file of {size:.0f} MiB; MiB per rank")
        print("  N | path    | peak extra | anon at end | file pages at end | fp32 shard")
        for world in args.world:
            for mode in ("full", "bounded"):
                ranks = launch(mode, world, folder, args.dtype)
                top = max(ranks, key=lambda r: r["peak_extra_mib"])
                print(
                    f"  {world} | {mode:<7} | {top['peak_extra_mib']:10.0f} | "
                    f"{top['anon_mib']:11.0f} | {top['file_mib']:17.0f} | {top['shard_mib']:.0f}"
                )


if __name__ == "__main__":
    main()
