"""Configs, verifiers and fault injection for the RL reliability tests (test_rl_reliability.py).

A config names a verifier here as `reward.task="rl_faults:<factory>"`; `get_verifier` imports
this module, in the test process or in a `python -m t1 rl` subprocess (PYTHONPATH=tests/train).
Importing it also arms the fault that the environment asks for:

    T1_TEST_KILL_IN_SAVE=N   SIGKILL this process while it writes checkpoint step N: by default
                             after the weights, optimizer and anchor shards are in
                             `.step-N.tmp/` and before the trainer state, the COMPLETE marker
                             and the rename
    T1_TEST_KILL_AT=NAME     ... instead just before it writes `.step-N.tmp/NAME` (a tensor
                             folder such as `optimizer`: inside a sharded save)
    T1_TEST_KILL_RANK=R      ... only on rank R (default 0)
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import yaml

from t1.rewards import RewardResult

KILL_IN_SAVE = "T1_TEST_KILL_IN_SAVE"
KILL_AT = "T1_TEST_KILL_AT"
KILL_RANK = "T1_TEST_KILL_RANK"

TINY = {
    "hidden_size": 32,
    "num_layers": 1,
    "num_heads": 2,
    "num_kv_heads": 1,
    "intermediate_size": 64,
    "max_position": 64,
}


def write_problems(path: Path, n: int = 8, bad_line: str | None = None) -> Path:
    lines = [json.dumps({"id": f"p{i}", "prompt": f"q{i}", "answer": "0"}) for i in range(n)]
    if bad_line is not None:
        lines.insert(1, bad_line)  # line 2 of the file
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_config(tmp: Path, **sections: dict) -> Path:
    """A YAML config of a tiny, fast RL run; `sections` update its sections."""
    cfg = {
        "model": {"path": "tiny", "device": "cpu", "tiny": TINY},
        "data": {"train": str(write_problems(tmp / "train.jsonl"))},
        "trainer": {
            "out": str(tmp / "run"),
            "steps": 3,
            "save_every": 1,
            "keep_last": 0,
            "progress": False,
            "report_to": [],
            "sample_every": 0,
        },
        "reward": {
            "task": "rl_faults:digit_first",
            "truncation_penalty": None,
            "repetition_penalty": None,
            "garbage_penalty": None,
        },
        "sampling": {"max_new_tokens": 4, "temperature": 1.0},
        # EMA anchor, KL in the advantage, entropy bonus, warm-up + cosine: every saved state acts
        "rl": {"k": 4, "prompts_per_step": 2, "beta": 0.05, "entropy_coef": 0.01},
        "optim": {"lr": 0.01, "schedule": "cosine", "warmup_steps": 2},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def digit_first(**kwargs: object) -> DigitFirst:
    return DigitFirst()


class DigitFirst:
    """Correct when the response starts with a digit (rl_toy's task, importable by name)."""

    def __call__(self, text: str, reference: str) -> RewardResult:
        ok = bool(text) and text[0].isdigit()
        return RewardResult(score=float(ok), correct=ok, answer=text[:1] or None)


class Flaky(DigitFirst):
    """Hangs on its first call and raises on its second; grades the rest like DigitFirst.

    The trainer builds a fresh verifier every step, so each step has one hang and one raise.
    """

    hang_s = 30.0

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, text: str, reference: str) -> RewardResult:
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.hang_s)
        if self.calls == 2:
            raise RuntimeError("verifier bug")
        return super().__call__(text, reference)


def flaky(**kwargs: object) -> Flaky:
    return Flaky()


def _arm_kill_in_save(step: int) -> None:
    from t1.train import checkpoint

    at = os.environ.get(KILL_AT, checkpoint.STATE)
    if os.environ.get("RANK", "0") != os.environ.get(KILL_RANK, "0"):
        return

    def killing(real: Any) -> Any:
        def write(path: Any, *args: Any, **kwargs: Any) -> None:
            path = Path(path)
            if path.parent.name == f".step-{step}.tmp" and path.name == at:
                os.kill(os.getpid(), signal.SIGKILL)
            real(path, *args, **kwargs)

        return write

    checkpoint.write_json = killing(checkpoint.write_json)
    checkpoint.save_tensors = killing(checkpoint.save_tensors)


if os.environ.get(KILL_IN_SAVE):
    _arm_kill_in_save(int(os.environ[KILL_IN_SAVE]))
