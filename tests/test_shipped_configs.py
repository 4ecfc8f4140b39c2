"""The GPU configs load and pass every check that needs no model; the paper's data configs name
the Hub dataset and file that the offline source test (tests/data/test_sources.py) reads; every
training config fits its hardware by the memory plan `t1 rl` / `t1 sft` make at start-up, with
the real model shapes, and README shows those plans."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from t1.config import RLStage, SFTStage, load_config
from t1.data.sources import Source, eval_source, train_source
from t1.models.tiny import build_char_tokenizer, tiny_config
from t1.train.known_models import KNOWN_MODELS
from t1.train.memory import ModelShape, check_fits, memory_plan
from t1.train.plan import rl_setting, sft_setting
from t1.train.rl import check_rl_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize(
    ("name", "stage"),
    [
        ("t1_paper_sft.yaml", SFTStage),
        ("t1_paper_rl.yaml", RLStage),
        ("qwen2.5_math_rl_gpu.yaml", RLStage),
        ("qwen2.5_7b_rl_8gpu.yaml", RLStage),
        ("qwen2.5_7b_lora_rl_1gpu.yaml", RLStage),
        ("qwen2.5_32b_rl_4x8gpu.yaml", RLStage),
    ],
)
def test_gpu_configs_load_and_check(name: str, stage: type, benchmark_script) -> None:
    cfg = load_config(stage, CONFIGS / name)
    gpus = {
        n: per_node * nodes for n, _, per_node, nodes in benchmark_script("memory_plan").GPU_CONFIGS
    }
    if stage is RLStage:
        check_rl_config(cfg, gpus[name])  # the world size the config is written for
        assert cfg.reward.task == "math"  # from data.preset
    assert "\\boxed{}." in cfg.data.prompt_template and "{{" not in cfg.data.prompt_template


def test_paper_configs_read_the_released_files() -> None:
    sft = load_config(SFTStage, CONFIGS / "t1_paper_sft.yaml")
    rl = load_config(RLStage, CONFIGS / "t1_paper_rl.yaml")
    assert train_source(sft.data) == Source("zai-org/T1", files="sft.jsonl")
    assert train_source(rl.data) == Source("zai-org/T1", files="rl-data.jsonl")
    assert eval_source(rl.data) == Source("HuggingFaceH4/MATH-500", default_split="test")
    assert rl.model.path == sft.trainer.out  # RL starts from the SFT run


# ---------------------------------------------------------------------- memory plans

# a laptop's memory: what the CPU configs (tiny, SmolLM2-135M) must plan below
LAPTOP = 16 * 1024**3


def _training_configs() -> list[Path]:
    """Every shipped config of a training stage: a model and an `rl` or `sft` section."""
    found = []
    for path in sorted(CONFIGS.rglob("*.yaml")):
        sections = yaml.safe_load(path.read_text()) or {}
        if "model" in sections and ({"rl", "sft"} & sections.keys()):
            found.append(path)
    return found


def test_every_gpu_config_fits_its_gpus_by_the_start_up_plan(benchmark_script) -> None:
    bench = benchmark_script("memory_plan")
    for name, model, per_node, nodes in bench.GPU_CONFIGS:
        plan = bench.config_plan(name, model, per_node, nodes)
        check_fits(plan)  # raises with the plan when it does not fit 79 GiB
        assert plan.setting.seq_len >= 8192  # the paper's lengths, not a shortened run
        if plan.setting.engine == "vllm":
            assert plan.setting.gpu_memory_utilization * bench.DEVICE > plan.phase("resident")


def test_every_training_config_is_planned(benchmark_script) -> None:
    """A new config needs a plan: GPU ones an entry in benchmarks/memory_plan.py GPU_CONFIGS,
    CPU ones (the tiny model, SmolLM2) must plan below a laptop's 16 GiB on CPU."""
    bench = benchmark_script("memory_plan")
    gpu = {name for name, *_ in bench.GPU_CONFIGS}
    for path in _training_configs():
        name = str(path.relative_to(CONFIGS))
        if name in gpu:
            continue
        cfg = bench.load_stage(path)
        if cfg.model.path == "smollm2" or cfg.model.path.startswith("runs/smollm2"):
            shape = ModelShape.from_hf_config(KNOWN_MODELS["SmolLM2-135M"])
        elif cfg.model.path == "tiny" or cfg.model.path.startswith("runs/tiny"):
            tok = build_char_tokenizer(cfg.model.tiny.alphabet)
            shape = ModelShape.from_hf_config(tiny_config(tok, cfg.model.tiny))
        else:
            raise AssertionError(f"configs/{name}: add it to GPU_CONFIGS with its hardware")
        if isinstance(cfg, SFTStage):
            setting = sft_setting(cfg, 1, 1, reserve=0)
        else:  # prompts of up to 512 tokens, as for the GPU configs; on CPU the HF engine
            setting = rl_setting(cfg, 1, 1, 512 + cfg.sampling.max_new_tokens, reserve=0)
            setting = replace(setting, engine="hf")
        plan = memory_plan(shape, setting)
        assert plan.device_total < LAPTOP, f"configs/{name}: {plan.device_total / 1024**3:.1f} GiB"


def test_readme_shows_the_plans_of_the_configs(benchmark_script) -> None:
    readme = (CONFIGS.parent / "README.md").read_text()
    assert benchmark_script("memory_plan").markdown() in readme
