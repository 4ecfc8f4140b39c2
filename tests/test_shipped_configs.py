"""The GPU configs load and pass every check that needs no model; the paper's data configs name
the Hub dataset and file that the offline source test (tests/data/test_sources.py) reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from t1.config import RLStage, SFTStage, load_config
from t1.data.sources import Source, eval_source, train_source
from t1.train.rl import check_rl_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize(
    ("name", "stage"),
    [
        ("t1_paper_sft.yaml", SFTStage),
        ("t1_paper_rl.yaml", RLStage),
        ("qwen2.5_math_rl_gpu.yaml", RLStage),
    ],
)
def test_gpu_configs_load_and_check(name: str, stage: type) -> None:
    cfg = load_config(stage, CONFIGS / name)
    if stage is RLStage:
        check_rl_config(cfg, 1)
        assert cfg.reward.task == "math"  # from data.preset
    assert "\\boxed{}." in cfg.data.prompt_template and "{{" not in cfg.data.prompt_template


def test_paper_configs_read_the_released_files() -> None:
    sft = load_config(SFTStage, CONFIGS / "t1_paper_sft.yaml")
    rl = load_config(RLStage, CONFIGS / "t1_paper_rl.yaml")
    assert train_source(sft.data) == Source("zai-org/T1", files="sft.jsonl")
    assert train_source(rl.data) == Source("zai-org/T1", files="rl-data.jsonl")
    assert eval_source(rl.data) == Source("HuggingFaceH4/MATH-500", default_split="test")
    assert rl.model.path == sft.trainer.out  # RL starts from the SFT run
