"""Starting test processes: one child, or N under torchrun, with the child's output on failure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def child_env(**extra: str) -> dict[str, str]:
    """One intra-op thread (bitwise comparisons need equal thread counts); tests/train
    importable (rl_faults verifiers, the worker's helpers)."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
        **extra,
    }


def torchrun(n: int, *args: str) -> list[str]:
    """The command line of `torchrun --standalone --nproc_per_node n args...`.

    Standalone: torchrun's store binds a free port itself (port 0) and hands it to the ranks. A
    port picked here and released before torchrun binds it can meanwhile be taken by any other
    process on the machine (another launch, an outgoing connection): EADDRINUSE.
    """
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n}",
        *args,
    ]


def run_child(args: list[str], env: dict[str, str] | None = None, timeout: float = 400) -> str:
    """Run a child process; on failure, fail with the end of what it printed. A child still
    running after `timeout` seconds (a collective that hangs) is killed with all it started."""
    proc = subprocess.Popen(
        args,
        env=env or child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{args[3:6]} still running after {timeout} s:\n{out[-3000:]}\n{err[-6000:]}")
    if proc.returncode != 0:
        pytest.fail(f"{args[3:6]} exited {proc.returncode}:\n{out[-3000:]}\n{err[-6000:]}")
    return out
