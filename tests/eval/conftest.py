"""Fixtures of the evaluation tests (the scripted fakes live in eval_fakes.py)."""

from __future__ import annotations

import pytest
from eval_fakes import ScriptedEngine


@pytest.fixture
def scripted_engine(tiny_tokenizer):
    return lambda script: ScriptedEngine(tiny_tokenizer, script)
