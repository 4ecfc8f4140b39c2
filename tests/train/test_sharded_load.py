"""Sharded loading without a whole model per rank (t1.train.sharded_load): on two gloo ranks
the bounded path's slices, buffers and names equal, bit for bit, those of the full load then
sharding, for HF folders in bfloat16 and float32 (rounded to a bfloat16 compute dtype), a tied
model with activation checkpointing, a training checkpoint, and a .bin folder (which takes the
full path)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from launch import run_child, torchrun  # noqa: E402

from t1.config import ModelConfig, TinyModelConfig, TrainConfig  # noqa: E402
from t1.models import build_char_tokenizer, build_tiny_model  # noqa: E402
from t1.models.dcp import model_tensors, save_tensors  # noqa: E402
from t1.models.loading import save_model  # noqa: E402
from t1.train.distributed import DistInfo  # noqa: E402
from t1.train.sharded_load import fresh_buffers, load_learner, weights_folder  # noqa: E402

HERE = Path(__file__).parent
# uneven on purpose: a vocabulary of 99 rows splits 50 / 49 over two ranks (FSDP2 pads)
QWEN = TinyModelConfig(
    arch="qwen2", hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64
)
LLAMA = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1)


def _model(cfg: TinyModelConfig, tied: bool, seed: int):
    tok = build_char_tokenizer(cfg.alphabet)
    model = build_tiny_model(tok, cfg, seed=seed)
    if not tied:  # an untied head of its own values, as Qwen2.5-7B and larger have
        model.config.tie_word_embeddings = False
        head = torch.nn.Linear(cfg.hidden_size, len(tok), bias=False)
        torch.nn.init.normal_(head.weight, std=0.02, generator=torch.Generator().manual_seed(9))
        model.lm_head = head
        model.model.embed_tokens.weight = torch.nn.Parameter(
            model.model.embed_tokens.weight.detach().clone()
        )
    model.generation_config.eos_token_id = [tok.eos_token_id, 7]  # read back from the folder
    return model, tok


def _folders(root: Path) -> list[dict]:
    qwen, tok = _model(QWEN, tied=False, seed=1)
    save_model(qwen.to(torch.bfloat16), tok, root / "qwen_bf16")
    qwen, tok = _model(QWEN, tied=False, seed=1)
    save_model(qwen, tok, root / "qwen_fp32")
    llama, ltok = _model(LLAMA, tied=True, seed=2)
    save_model(llama, ltok, root / "llama_fp32")
    ckpt = root / "run" / "checkpoints" / "step-3"  # a training checkpoint's layout
    save_tensors(ckpt / "model", model_tensors(qwen))
    qwen.config.save_pretrained(ckpt)
    qwen.generation_config.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    llama.config.save_pretrained(root / "llama_bin")  # pickled weights, as older folders have
    torch.save(llama.state_dict(), root / "llama_bin" / "pytorch_model.bin")
    ltok.save_pretrained(root / "llama_bin")
    return [
        {"name": "qwen_bf16", "path": str(root / "qwen_bf16"), "dtype": "bfloat16"},
        {"name": "qwen_fp32_bf16", "path": str(root / "qwen_fp32"), "dtype": "bfloat16"},
        {"name": "qwen_fp32", "path": str(root / "qwen_fp32"), "dtype": "float32"},
        {
            "name": "llama_ckpt",
            "path": str(root / "llama_fp32"),
            "dtype": "float32",
            "overrides": {"activation_checkpointing": True},
        },
        {"name": "checkpoint", "path": str(ckpt), "dtype": "bfloat16"},
        {"name": "bin", "path": str(root / "llama_bin"), "dtype": "float32"},
    ]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("sharded_load")
    cases = _folders(root)
    (root / "cases.json").write_text(json.dumps(cases))
    out = root / "out"
    out.mkdir()
    run_child(torchrun(2, str(HERE / "sharded_load_child.py"), str(root / "cases.json"), str(out)))
    return out, cases


@pytest.mark.parametrize(
    ("name", "bounded"),
    [
        ("qwen_bf16", True),
        ("qwen_fp32_bf16", True),
        ("qwen_fp32", True),
        ("llama_ckpt", True),
        ("checkpoint", True),
        ("bin", False),  # pickled weights: the full path
    ],
)
def test_bounded_loading_equals_the_full_load_exactly(loaded, name, bounded):
    out, _ = loaded
    for rank in (0, 1):
        record = json.loads((out / f"{name}-rank-{rank}.json").read_text())
        assert record["bounded_path"] is bounded and record["sharded"]
        assert record["names"] == record["full_names"]
        assert record["dtypes"] == ["torch.float32"]  # float32 masters either way
        assert record["tied"] == record["full_tied"]
        assert record["eos"][0] == record["eos"][1]
        got = load_file(str(out / f"{name}-rank-{rank}.st"))
        mine = {k.removeprefix("bounded."): v for k, v in got.items() if k.startswith("bounded.")}
        ref = {k.removeprefix("full."): v for k, v in got.items() if k.startswith("full.")}
        assert mine.keys() == ref.keys() and any(k.startswith("buffer.") for k in mine)
        for k in ref:  # the same bits: the same file values through the same roundings
            assert mine[k].dtype == ref[k].dtype and torch.equal(mine[k], ref[k]), k
    shards = [load_file(str(out / f"{name}-rank-{r}.st")) for r in (0, 1)]
    embed = "bounded.model.embed_tokens.weight"
    assert shards[0][embed].shape[0] == 50 and shards[1][embed].shape[0] == 49  # slices


def test_tied_and_rounded_cases_hold_what_they_claim(loaded):
    out, _ = loaded
    llama = json.loads((out / "llama_ckpt-rank-0.json").read_text())
    assert llama["tied"]  # the head still shares the embedding after to_empty
    assert json.loads((out / "qwen_fp32-rank-0.json").read_text())["tied"] is False
    rounded = load_file(str(out / "qwen_fp32_bf16-rank-0.st"))
    exact = load_file(str(out / "qwen_fp32-rank-0.st"))
    w = "bounded.model.layers.0.mlp.up_proj.weight"
    # float32 masters of bfloat16-rounded values: representable in bfloat16, and not the file's
    assert torch.equal(rounded[w], rounded[w].to(torch.bfloat16).float())
    assert not torch.equal(rounded[w], exact[w])


def test_which_sources_take_the_bounded_path(tmp_path, monkeypatch):
    import huggingface_hub

    model, tok = _model(LLAMA, tied=True, seed=0)
    save_model(model, tok, tmp_path / "hf")
    assert weights_folder(ModelConfig(path=str(tmp_path / "hf"))) == (tmp_path / "hf",) * 2
    assert weights_folder(ModelConfig(path="tiny")) is None
    # a hub id: the snapshot of its config and safetensors files (here a local folder)
    asked = []

    def snapshot(repo_id, allow_patterns):
        asked.append((repo_id, allow_patterns))
        return str(tmp_path / "hf")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    assert weights_folder(ModelConfig(path="owner/model")) == (tmp_path / "hf",) * 2
    assert asked == [("owner/model", ["*.json", "*.safetensors"])]
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text(json.dumps(model.config.to_dict()))
    assert weights_folder(ModelConfig(path=str(tmp_path / "bin"))) is None
    # rotary tables are what transformers computes for a meta-built model
    with torch.device("meta"):
        meta = type(model)(model.config)
    buffers = fresh_buffers(meta)
    assert buffers is not None and buffers.keys() == dict(model.named_buffers()).keys()
    for k, v in model.named_buffers():
        assert torch.equal(buffers[k], v), k


def test_an_unsharded_learner_loads_whole(tmp_path):
    model, tok = _model(LLAMA, tied=True, seed=0)
    save_model(model, tok, tmp_path / "hf")
    loaded_model, _ = load_learner(
        ModelConfig(path=str(tmp_path / "hf")), TrainConfig(), DistInfo()
    )
    assert not hasattr(next(loaded_model.parameters()), "to_local")
