"""Run a test script as two gloo ranks under torchrun (CPU), failing with its output."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from launch import run_child, torchrun  # noqa: E402  (tests/train/launch.py)

ROOT = Path(__file__).parents[2]


def run_two_ranks(script: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run_child(torchrun(2, str(script), *args), env)
