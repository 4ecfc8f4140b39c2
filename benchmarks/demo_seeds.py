"""`t1 demo` over several seeds and intra-op thread counts: how much its headline varies.

    python benchmarks/demo_seeds.py --seeds 0 1 2 3 4 --threads 1 2 [--jobs 2]
    python benchmarks/demo_seeds.py --sft-from runs/demo_seeds_before --out runs/demo_seeds

With --sft-from DIR each run takes its problems, traces and SFT model from DIR/sS-tT, an
earlier sweep's run of the same seed and thread count (`t1 demo --sft-from`, which refuses a
run whose SFT settings differ): a change to the RL or evaluation settings is then measured
without training the same SFT models again (the minutes printed then leave out SFT).

Each run is the default demo (README's first command) with `--seed S` and OMP_NUM_THREADS=T,
in runs/demo_seeds/sS-tT/ (a finished run is not rerun). A run is reproducible on one machine
for a given seed and thread count; another thread count (or another CPU) rounds the learner's
sums differently, and RL, which samples from the policy, amplifies that into another
trajectory. So the claim a user can rely on is the distribution printed here, not one run.

Printed (markdown, also runs/demo_seeds/table.md): per run the held-out accuracy of SFT and RL,
RL - SFT in points and in standard errors (from the runs' per-problem bootstrap intervals, as
the demo's headline computes it), the RL model's scaling gain (accuracy at the largest budget
minus at the smallest), its accuracy at the largest budget beside majority vote over k = 2, 4
samples of budget / k (the same tokens in parallel) and the run's minutes; then the minimum,
median and maximum of each.
With --jobs 2 two runs share the 2 cores, so their minutes are not the demo's time alone.
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

ROOT = Path(__file__).resolve().parents[1]


def run_dir(out: Path, seed: int, threads: int) -> Path:
    return out / f"s{seed}-t{threads}"


def launch(out: Path, seed: int, threads: int, extra: list[str], sft_from: Path | None) -> None:
    """One demo, unless its folder already holds a finished one."""
    folder = run_dir(out, seed, threads)
    if (folder / "headline.json").exists():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "t1", "demo", "--out", str(folder), "--seed", str(seed), *extra]
    if sft_from is not None:
        cmd += ["--sft-from", str(run_dir(sft_from, seed, threads))]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    print(f"running seed {seed}, {threads} thread(s) (log: {folder}.log)", flush=True)
    with open(f"{folder}.log", "w") as log:
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"seed {seed}, {threads} threads failed; see {folder}.log")


def read(folder: Path) -> dict[str, float]:
    """The numbers of one finished run (the same arithmetic as t1.demo.headline)."""
    sft = json.loads((folder / "eval" / "sft.json").read_text())["accuracy"]
    rl = json.loads((folder / "eval" / "rl.json").read_text())["accuracy"]
    scale = json.loads((folder / "eval" / "scale.json").read_text())
    rl_scale = next(r for r in scale["models"] if r["model"] == "RL")
    curve = rl_scale["sequential"]
    # the same tokens as the largest budget spent in parallel: majority of k samples of b / k
    par = {
        p["k"]: p["accuracy"]
        for p in rl_scale.get("parallel", [])
        if p["budget"] == curve[-1]["budget"]
    }
    se = ((sft["hi"] - sft["lo"]) ** 2 + (rl["hi"] - rl["lo"]) ** 2) ** 0.5 / 3.92
    diff = rl["mean"] - sft["mean"]
    minutes = json.loads((folder / "headline.json").read_text()).get("minutes", float("nan"))
    return {
        "sft": sft["mean"],
        "rl": rl["mean"],
        "diff": diff,
        "se_ratio": diff / se if se else float("inf"),
        "gain": curve[-1]["accuracy"] - curve[0]["accuracy"],
        "at_max": curve[-1]["accuracy"],
        "maj2": par.get(2, float("nan")),
        "maj4": par.get(4, float("nan")),
        "minutes": minutes,
    }


def table(rows: dict[tuple[int, int], dict[str, float]]) -> str:
    lines = [
        "| seed | threads | SFT | RL | RL - SFT | (s.e.) | RL scaling gain | RL at 200 tokens: "
        "1 x 200 | 2 x 100 | 4 x 50 | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (seed, threads), r in sorted(rows.items()):
        lines.append(
            f"| {seed} | {threads} | {r['sft']:.1%} | {r['rl']:.1%} | {100 * r['diff']:+.1f} | "
            f"{r['se_ratio']:.1f} | {100 * r['gain']:+.1f} | {r['at_max']:.1%} | "
            f"{r['maj2']:.1%} | {r['maj4']:.1%} | {r['minutes']:.1f} |"
        )
    lines.append("")
    lines.append("| over all runs | min | median | max |")
    lines.append("|---|---|---|---|")
    for key, name, scale in [
        ("diff", "RL - SFT (points)", 100),
        ("se_ratio", "RL - SFT (standard errors)", 1),
        ("gain", "RL scaling gain (points)", 100),
        ("rl", "RL accuracy (%)", 100),
        ("sft", "SFT accuracy (%)", 100),
        ("at_max", "RL at 200 tokens, one sample (%)", 100),
        ("maj2", "RL, majority of 2 x 100 tokens (%)", 100),
        ("maj4", "RL, majority of 4 x 50 tokens (%)", 100),
    ]:
        values = [r[key] * scale for r in rows.values()]
        lines.append(
            f"| {name} | {min(values):.1f} | {statistics.median(values):.1f} | {max(values):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (they share the cores)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "demo_seeds")
    ap.add_argument(
        "--sft-from", type=Path, help="earlier sweep whose SFT stages the runs reuse (see above)"
    )
    ap.add_argument("extra", nargs="*", help="demo overrides passed to every run (key=value)")
    args = ap.parse_args()
    jobs = [(s, t) for t in args.threads for s in args.seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(lambda job: launch(args.out, *job, args.extra, args.sft_from), jobs))
    rows = {(s, t): read(run_dir(args.out, s, t)) for s, t in jobs}
    text = table(rows)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
