"""Shared fixtures: tiny models built locally, and the evaluation data beside the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Intra-op threads for every test: OMP_NUM_THREADS where it is set, else 1 (tiny models run
# several times faster on one thread than on two shared cores, measured). A test that starts
# a subprocess passes it `torch.get_num_threads()`, so runs compared bitwise share the count.
# CI runs the `numerics` tests (results of two code paths compared) under 1 and 2 threads.
TEST_THREADS = int(os.environ.get("OMP_NUM_THREADS") or 1)
torch.set_num_threads(TEST_THREADS)


def pytest_report_header() -> str:
    """What decides how floats round here, for reports of a tolerance failing elsewhere."""
    return (
        f"torch {torch.__version__}: {torch.get_num_threads()} intra-op thread(s), "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="session")
def benchmark_script():
    """Loads a script of benchmarks/ by name ("demo_seeds") as a module, to test its parts."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


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
