"""A rich progress bar with key metrics beside it, shared by every stage."""

from __future__ import annotations

import os
import sys
from typing import Any


def is_tty() -> bool:
    return sys.stdout.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")


class Progress:
    """A rich progress bar with key metrics beside it; silent when stdout is not a terminal."""

    def __init__(self, total: int, description: str, enabled: bool = True, completed: int = 0):
        self.enabled = enabled and is_tty()
        self._bar = None
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[metrics]}"),
            )
            self._task = self._bar.add_task(
                description, total=total, completed=completed, metrics=""
            )

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def update(self, advance: int = 1, **metrics: float) -> None:
        if self._bar is None:
            return
        text = "  ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
        )
        self._bar.update(self._task, advance=advance, metrics=text)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
