"""Run `t1 demo` with each config in configs/ablations/ (and the default) and tabulate.

    python benchmarks/ablations.py --seeds 0 1 2              # full size (about 15 min a run)
    python benchmarks/ablations.py --seeds 0 --size medium    # shorter runs, same recipe

Variants that change only RL settings reuse the problems, traces and SFT model of the default
run with the same seed (`t1 demo --sft-from`), so their SFT accuracy is the default's and their
RL - SFT differences are paired. Each run writes runs/ablations/NAME-sSEED/; the table
(markdown) goes to stdout and to runs/ablations/table.md: held-out accuracy of the SFT and RL
models (mean ± sd over seeds, and the mean half-width of the runs' 95 % bootstrap intervals),
RL - SFT and RL - default RL (mean, and each seed's paired difference in brackets), and the
scaling gain (accuracy at the largest budget minus the smallest) of the RL model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# fewer steps and problems, same recipe: for when full-size runs don't fit the time at hand
SIZES = {
    "full": [],
    "medium": ["data.n_sft=1500", "rl_steps=60", "data.n_rl=600", "eval.n=1"],
}


def changes_sft(config: Path | None) -> bool:
    """Whether an ablation config sets anything that stages 1-3 (problems, traces, SFT) use."""
    from t1.demo import SFT_KEYS

    return config is not None and bool(set(yaml.safe_load(config.read_text())) & set(SFT_KEYS))


def launch(name: str, config: Path | None, seed: int, args: argparse.Namespace) -> None:
    """Run one demo unless its run directory already holds a finished one."""
    folder = args.out / f"{name}-s{seed}"
    if (folder / "headline.json").exists():
        return
    cmd = [sys.executable, "-m", "t1", "demo", "--out", str(folder), "--seed", str(seed)]
    if config is not None:
        cmd += ["--config", str(config)]
    base = name if name == "default" or changes_sft(config) else "default"
    if args.sft_runs is not None:  # every run's SFT stage from an earlier table's runs
        cmd += ["--sft-from", str(args.sft_runs / f"{base}-s{seed}")]
    elif base != name:
        # an RL-only variant starts from the default run's SFT model (same seed and size)
        cmd += ["--sft-from", str(args.out / f"{base}-s{seed}")]
    cmd += SIZES[args.size]
    # parallel runs share the cores: each gets its share of intra-op threads
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    folder.parent.mkdir(parents=True, exist_ok=True)
    print(f"running {name} seed {seed} (log: {folder}.log)", flush=True)
    with open(f"{folder}.log", "w") as log:
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"{name} seed {seed} failed (exit {done.returncode}); see {folder}.log")


def read_run(folder: Path) -> dict:
    sft = json.loads((folder / "eval" / "sft.json").read_text())["accuracy"]
    rl = json.loads((folder / "eval" / "rl.json").read_text())["accuracy"]
    scale = json.loads((folder / "eval" / "scale.json").read_text())
    rl_curve = next(r for r in scale["models"] if r["model"] == "RL")["sequential"]
    return {"sft": sft, "rl": rl, "gain": rl_curve[-1]["accuracy"] - rl_curve[0]["accuracy"]}


def fmt(runs: list[dict], key: str) -> str:
    """Mean ± sd over seeds, and the mean half-width of the runs' own 95 % intervals."""
    means = [r[key]["mean"] for r in runs]
    half = statistics.mean((r[key]["hi"] - r[key]["lo"]) / 2 for r in runs)
    sd = f" ± {statistics.stdev(means):.1%}" if len(means) > 1 else ""
    return f"{statistics.mean(means):.1%}{sd} (CI ±{half:.1%})"


def paired(diffs: list[float]) -> str:
    """Mean of per-seed differences, each seed's in brackets."""
    each = ", ".join(f"{d:+.1%}" for d in diffs)
    return f"{statistics.mean(diffs):+.1%} [{each}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "ablations")
    ap.add_argument("--only", nargs="*", help="names to run (default: all)")
    ap.add_argument(
        "--sft-runs",
        type=Path,
        help="take each run's problems, traces and SFT model from this earlier --out (same seeds "
        "and SFT settings), e.g. to compare RL settings without training SFT again",
    )
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (they share the cores)")
    args = ap.parse_args()
    configs = {"default": None} | {
        p.stem: p for p in sorted((ROOT / "configs" / "ablations").glob("*.yaml"))
    }
    names = [n for n in configs if not args.only or n in args.only]
    # the default and SFT-changing variants first: the RL-only ones start from the default's SFT
    first = [
        n for n in dict.fromkeys(["default", *names]) if n == "default" or changes_sft(configs[n])
    ]
    then = [n for n in names if n not in first]
    with ThreadPoolExecutor(args.jobs) as pool:
        for group in (first, then):
            jobs = [(n, configs[n], s, args) for n in group for s in args.seeds]
            list(pool.map(lambda job: launch(*job), jobs))
    rows = [
        "| run | seeds | SFT accuracy | RL accuracy | RL - SFT | RL - default RL | RL scaling gain |",
        "|---|---|---|---|---|---|---|",
    ]
    base = [read_run(args.out / f"default-s{s}") for s in args.seeds]
    for name in names:
        runs = [read_run(args.out / f"{name}-s{s}") for s in args.seeds]
        diff = [r["rl"]["mean"] - r["sft"]["mean"] for r in runs]
        vs = [r["rl"]["mean"] - b["rl"]["mean"] for r, b in zip(runs, base)]
        gain = statistics.mean(r["gain"] for r in runs)
        rows.append(
            f"| {name} | {' '.join(map(str, args.seeds))} | {fmt(runs, 'sft')} | "
            f"{fmt(runs, 'rl')} | {paired(diff)} | {paired(vs)} | {gain:+.1%} |"
        )
    table = "\n".join(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(f"size: {args.size}\n\n{table}\n")
    print(f"\nsize: {args.size}\n{table}")


if __name__ == "__main__":
    main()
