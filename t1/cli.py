"""`t1 demo | synth | sft | rl | eval | scale | report`.

Every training or evaluation subcommand takes an optional YAML config and dotted overrides:

    t1 rl configs/tiny_rl.yaml rl.k=32 optim.lr=1e-5 --resume
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap

from t1.config import STAGES, describe, load_config
from t1.errors import T1Error

# subcommand -> (module, function, one-line help)
COMMANDS = {
    "synth": ("t1.data.synth", "run_synth", "synthesize trial-and-error chain-of-thought traces"),
    "sft": ("t1.train.sft", "run_sft", "supervised fine-tuning on traces"),
    "rl": ("t1.train.rl_run", "run_rl", "T1 reinforcement learning"),
    "eval": ("t1.eval.evaluate", "run_eval", "accuracy, pass@k and maj@k of a model on problems"),
    "scale": ("t1.eval.scaling", "run_scale", "inference scaling by truncating the thinking"),
}


def _keys_help(stage: type) -> str:
    lines = ["config keys (set in the YAML file or as key=value):"]
    for key, tp, default, comment in describe(stage):
        lines.append(f"  {key} = {default}  [{tp}]")
        if comment:
            lines.extend(
                textwrap.wrap(comment, 96, initial_indent="      ", subsequent_indent="      ")
            )
    return "\n".join(lines)


def build_parser(with_keys: bool = True) -> argparse.ArgumentParser:
    """The argument parser; `with_keys` adds every config key to each subcommand's --help."""
    parser = argparse.ArgumentParser(
        prog="t1",
        description="The T1 recipe: trial-and-error SFT, RL scaled for exploration, "
        "inference scaling by truncation (arXiv 2501.11651).",
    )
    from t1 import __version__

    parser.add_argument("--version", action="version", version=f"t1 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="the whole recipe end to end on one CPU",
        description="Synthetic task -> trial-and-error traces -> SFT -> curated RL -> eval -> "
        "inference scaling -> HTML report, in one run directory.",
    )
    demo.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    demo.add_argument("--quick", action="store_true", help="minimal sizes (about 3 minutes)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--config", help="YAML file of demo settings (e.g. configs/ablations/*.yaml)")
    demo.add_argument(
        "--sft-from",
        metavar="RUN",
        help="take problems, traces and SFT model from an earlier demo run with the same "
        "data, model, synth and SFT settings (for RL-only variants such as the ablations)",
    )
    demo.add_argument("overrides", nargs="*", metavar="key=value", help="demo config overrides")

    for name, (_, _, text) in COMMANDS.items():
        stage = STAGES[name]
        p = sub.add_parser(
            name,
            help=text,
            description=text,
            epilog=_keys_help(stage) if with_keys else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("config", nargs="?", help="YAML config file (optional)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides")
        if name in ("sft", "rl"):
            p.add_argument(
                "--resume", action="store_true", help="continue from the latest complete checkpoint"
            )

    report = sub.add_parser(
        "report",
        help="static HTML report of a run directory",
        description="Write RUN_DIR/report.html.",
    )
    report.add_argument("run_dir", help="a run directory written by t1")
    return parser


def _split_config(args: argparse.Namespace) -> None:
    # `t1 rl rl.k=4` (no file): the first positional is an override, not a config path
    if args.config is not None and "=" in args.config and not os.path.exists(args.config):
        args.overrides.insert(0, args.config)
        args.config = None


def _call(module: str, function: str, *a, **kw) -> int:
    try:
        fn = getattr(importlib.import_module(module), function)
    except (ModuleNotFoundError, AttributeError) as e:
        if module in str(e) or function in str(e):
            print(f"t1: '{module}.{function}' is not built yet", file=sys.stderr)
            return 3
        raise
    result = fn(*a, **kw)
    return result if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # listing every config key reads the config classes' source: only worth it for --help
    args = build_parser(with_keys=any(a in ("-h", "--help") for a in argv)).parse_args(argv)
    try:
        if args.command == "demo":
            return _call(
                "t1.demo",
                "run_demo",
                out=args.out,
                quick=args.quick,
                seed=args.seed,
                overrides=args.overrides,
                config=args.config,
                sft_from=args.sft_from,
            )
        if args.command == "report":
            return _call("t1.eval.report", "build_report", args.run_dir)
        _split_config(args)
        cfg = load_config(STAGES[args.command], args.config, args.overrides)
        module, function, _ = COMMANDS[args.command]
        kwargs = {"resume": args.resume} if args.command in ("sft", "rl") else {}
        return _call(module, function, cfg, **kwargs)
    except T1Error as e:
        print(f"t1 {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"t1 {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
