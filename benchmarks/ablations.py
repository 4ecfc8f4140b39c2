"""Run `t1 demo` with each config in configs/ablations/ (and the default) and tabulate.

    python benchmarks/ablations.py --seeds 0 1 2              # full size (about 15 min a run)
    python benchmarks/ablations.py --seeds 0 --size medium    # shorter runs, same recipe

Each run writes runs/ablations/NAME-sSEED/; the table (markdown) goes to stdout and to
runs/ablations/table.md: held-out accuracy of the SFT and RL models (mean over seeds, and the
95 % interval of each run), RL - SFT, and the scaling gain (accuracy at the largest budget minus
the smallest) of the RL model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# fewer steps and problems, same recipe: for when full-size runs don't fit the time at hand
SIZES = {
    "full": [],
    "medium": ["data.n_sft=1500", "rl_steps=60", "data.n_rl=600", "eval.n=1"],
}


def run_one(name: str, config: Path | None, seed: int, size: str, out: Path) -> dict:
    folder = out / f"{name}-s{seed}"
    if not (folder / "headline.json").exists():
        cmd = [sys.executable, "-m", "t1", "demo", "--out", str(folder), "--seed", str(seed)]
        if config is not None:
            cmd += ["--config", str(config)]
        cmd += SIZES[size]
        subprocess.run(cmd, check=True, cwd=ROOT)
    sft = json.loads((folder / "eval" / "sft.json").read_text())["accuracy"]
    rl = json.loads((folder / "eval" / "rl.json").read_text())["accuracy"]
    scale = json.loads((folder / "eval" / "scale.json").read_text())
    rl_curve = next(r for r in scale["models"] if r["model"] == "RL")["sequential"]
    return {"sft": sft, "rl": rl, "gain": rl_curve[-1]["accuracy"] - rl_curve[0]["accuracy"]}


def fmt(runs: list[dict], key: str) -> str:
    means = [r[key]["mean"] for r in runs]
    ci = ", ".join(f"[{r[key]['lo']:.1%}, {r[key]['hi']:.1%}]" for r in runs)
    sd = f" ± {statistics.stdev(means):.1%}" if len(means) > 1 else ""
    return f"{statistics.mean(means):.1%}{sd} {ci}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "ablations")
    ap.add_argument("--only", nargs="*", help="names to run (default: all)")
    args = ap.parse_args()
    configs = {"default": None} | {
        p.stem: p for p in sorted((ROOT / "configs" / "ablations").glob("*.yaml"))
    }
    rows = [
        "| run | seeds | SFT accuracy | RL accuracy | RL - SFT | RL scaling gain |",
        "|---|---|---|---|---|---|",
    ]
    for name, config in configs.items():
        if args.only and name not in args.only:
            continue
        runs = [run_one(name, config, s, args.size, args.out) for s in args.seeds]
        diff = statistics.mean(r["rl"]["mean"] - r["sft"]["mean"] for r in runs)
        gain = statistics.mean(r["gain"] for r in runs)
        rows.append(
            f"| {name} | {' '.join(map(str, args.seeds))} | {fmt(runs, 'sft')} | "
            f"{fmt(runs, 'rl')} | {diff:+.1%} | {gain:+.1%} |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(f"size: {args.size}\n\n{table}\n")
    print(f"\nsize: {args.size}\n{table}")


if __name__ == "__main__":
    main()
