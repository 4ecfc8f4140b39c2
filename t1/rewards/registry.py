"""Verifiers by name: `get_verifier("math")`, `register_verifier(name, factory)`.

    math             competition maths: `math_equal` (t1.rewards.verifiers)
    gsm8k            grade-school maths: the final number, exactly (t1.rewards.verifiers)
    linear           an exact number (t1.rewards.verifiers)
    countdown        an arithmetic expression that reaches a target (t1.rewards.countdown)
    gpqa             a lettered option, by letter or text (t1.rewards.multiple_choice); also
    multiple_choice  under this name

A task name of the form "package.module:attr" names a user factory, imported on first use (also in
worker processes), so a project can plug its own verifier into `reward.task`.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

from t1.errors import ConfigError
from t1.rewards.base import Verifier
from t1.rewards.countdown import CountdownVerifier
from t1.rewards.multiple_choice import MultipleChoiceVerifier
from t1.rewards.verifiers import GSM8KVerifier, LinearVerifier, MathVerifier

_REGISTRY: dict[str, Callable[..., Verifier]] = {
    "math": MathVerifier,
    "gsm8k": GSM8KVerifier,
    "countdown": CountdownVerifier,
    "linear": LinearVerifier,
    "gpqa": MultipleChoiceVerifier,
    "multiple_choice": MultipleChoiceVerifier,
}


BUILTIN_TASKS = frozenset(_REGISTRY)


def register_verifier(name: str, factory: Callable[..., Verifier]) -> None:
    """Make `get_verifier(name)` build verifiers with `factory` (in this process only: batch
    scoring then stays in-process; name a "package.module:factory" for worker processes)."""
    if name in BUILTIN_TASKS:
        raise ConfigError(f"verifier {name!r} is built in; register yours under another name")
    _REGISTRY[name] = factory


def verifier_names() -> list[str]:
    return sorted(_REGISTRY)


def get_verifier(task: str, **kwargs: Any) -> Verifier:
    """The verifier of `task` (a registered name or "package.module:attr"), built with kwargs."""
    factory = _REGISTRY.get(task)
    if factory is None and isinstance(task, str) and ":" in task:
        factory = _import_factory(task)
    if factory is None:
        near = difflib.get_close_matches(str(task), list(_REGISTRY), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(
            f"reward.task: unknown task {task!r}{hint}; valid: {', '.join(verifier_names())} "
            "or 'package.module:factory'"
        )
    return factory(**kwargs)


def _import_factory(spec: str) -> Callable[..., Verifier]:
    module_name, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"reward.task: cannot import verifier {spec!r}: {exc}") from exc
