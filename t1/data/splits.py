"""Problem sets for training, RL prompts and held-out tests, and the check that they are disjoint.

Two problems are "the same" when their prompts match after `normalize_prompt` (Unicode NFKC,
case-folded, whitespace collapsed). A held-out test set that shares a normalised prompt with any
training or RL prompt is a leak, and `assert_disjoint` refuses it.

Generated splits come from one `Task.generate` call, which returns problems unique by the task's
`canonical` key (stronger than the prompt: "Make 9 from 3 8 1 5" and "... 8 3 5 1" are one problem),
so they are disjoint by construction; `write_splits` still checks before writing.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

from t1.data.problems import Problem, write_problems
from t1.data.tasks import Task, get_task
from t1.errors import ConfigError, DataError

_SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]+")


def normalize_prompt(text: str) -> str:
    """The form prompts are compared in: NFKC, case-folded, runs of whitespace as one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def overlap(a: list[Problem], b: list[Problem]) -> list[str]:
    """Normalised prompts found in both sets, in `a`'s order."""
    keys = {normalize_prompt(p.prompt) for p in b}
    seen: set[str] = set()
    out = []
    for p in a:
        key = normalize_prompt(p.prompt)
        if key in keys and key not in seen:
            seen.add(key)
            out.append(key)
    return out


def assert_disjoint(sets: dict[str, list[Problem]]) -> None:
    """DataError naming the first two sets that share a (normalised) prompt, with an example."""
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = overlap(sets[a], sets[b])
            if shared:
                raise DataError(
                    f"problem sets '{a}' and '{b}' share {len(shared)} prompt(s), "
                    f"e.g. {shared[0][:80]!r}: a held-out set must not overlap training prompts"
                )


def generate_splits(
    task: Task | str, sizes: dict[str, int], seed: int = 0, knobs: dict[str, Any] | None = None
) -> dict[str, list[Problem]]:
    """Disjoint problem sets of the given sizes (e.g. {"train": 2000, "rl": 500, "test": 500})."""
    task = get_task(task) if isinstance(task, str) else task
    for name, size in sizes.items():
        if not _SPLIT_NAME.fullmatch(name) or name == "summary":
            raise ConfigError(
                f"split name {name!r} must be letters, digits, '_' or '-' (not summary)"
            )
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigError(f"split '{name}' size must be a non-negative integer, got {size!r}")
    problems = task.generate(sum(sizes.values()), seed, **(knobs or {}))
    out: dict[str, list[Problem]] = {}
    start = 0
    for name, size in sizes.items():
        out[name] = problems[start : start + size]
        start += size
    assert_disjoint(out)
    return out


def write_splits(folder: str | Path, sets: dict[str, list[Problem]]) -> dict[str, Path]:
    """Check the sets are pairwise disjoint, then write each as FOLDER/NAME.jsonl."""
    assert_disjoint(sets)
    folder = Path(folder)
    return {name: write_problems(folder / f"{name}.jsonl", ps) for name, ps in sets.items()}
