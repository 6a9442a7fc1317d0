"""mclab.llm — the kit's own tiny language model, its generation loop, weight quantisation and GGUF export.

No model can be downloaded, so the kit brings one: a Llama-style decoder (RMSNorm, RoPE, SwiGLU,
grouped-query attention) trained in a few minutes on the English documentation shipped inside
CPython (``pydoc_data``). Importing this package imports torch; ``import mclab`` does not import
it. Introduced in notebook 13.
"""
from __future__ import annotations

from .compare import FLOAT_FORMATS, FormatResult, FormatTable, compare_formats
from .generate import (
    GenerateConfig,
    GenerationResult,
    MemoryBudget,
    bytes_per_token,
    decode_ceiling,
    generate,
    memory_budget,
)
from .gguf import GGUFConfig, GGUFExport, export_gguf, load_gguf
from .model import LLAMA2_7B, KVCache, LlamaConfig, TinyLlama, kv_cache_bytes, param_count
from .quant import (
    ALGORITHMS,
    LayerInputs,
    LLMQuantConfig,
    QuantLinear,
    QuantReport,
    QuantResult,
    capture_inputs,
    cast,
    linear_weight_bytes,
    quantize_,
    quantized,
)
from .tokenizer import ByteTokenizer, Corpus, corpus
from .train import TrainConfig, TrainResult, cache_dir, kl_divergence, perplexity, pretrained, train

__all__ = [
    # model and data
    "LlamaConfig", "TinyLlama", "KVCache", "kv_cache_bytes", "param_count", "LLAMA2_7B",
    "ByteTokenizer", "Corpus", "corpus",
    # training and evaluation
    "TrainConfig", "TrainResult", "train", "pretrained", "perplexity", "kl_divergence", "cache_dir",
    # generation and its costs
    "GenerateConfig", "GenerationResult", "generate", "decode_ceiling",
    "bytes_per_token", "MemoryBudget", "memory_budget",
    # weight-only quantisation (packed INT4/INT8, group-wise; the arithmetic is mclab.quant's)
    "ALGORITHMS", "LLMQuantConfig", "LayerInputs", "QuantReport", "QuantResult", "QuantLinear", "capture_inputs",
    "quantize_", "quantized", "cast", "linear_weight_bytes",
    # comparing weight formats
    "FLOAT_FORMATS", "FormatResult", "FormatTable", "compare_formats",
    # GGUF
    "GGUFConfig", "GGUFExport", "export_gguf", "load_gguf",
]
