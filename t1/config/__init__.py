"""Typed configuration: one dataclass per stage, loaded from YAML, overridden by dotted arguments.

    t1 rl configs/tiny.yaml rl.k=32 optim.lr=1e-5

Unknown keys and wrong types raise `ConfigError`, whose message names the key and the nearest
valid key; the CLI turns it into a one-line error and exit code 2.

    sections.py  sections shared by several stages (model, data, sampling, rollout, ...)
    stages.py    the algorithms' sections and one dataclass per stage (`STAGES`), the demo's
    loading.py   YAML, typed overrides, checks, `--help` descriptions, saving
"""

from __future__ import annotations

from t1.config.loading import (
    describe,
    dotted_keys,
    load_config,
    save_config,
    to_dict,
)
from t1.config.sections import (
    DataConfig,
    LoraConfig,
    ModelConfig,
    OptimConfig,
    RewardConfig,
    RolloutConfig,
    SamplingConfig,
    TinyModelConfig,
    TrainConfig,
    TrainerConfig,
)
from t1.config.stages import (
    STAGES,
    CurateConfig,
    DemoData,
    DemoEval,
    DemoStage,
    EvalConfig,
    EvalStage,
    RLConfig,
    RLStage,
    ScaleConfig,
    ScaleStage,
    SFTConfig,
    SFTStage,
    SynthConfig,
    SynthStage,
)

__all__ = [
    "CurateConfig",
    "DataConfig",
    "DemoData",
    "DemoEval",
    "DemoStage",
    "EvalConfig",
    "EvalStage",
    "LoraConfig",
    "ModelConfig",
    "OptimConfig",
    "RLConfig",
    "RLStage",
    "RewardConfig",
    "RolloutConfig",
    "SFTConfig",
    "SFTStage",
    "STAGES",
    "SamplingConfig",
    "ScaleConfig",
    "ScaleStage",
    "SynthConfig",
    "SynthStage",
    "TinyModelConfig",
    "TrainConfig",
    "TrainerConfig",
    "describe",
    "dotted_keys",
    "load_config",
    "save_config",
    "to_dict",
]
