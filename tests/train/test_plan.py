"""The memory plan at start-up (t1.train.plan): hand-computed bytes for a tiny RL run, the files
it writes, the one-line error before any weight is loaded when a device is too small, and the
quiet CPU output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from rl_faults import write_config  # noqa: E402
from test_sft import make_cfg, make_traces  # noqa: E402

import t1.models  # noqa: E402
import t1.train.plan as plan_module  # noqa: E402
import t1.train.sharded_load  # noqa: E402
from t1.cli import main  # noqa: E402
from t1.errors import ConfigError  # noqa: E402
from t1.train.memory import DEFAULT_RESERVE, GIB  # noqa: E402
from t1.train.sft import train_sft  # noqa: E402

# rl_faults' tiny RL run, by hand. The model: hidden H = 32, 1 layer, 2 heads of 16, 1 kv head,
# MLP I = 64, the character vocabulary V = 99, tied. A layer: q 32 x 32 = 1024, k and v
# 32 x 16 = 512 each, o 1024, MLP 3 x 32 x 64 = 6144, norms 64: 9280; root: embeddings
# 99 x 32 = 3168 + final norm 32 = 3200; P = 12 480 parameters.
P = 12_480
# float32 compute (c = 4), one rank, no FSDP: no compute-dtype copy of the weights
SHARDS = {"weights": 4 * P, "optimizer": 8 * P, "anchor": 4 * P, "gradients": 4 * P}
# prompts "<user>q7<assistant>": 4 tokens + sampling.max_new_tokens 4: L = 8; micro-batch 16:
# T = 128 tokens. Per layer and token 8 H + 8 c H + 4 c I + 8 + 4 heads = 256 + 1024 + 1024
# + 8 + 8 = 2320; the layer's mask 16 x 8^2 x 4 = 4096; the final norm 128 x (12 x 32 + 4) =
# 49 664; the boolean mask 16 x 64 = 1024
ACTIVATIONS = 2320 * 128 + 4096 + 49_664 + 1024
# chunks of min(2^25 // 99, 128) = 128 positions: 128 x 99 x (8 + 8) = 202 752; the weight's
# float32 gradient 4 x 99 x 32 = 12 672; saved 128 x (4 x 32 + 8) = 17 408
HEAD = 202_752 + 12_672 + 17_408
# the HF engine: weights 4 P, KV cache 64 rows x 8 x 1 layer x 2 x 1 kv head x 16 x 4 = 65 536;
# it takes turns with the learner (4 P + 0 + activations + head), the larger phase counts
ENGINE = 4 * P + 65_536
PEAK = 16 * P + max(4 * P + ACTIVATIONS + HEAD, ENGINE)


def _config(tmp_path: Path, steps: int = 1) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return write_config(tmp_path, trainer={"steps": steps, "save_every": 0})


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """Every model load of the run, recorded (the loads still happen)."""
    seen: list[str] = []
    real = t1.models.load_model

    def recording(cfg):
        seen.append(cfg.path)
        return real(cfg)

    monkeypatch.setattr(t1.models, "load_model", recording)
    monkeypatch.setattr(t1.train.sharded_load, "load_model", recording)  # what the trainers call
    return seen


def test_the_plan_by_hand_is_written_and_the_cpu_run_stays_quiet(tmp_path, loads, capsys):
    assert main(["rl", str(_config(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "memory plan" not in out  # below 1 GiB on CPU: nothing printed
    plan = json.loads((tmp_path / "run" / "memory_plan.json").read_text())
    got = {i["name"]: i["device"] for i in plan["items"]}
    assert plan["parameters"] == P
    assert {k: got[k] for k in SHARDS} == SHARDS
    assert got["unsharded"] == 0 and got["reserve"] == 0  # no CUDA context on CPU
    assert got["activations"] == ACTIVATIONS and got["head"] == HEAD
    assert got["engine"] == ENGINE
    assert plan["device_total"] == PEAK
    assert "activations" in (tmp_path / "run" / "memory_plan.txt").read_text()
    assert loads == ["tiny"]


@pytest.mark.parametrize("spare", [-1, 0])
def test_a_device_one_byte_short_stops_before_any_weight_loads(tmp_path, loads, monkeypatch, spare):
    # a "GPU" of exactly the planned peak plus the CUDA reserve, less one byte or not
    size = DEFAULT_RESERVE + PEAK + spare
    monkeypatch.setattr(plan_module, "device_memory", lambda device: size)
    config = _config(tmp_path)
    if spare < 0:
        with pytest.raises(ConfigError) as err:
            from t1.config import RLStage, load_config
            from t1.train.rl_run import run_rl

            run_rl(load_config(RLStage, config))
        message = str(err.value)
        assert "\n" not in message and "does not fit" in message
        assert all(name in message for name in ("weights", "optimizer", "activations", "engine"))
        assert loads == []  # stopped before the model was loaded
    else:
        assert main(["rl", str(config)]) == 0
        assert loads == ["tiny"]
    # the plan was written either way, with the device's size
    plan = json.loads((tmp_path / "run" / "memory_plan.json").read_text())
    assert plan["device_memory"] == size and plan["device_total"] == DEFAULT_RESERVE + PEAK


def test_the_cli_prints_the_table_on_a_gpu_and_fails_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(plan_module, "device_memory", lambda device: 80 * GIB)
    assert main(["rl", str(_config(tmp_path / "fits"))]) == 0
    out = capsys.readouterr().out
    assert "t1 rl: memory plan per rank" in out and "activations" in out and "peak" in out
    monkeypatch.setattr(plan_module, "device_memory", lambda device: GIB)
    assert main(["rl", str(_config(tmp_path / "small"))]) == 2  # a ConfigError
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("t1 rl: error: the memory plan does not fit one device")


def test_sft_plans_full_logits_and_stops_before_loading(tmp_path, loads, monkeypatch):
    # rows of sft.max_len 128, micro-batch 4: T = 512 tokens; the SFT loss reads full logits,
    # T V (2 c + 16) = 512 x 99 x 24 = 1 216 512 bytes
    monkeypatch.setattr(plan_module, "device_memory", lambda device: GIB)  # below the reserve
    with pytest.raises(ConfigError, match="does not fit"):
        train_sft(make_cfg(tmp_path / "run"), traces=make_traces(8))
    assert loads == []
    plan = json.loads((tmp_path / "run" / "memory_plan.json").read_text())
    got = {i["name"]: i["device"] for i in plan["items"]}
    assert got["logits"] == 1_216_512 and "anchor" not in got and got["engine"] == 0


def test_pure_low_precision_halves_the_shards_and_drops_the_copy(tmp_path):
    from t1.config import RLStage, load_config
    from t1.train.memory import ModelShape, memory_plan
    from t1.train.plan import rl_setting

    cfg = load_config(
        RLStage, _config(tmp_path), ["model.dtype=bfloat16", "train.pure_low_precision=true"]
    )
    shape = ModelShape(
        hidden=32, layers=1, heads=2, kv_heads=1, intermediate=64, vocab=99, tied=True
    )
    assert shape.params == P
    got = {i.name: i.device for i in memory_plan(shape, rl_setting(cfg, 1, 1, 8)).items}
    # bfloat16 masters: 2 bytes a weight, gradient and AdamW state; no autocast copy
    assert got["weights"] == got["anchor"] == got["gradients"] == 2 * P
    assert got["optimizer"] == 4 * P and got["unsharded"] == 0


def test_launch_shape_reads_torchrun(monkeypatch):
    from t1.train.distributed import DistInfo

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert plan_module.launch_shape(DistInfo(world=32)) == (8, 4)
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert plan_module.launch_shape(DistInfo(world=2)) == (2, 1)
    assert plan_module.device_memory(torch.device("cpu")) == 0
