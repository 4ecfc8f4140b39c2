"""Loading any HF causal LM (local folder, hub id, GGUF, run directory) and building tiny models."""

from t1.models.loading import find_smollm2, load_model, save_model
from t1.models.prompts import build_prompt, format_prompts
from t1.models.tiny import build_char_tokenizer, build_tiny_model

__all__ = [
    "build_char_tokenizer",
    "build_prompt",
    "format_prompts",
    "build_tiny_model",
    "find_smollm2",
    "load_model",
    "save_model",
]
