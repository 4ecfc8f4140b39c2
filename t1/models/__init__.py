"""Loading any HF causal LM (local folder, hub id, GGUF) and building tiny models."""

from t1.models.tiny import build_char_tokenizer, build_tiny_model

__all__ = ["build_char_tokenizer", "build_tiny_model"]
