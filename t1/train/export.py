"""`RUN/final/`: the trained model as a plain Hugging Face folder, written atomically.

    final/  config.json generation_config.json tokenizer files
            model.safetensors                 (or model-0000i-of-0000n.safetensors + index)

`AutoModelForCausalLM.from_pretrained` and vLLM load it. The weights are in `model.dtype` (the
compute dtype: a float32 run's exactly, a bfloat16 run's masters rounded to bfloat16). A LoRA
model (t1.models.lora) writes its merged weights W + (alpha/r)·B A there, by `model.lora.save`:
`merged`; `adapter` makes final/ a peft adapter folder instead (adapter_config.json,
adapter_model.safetensors: `PeftModel.from_pretrained(base, final)`); `both` writes the merged
folder with the adapter folder in final/adapter/. A sharded
model is gathered one tensor at a time (`t1.models.sharded.full_state`): rank 0 holds at most
one 5 GB file's worth of tensors, never the whole model in float32, and every rank takes part
in each gather. An unsharded model already in that dtype is saved by transformers'
`save_pretrained`, as before.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch.distributed.fsdp import FSDPModule

from t1.models.loading import DTYPES, save_model
from t1.models.lora import adapter_entries, has_adapters, merged_entries, peft_config, spec_of
from t1.models.sharded import full_state, gather, is_sharded, state_entries
from t1.train.distributed import DistInfo, max_count

# transformers' own default shard size for save_pretrained
MAX_SHARD_BYTES = 5 * 2**30
INDEX = "model.safetensors.index.json"


def _architecture(model: Any) -> str:
    """The model's own class name (FSDP2 renames the class to FSDP<Name>)."""
    cls = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))
    return cls.__name__


class _Writer:
    """Buffers tensors into safetensors files of at most MAX_SHARD_BYTES (rank 0)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.files, self.buffer, self.size = folder, [], {}, 0
        self.error: Exception | None = None

    def add(self, name: str, tensor: torch.Tensor) -> None:
        if self.error is not None:
            return  # keep consuming: the other ranks are still gathering with this one
        try:
            self.buffer[name] = tensor.to("cpu").contiguous()
            self.size += tensor.numel() * tensor.element_size()
            if self.size >= MAX_SHARD_BYTES:
                self.flush()
        except Exception as e:
            self.error = e

    def flush(self) -> None:
        if not self.buffer:
            return
        path = self.folder / f"part-{len(self.files):05d}.safetensors"
        save_file(self.buffer, str(path), metadata={"format": "pt"})
        self.files.append((path, list(self.buffer)))
        self.buffer, self.size = {}, 0

    def finish(self) -> None:
        """HF names: one `model.safetensors`, or numbered files and the index."""
        self.flush()
        if len(self.files) == 1:
            os.replace(self.files[0][0], self.folder / "model.safetensors")
            return
        n, weight_map, total = len(self.files), {}, 0
        for i, (path, names) in enumerate(self.files, start=1):
            name = f"model-{i:05d}-of-{n:05d}.safetensors"
            total += path.stat().st_size
            os.replace(path, self.folder / name)
            weight_map.update(dict.fromkeys(names, name))
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (self.folder / INDEX).write_text(json.dumps(index, indent=2), encoding="utf-8")


def _entries(model: Any, dtype: str) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF name, whole tensor in `dtype`): the weights, a LoRA model's merged."""
    if has_adapters(model):
        return merged_entries(model, state_entries(model), DTYPES[dtype], gather)
    return full_state(model, DTYPES[dtype])


def _gathered(model: Any, tokenizer: Any, tmp: Path, dtype: str, info: DistInfo) -> None:
    writer = None
    if info.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        writer = _Writer(tmp)
    for name, tensor in _entries(model, dtype):  # collective: every rank iterates
        if writer is not None:
            writer.add(name, tensor)
    failed = writer is not None and writer.error is not None
    if max_count(int(failed), info):
        if writer is not None and writer.error is not None:
            raise writer.error
        raise OSError(f"writing {tmp} failed on rank 0")
    if writer is None:
        return
    writer.finish()
    config = copy.deepcopy(model.config)
    config.dtype = DTYPES[dtype]
    config.architectures = [_architecture(model)]
    config.save_pretrained(tmp)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)


def _adapter_folder(model: Any, tokenizer: Any, folder: Path, info: DistInfo) -> None:
    """A peft adapter folder (adapter_config.json, adapter_model.safetensors, the tokenizer):
    `PeftModel.from_pretrained(base, folder)` loads it. Collective: every rank gathers."""
    tensors = {name: t.to("cpu").contiguous() for name, t in adapter_entries(model, gather)}
    if not info.main:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    peft_config(spec_of(model)).save_pretrained(str(folder))
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


def _write(model: Any, tokenizer: Any, tmp: Path, dtype: str, info: DistInfo) -> None:
    """final/'s content into `tmp`: the weights, or as `model.lora.save` says for LoRA."""
    save = spec_of(model).save if has_adapters(model) else "merged"
    if save == "adapter":
        _adapter_folder(model, tokenizer, tmp, info)
    elif (
        not is_sharded(model)
        and not has_adapters(model)
        and (next(model.parameters()).dtype == DTYPES[dtype])
    ):
        if info.main:
            shutil.rmtree(tmp, ignore_errors=True)
            save_model(model, tokenizer, tmp)
    else:
        _gathered(model, tokenizer, tmp, dtype, info)
    if save == "both":
        _adapter_folder(model, tokenizer, tmp / "adapter", info)


def save_final(model: Any, tokenizer: Any, path: Path, dtype: str, info: DistInfo) -> Path:
    """Write `path` (RUN/final) beside and rename it into place; every rank calls this."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per file is noise in a training log
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp")
    _write(model, tokenizer, tmp, dtype, info)
    if info.main:
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    return out
