"""Shared fixtures: tiny models built locally, and the evaluation data beside the project."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# tiny models: one intra-op thread is faster than two on 2 shared cores (several x, measured)
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (MATH-500, GSM8K, AIME, AMC); tests that need it skip where it's absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"{SHARED_DATA} not found: the shared evaluation data sits beside the project "
            "only on the developers' machines"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from t1.config import TinyModelConfig
    from t1.models import build_char_tokenizer

    return build_char_tokenizer(TinyModelConfig().alphabet)


@pytest.fixture
def tiny_model(tiny_tokenizer):
    """A fresh (function-scoped) random tiny Llama, about 0.8 M parameters."""
    from t1.config import TinyModelConfig
    from t1.models import build_tiny_model

    cfg = TinyModelConfig(
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=128,
        max_position=256,
    )
    return build_tiny_model(tiny_tokenizer, cfg, seed=0)
