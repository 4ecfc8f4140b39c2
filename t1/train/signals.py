"""SIGINT / SIGTERM -> "stop after this step", shared by the trainers.

Contract: inside `with StopRequest() as stop:` the first SIGINT or SIGTERM only sets
`stop.requested`; the loop checks it after each optimiser step, saves a checkpoint and returns
normally (exit code 0), printing `resume_command(...)`. A second signal while the stop is
pending restores Python's default behaviour for it and re-raises it (SIGINT: KeyboardInterrupt;
SIGTERM: termination), so an impatient user can still abort at once. Handlers are installed only
in the main thread (Python allows nothing else) and restored on exit.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

DEFAULT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """A flag set by SIGINT/SIGTERM (or by `request()`), read by the training loop."""

    def __init__(self, signals: tuple[signal.Signals, ...] = DEFAULT_SIGNALS):
        self.signals = signals
        self.reason: str | None = None
        self._previous: dict[signal.Signals, Any] = {}

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str = "request") -> None:
        """Ask the loop to stop after its current step (what a signal does, callable in tests)."""
        if self.reason is None:
            self.reason = reason

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        if self.requested:
            # second signal: give up waiting for the step and behave as if we weren't here
            signal.signal(sig, self._previous.get(sig, signal.SIG_DFL))
            signal.raise_signal(sig)
            return
        self.request(sig.name)
        print(
            f"\n{sig.name} received: stopping after the current step "
            f"(send it again to abort at once)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def resume_command(stage: str, run_dir: str | Path) -> str:
    """The shell command that continues the run in `run_dir` from its latest checkpoint.

    It names the run's resolved config and sets `trainer.out` again, so it works from any
    working directory when `run_dir` is absolute.
    """
    run = Path(run_dir)
    config = shlex.quote(str(run / "config.yaml"))
    return f"t1 {stage} {config} {shlex.quote(f'trainer.out={run}')} --resume"
