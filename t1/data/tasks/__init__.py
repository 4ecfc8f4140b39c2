"""Synthetic tasks for CPU-scale work: a registry from name to `Task`.

get_task("countdown").generate(1000, seed=0, count=4, ops="+", pick=2)
"""

from __future__ import annotations

from t1.data.tasks.arithmetic import Arithmetic
from t1.data.tasks.base import Attempt, Task
from t1.data.tasks.countdown import Countdown
from t1.data.tasks.linear import Linear
from t1.errors import ConfigError

TASKS: dict[str, type[Task]] = {"arithmetic": Arithmetic, "countdown": Countdown, "linear": Linear}


def get_task(name: str) -> Task:
    """The task registered as `name`; ConfigError listing the valid names otherwise."""
    if name not in TASKS:
        raise ConfigError(f"unknown synthetic task '{name}' (valid: {', '.join(sorted(TASKS))})")
    return TASKS[name]()


__all__ = ["TASKS", "Attempt", "Task", "get_task"]
