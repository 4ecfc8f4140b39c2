"""Tiny causal LMs built from a config, with a character-level tokenizer made locally.

Everything here is offline: the tokenizer is built with the `tokenizers` library from an
alphabet, the model is a randomly initialised Llama or Qwen2 of about 1-10 M parameters, and
both save and load like any Hugging Face model.
"""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
USER, ASSISTANT, SYSTEM = "<user>", "<assistant>", "<system>"
SPECIALS = [PAD, EOS, UNK, USER, ASSISTANT, SYSTEM]

# A compact chat format: every role marker is one token, so short prompts stay short.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}<system>{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}<user>{{ m['content'] }}"
    "{% else %}<assistant>{{ m['content'] }}<eos>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def build_char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """A character-level tokenizer: one token per character of `alphabet`, plus specials."""
    chars = list(dict.fromkeys(alphabet))
    vocab = {tok: i for i, tok in enumerate(SPECIALS + [c for c in chars if c not in SPECIALS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIALS)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, padding_side="left"
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def tiny_config(tokenizer: Any, cfg: Any | None = None) -> Any:
    """The HF config (Llama or Qwen2) of the tiny model a `TinyModelConfig` describes."""
    from t1.config import TinyModelConfig

    cfg = cfg or TinyModelConfig()
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    if cfg.arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(**common)
    if cfg.arch == "qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(**common)
    raise ValueError(f"unsupported tiny architecture {cfg.arch!r}: use 'llama' or 'qwen2'")


def build_tiny_model(tokenizer: Any, cfg: Any | None = None, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised Llama/Qwen2 causal LM sized by a `TinyModelConfig`."""
    config = tiny_config(tokenizer, cfg)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
