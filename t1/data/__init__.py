"""Records and loaders (problems, traces), synthetic tasks, and trial-and-error trace synthesis.

problems = load_problems("math500.jsonl")            # DataError names file:line on bad rows
problems = load_problems(Source("HuggingFaceH4/MATH-500"))   # a Hub dataset (or parquet, ...)
traces = synthesize("countdown", SynthConfig(n=100))  # list[Trace]
"""

from __future__ import annotations

from typing import Any

from t1.data.fields import Fields
from t1.data.problems import Problem, load_problems, problems_for, write_problems
from t1.data.sources import Loaded, Source
from t1.data.splits import assert_disjoint, generate_splits, normalize_prompt, write_splits
from t1.data.tasks import Task, get_task
from t1.data.traces import Trace, load_traces, traces_for, write_traces

_LAZY = {"synthesize": "t1.data.synth", "run_synth": "t1.data.synth"}


def __getattr__(name: str) -> Any:
    """`synthesize` and `run_synth` import t1.rewards; load them on first use only."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 't1.data' has no attribute {name!r}")


__all__ = [
    "Fields",
    "Loaded",
    "Problem",
    "Source",
    "Task",
    "Trace",
    "assert_disjoint",
    "generate_splits",
    "get_task",
    "load_problems",
    "load_traces",
    "normalize_prompt",
    "problems_for",
    "run_synth",
    "synthesize",
    "traces_for",
    "write_problems",
    "write_splits",
    "write_traces",
]
