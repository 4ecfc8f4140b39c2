"""Config loading, dotted overrides and their errors; the CLI's exit codes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Literal

import pytest
import yaml

from t1.config import (
    RLStage,
    SFTStage,
    describe,
    dotted_keys,
    load_config,
    save_config,
)
from t1.config.loading import _parse_override
from t1.errors import ConfigError


def test_defaults_and_stage_specific_defaults():
    cfg = load_config(RLStage)
    assert cfg.rl.k == 8
    assert cfg.sampling.temperature == 1.2  # RL samples hot (paper: 1.2)
    assert load_config(SFTStage).optim.lr == 1e-3


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("rl:\n  k: 16\n  beta: 0.1\noptim:\n  lr: 3.0e-4\nsampling:\n  top_p: 0.9\n")
    cfg = load_config(RLStage, path, ["rl.k=32", "optim.betas=[0.9, 0.99]", "rl.clip_eps=0.2"])
    assert cfg.rl.k == 32  # the override wins over the file
    assert cfg.rl.beta == 0.1
    assert cfg.optim.lr == 3e-4
    assert cfg.optim.betas == [0.9, 0.99]
    assert cfg.rl.clip_eps == 0.2
    # a section set partly in YAML keeps the stage's own defaults for the rest
    assert cfg.sampling.top_p == 0.9 and cfg.sampling.temperature == 1.2


def test_override_value_parsing():
    cfg = load_config(
        RLStage,
        None,
        [
            "optim.lr=1e-5",
            "rl.clip_eps=null",
            "model.path=123",
            "trainer.progress=false",
            'sampling.stop=["\\n\\n"]',
        ],
    )
    assert cfg.optim.lr == 1e-5  # YAML reads 1e-5 as a string; float fields accept it
    assert cfg.rl.clip_eps is None
    assert cfg.model.path == "123"  # str fields take the text as written
    assert cfg.trainer.progress is False
    assert cfg.sampling.stop == ["\n\n"]


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("no.such.key=1", "unknown config key 'no.such.key'"),
        ("rl.kk=1", "did you mean 'rl.k'"),
        ("rl.k=abc", "'rl.k': expected int"),
        ("rl.k=1.5", "expected int"),
        ("rl.anchor=ewma", "one of 'ema', 'frozen', 'none'"),
        ("trainer.progress=3", "expected bool"),
        ("optim.betas=0.9", "expected list"),
        ("rl", "not of the form key=value"),
    ],
)
def test_override_errors_name_the_key(override, needle):
    with pytest.raises(ConfigError, match=None) as err:
        load_config(RLStage, None, [override])
    assert needle in str(err.value)


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rl:\n  k: [1,\n")
    with pytest.raises(ConfigError, match="bad.yaml:"):
        load_config(RLStage, bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("rl:\n  entropy_cof: 0.1\n")
    with pytest.raises(ConfigError, match="rl.entropy_cof.*did you mean 'rl.entropy_coef'"):
        load_config(RLStage, unknown)
    with pytest.raises(ConfigError, match="not found"):
        load_config(RLStage, tmp_path / "missing.yaml")
    section = tmp_path / "section.yaml"
    section.write_text("rl: 3\n")
    with pytest.raises(ConfigError, match="'rl': expected a mapping"):
        load_config(RLStage, section)


def test_round_trip_through_saved_yaml(tmp_path):
    cfg = load_config(RLStage, None, ["rl.k=4", "reward.truncation_penalty=null"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(RLStage, tmp_path / "config.yaml")
    assert again == cfg
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["rl"]["k"] == 4


def test_describe_lists_every_leaf_with_its_comment():
    rows = {key: (tp, comment) for key, tp, _, comment in describe(RLStage)}
    assert "rl.k" in rows and "samples per prompt" in rows["rl.k"][1]
    assert "model.tiny.hidden_size" in rows
    leaves = {k for k in dotted_keys(RLStage) if k in rows}
    assert leaves == set(rows)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "t1", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_exits_2_on_bad_key_and_type(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rl:\n  k: 4\n")
    bad_key = _cli("rl", str(cfg), "no.such.key=1")
    assert bad_key.returncode == 2
    assert "no.such.key" in bad_key.stderr and "Traceback" not in bad_key.stderr
    assert len(bad_key.stderr.strip().splitlines()) == 1
    bad_type = _cli("rl", str(cfg), "rl.k=abc")
    assert bad_type.returncode == 2
    assert "expected int" in bad_type.stderr and "Traceback" not in bad_type.stderr


def test_cli_help_describes_options():
    out = _cli("rl", "--help")
    assert out.returncode == 0
    assert "rl.entropy_coef" in out.stdout and "--resume" in out.stdout


def test_overrides_are_read_as_the_field_types(tmp_path):
    # YAML 1.1 reads on/off/yes/no as booleans; a str or Literal field takes them as written
    cfg = load_config(
        RLStage,
        None,
        [
            "data.chat_template=on",  # Literal["auto", "on", "off"]
            "data.system_prompt=off",  # str | None
            "model.gguf_file=yes",  # str | None
            "model.device=no",  # str
            "trainer.progress=off",  # bool fields still read the words as booleans
            "model.cache_gguf=yes",
            "rl.clip_eps=null",
        ],
    )
    assert cfg.data.chat_template == "on"
    assert (cfg.data.system_prompt, cfg.model.gguf_file, cfg.model.device) == ("off", "yes", "no")
    assert cfg.trainer.progress is False and cfg.model.cache_gguf is True
    assert cfg.rl.clip_eps is None
    cfg = load_config(RLStage, None, ["data.chat_template=off", "data.system_prompt=null"])
    assert cfg.data.chat_template == "off" and cfg.data.system_prompt is None
    assert load_config(RLStage, None, ["data.system_prompt=~"]).data.system_prompt is None
    assert load_config(RLStage, None, ["trainer.progress=true"]).trainer.progress is True
    with pytest.raises(ConfigError, match="expected one of 'auto', 'on', 'off', got 'maybe'"):
        load_config(RLStage, None, ["data.chat_template=maybe"])
    with pytest.raises(ConfigError, match="'trainer.progress': expected bool, got 'sure'"):
        load_config(RLStage, None, ["trainer.progress=sure"])
    # the same words in a YAML file
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  chat_template: on\n  system_prompt: no\ntrainer:\n  progress: off\n")
    cfg = load_config(RLStage, path)
    assert (cfg.data.chat_template, cfg.data.system_prompt) == ("on", "no")
    assert cfg.trainer.progress is False


@dataclasses.dataclass
class _Typed:
    mode: Literal["on", "off", "auto"] | None = None
    name: str | None = None
    flag: bool = False
    n: int | None = None


@pytest.mark.parametrize(
    ("item", "value"),
    [
        ("mode=on", "on"),
        ("mode=off", "off"),
        ("mode=null", None),
        ("mode=yes", "yes"),  # not one of its words: read as YAML 1.2, text (rejected when built)
        ("name=on", "on"),
        ("name=null", None),
        ("name=12", "12"),
        ("flag=true", True),
        ("flag=false", False),
        ("flag=on", "on"),  # YAML 1.2 text; the bool field turns it into True when built
        ("n=5", 5),
        ("n=null", None),
    ],
)
def test_parse_override_by_field_type(item, value):
    assert _parse_override(item, _Typed) == ([item.split("=")[0]], value)


def test_report_to_lists_trackers():
    assert load_config(RLStage).trainer.report_to == ["tensorboard"]
    cfg = load_config(SFTStage, None, ["trainer.report_to=[tensorboard,wandb]"])
    assert cfg.trainer.report_to == ["tensorboard", "wandb"]
    assert load_config(RLStage, None, ["trainer.report_to=[]"]).trainer.report_to == []
    with pytest.raises(ConfigError, match="trainer.report_to\\[0\\]': expected one of"):
        load_config(RLStage, None, ["trainer.report_to=[mlflow]"])


def test_replaced_tensorboard_key_still_reads(tmp_path):
    # configs and run directories written before trainer.report_to carry trainer.tensorboard
    path = tmp_path / "old.yaml"
    path.write_text("trainer:\n  tensorboard: false\n  report_to: [tensorboard, wandb]\n")
    with pytest.warns(FutureWarning, match="replaced by 'trainer.report_to'"):
        assert load_config(RLStage, path).trainer.report_to == ["wandb"]
    path.write_text("trainer:\n  tensorboard: true\n  steps: 3\n")
    with pytest.warns(FutureWarning):
        assert load_config(RLStage, path).trainer.report_to == ["tensorboard"]
    with pytest.warns(FutureWarning):
        cfg = load_config(SFTStage, None, ["trainer.report_to=[wandb]", "trainer.tensorboard=on"])
    assert cfg.trainer.report_to == ["tensorboard", "wandb"]
    with pytest.warns(FutureWarning):
        cfg = load_config(SFTStage, None, ["trainer.tensorboard=false"])
    assert cfg.trainer.report_to == []
    with pytest.raises(ConfigError, match="replaced by 'trainer.report_to'.*expected bool"):
        load_config(SFTStage, None, ["trainer.tensorboard=3"])
