"""Run every benchmark in this folder and print one table of ratios (t1 against its baseline).

    python benchmarks/run_all.py                 # small, fast settings (about 1.5 min on 2 cores)
    python benchmarks/run_all.py --full          # each script's own defaults (much longer)
    python benchmarks/run_all.py --only rollout rl_vs_trl

Each benchmark runs as a subprocess with this interpreter; its stdout is parsed for the ratio
lines it prints. A script that is missing, fails, times out or prints nothing parseable gets a
row saying so instead of stopping the run. Scripts in the folder that this runner does not know
are listed as "not run". A ratio > 1 means t1 is better (faster, or less memory).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / "runs" / "demo"  # where `t1 demo` writes by default
Row = tuple[str, str, str]  # (measure, value, note)


def _float(pattern: str, text: str) -> list[re.Match[str]]:
    return list(re.finditer(pattern, text, re.MULTILINE))


def parse_rollout(out: str) -> list[Row]:
    """`NAME (...)` header lines, each followed by `  ratio  X.XXx`."""
    rows, name = [], "?"
    for line in out.splitlines():
        if line and not line.startswith(" ") and "(" in line:
            name = line.split(" (")[0]
        m = re.match(r"\s+ratio\s+([\d.]+)x", line)
        if m:
            rows.append((f"{name}: HFEngine / model.generate tok/s", f"{m.group(1)}x", ""))
        m = re.match(r"\s+fast path ratio\s+([\d.]+)x", line)
        if m:
            rows.append((f"{name}: decode fast path / model forward tok/s", f"{m.group(1)}x", ""))
        if "skipped" in line:
            rows.append((line.split(":")[0], "-", line.split(":", 1)[1].strip()))
    return rows


def parse_learner(out: str) -> list[Row]:
    """`rows F% filled (...)` header lines, each followed by `  ratio  X.XXx`."""
    pattern = r"^rows (\d+%) filled \((.*)\)\n.*\n\s+ratio\s+([\d.]+)x"
    return [
        (f"learner fwd+bwd, {m.group(1)} filled rows: dense / packed time", f"{m.group(3)}x", "")
        for m in _float(pattern, out)
    ]


def parse_rewards(out: str) -> list[Row]:
    """The JSON report: speedups against Math-Verify alone, and verdict agreement."""
    report = json.loads(out[out.index("{") :])
    return [
        (
            f"grading {name} / Math-Verify items/s",
            f"{report[name]['speedup']:.2f}x",
            f"agreement {report[name]['agreement']:.1%}, {report['items']} items",
        )
        for name in ("single", "pool")
    ]


def parse_entropy(out: str) -> list[Row]:
    """`DTYPE logits (N MiB): naive A MiB ..., chunked B MiB ..., ratio R.Rx, ...` lines."""
    return [
        (f"entropy peak memory naive / chunked, {m.group(1)}", f"{m.group(3)}x", m.group(2))
        for m in _float(r"^\s*(\w+) logits \((\d+ MiB)\):.*ratio ([\d.]+)x", out)
    ]


def parse_rl(out: str) -> list[Row]:
    """`ratio NAME t1/trl: X.XXx` lines, and `NAME t1 - trl: +G (2 s.e. E)` reward gaps."""
    rows: list[Row] = [
        (f"RL {m.group(1)}: t1 / TRL GRPOTrainer", f"{m.group(2)}x", "")
        for m in _float(r"^ratio (\S+) t1/trl: ([\d.]+)x", out)
    ]
    rows += [
        (f"RL {m.group(1)}: t1 - TRL", m.group(2), f"difference; 2 s.e. {m.group(3)}")
        for m in _float(r"^(.*reward.*) t1 - trl: ([-+][\d.]+) \(2 s\.e\. ([\d.]+)\)", out)
    ]
    return rows


def parse_sft(out: str) -> list[Row]:
    """One line per setting: format share, accuracy with its interval, retry share."""
    rows = []
    pattern = (
        r"^T=(\S+) max_new_tokens=(\d+) n=(\d+): format ([\d.]+%).*accuracy ([\d.]+%) "
        r"\[95 % Wilson ([\d.]+%), ([\d.]+%)\], >= 1 retry ([\d.]+%)"
    )
    for m in _float(pattern, out):
        t, _, n, fmt, acc, lo, hi, retry = m.groups()
        note = f"n={n}, T={t}"
        rows += [
            ("SFT model: follows the trace format", fmt, note),
            ("SFT model: held-out accuracy", acc, f"{note}, 95 % Wilson [{lo}, {hi}]"),
            ("SFT model: responses with >= 1 retry", retry, note),
        ]
    return rows


@dataclass
class Bench:
    script: str
    parse: Callable[[str], list[Row]]
    # arguments for a quick run (default) and for --full
    quick: list[str] = field(default_factory=list)
    full: list[str] = field(default_factory=list)
    # run only when named with --only (too long for a routine run)
    on_request: bool = False


BENCHES = {
    "rl_vs_trl": Bench("rl_vs_trl.py", parse_rl, ["--steps", "10", "--seeds", "0"]),
    "rollout": Bench("rollout.py", parse_rollout, ["--skip-smollm2", "--repeats", "3"]),
    "learner": Bench("learner.py", parse_learner, ["--repeats", "8"]),
    "rewards": Bench("rewards.py", parse_rewards, ["--workers", "2"]),
    "entropy_memory": Bench(
        "entropy_memory.py", parse_entropy, ["--shape", "4", "512", "32000", "--dtype", "float32"]
    ),
    # end-to-end accuracy table of the recipe's ablations, not a ratio; hours at full size
    "ablations": Bench("ablations.py", lambda out: [], on_request=True),
    # the demo's headline over seeds and thread counts, a table not a ratio; ~3 hours
    "demo_seeds": Bench("demo_seeds.py", lambda out: [], on_request=True),
    # SmolLM2-135M through the whole recipe; its report, not a ratio
    "smollm2_recipe": Bench("smollm2_recipe.py", lambda out: [], ["--quick"], on_request=True),
    # held-out behaviour of the SFT model that `t1 demo` trained (run the demo first)
    "sft_heldout": Bench(
        "sft_heldout.py",
        parse_sft,
        [str(DEMO / "sft" / "final"), str(DEMO / "data" / "test.jsonl")],
        [str(DEMO / "sft" / "final"), str(DEMO / "data" / "test.jsonl"), "--temperature", "0", "1"],
        on_request=True,
    ),
}


def run_one(name: str, bench: Bench, full: bool, timeout: float) -> tuple[list[Row], float]:
    path = HERE / bench.script
    if not path.exists():
        return [(name, "-", f"missing: {bench.script}")], 0.0
    cmd = [sys.executable, str(path), *(bench.full if full else bench.quick)]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return [(name, "-", f"timed out after {timeout:.0f} s")], time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        return [(name, "-", f"failed (exit {done.returncode}): {last[:120]}")], seconds
    try:
        rows = bench.parse(done.stdout)
    except (ValueError, KeyError, json.JSONDecodeError) as e:
        rows = [(name, "-", f"output not understood ({type(e).__name__}: {e})")]
    return rows or [(name, "-", "ran, but printed no ratio line")], seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="each script's default (long) settings")
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run just these")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark")
    args = ap.parse_args()
    names = args.only or [n for n, b in BENCHES.items() if not b.on_request]
    known = {b.script for b in BENCHES.values()} | {Path(__file__).name}
    table: list[tuple[str, Row, float]] = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows, seconds = run_one(name, BENCHES[name], args.full, args.timeout)
        table += [(name, row, seconds) for row in rows]
    for name, bench in BENCHES.items():
        if name not in names:
            why = "on request: --only " + name if bench.on_request else "not selected"
            table.append((name, ("-", "-", why), 0.0))
    for path in sorted(HERE.glob("*.py")):
        if path.name not in known and not path.name.startswith("_"):
            table.append((path.stem, ("-", "-", "not run: unknown to run_all.py"), 0.0))
    width = max(len(r[1][0]) for r in table)
    print(f"{'benchmark':<15} {'measure':<{width}} {'ratio':>8}  {'time':>6}  note")
    for name, (measure, value, note), seconds in table:
        took = f"{seconds:5.0f}s" if seconds else ""
        print(f"{name:<15} {measure:<{width}} {value:>8}  {took:>6}  {note}")


if __name__ == "__main__":
    main()
