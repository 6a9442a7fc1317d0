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
from .kv import ContextFit, QuantKVCache, kv_bytes_per_token, kv_perplexity, longest_context
from .llamacpp import (
    LlamaCppConfig,
    LlamaCppError,
    LlamaCppEval,
    evaluate_llamacpp,
    generate_llamacpp,
    llamacpp_info,
    llamacpp_logits,
    load_llamacpp,
)
from .model import FAST_LLAMA, LLAMA2_7B, KVCache, LlamaConfig, TinyLlama, kv_cache_bytes, param_count
from .outliers import (
    OutlierConfig,
    OutlierReport,
    W8A8Config,
    W8A8Linear,
    W8A8Report,
    add_outliers_,
    channel_salience,
    largest_channels,
    max_logit_difference,
    smooth_scales,
    w8a8,
    with_outliers,
)
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
from .speculative import (
    SpeculativeConfig,
    SpeculativeResult,
    expected_speedup,
    expected_tokens_per_round,
    speculative_generate,
)
from .tokenizer import ByteTokenizer, Corpus, corpus
from .train import TrainConfig, TrainResult, cache_dir, kl_divergence, perplexity, pretrained, train

__all__ = [
    # model and data
    "LlamaConfig", "TinyLlama", "KVCache", "kv_cache_bytes", "param_count", "LLAMA2_7B", "FAST_LLAMA",
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
    # outliers made on purpose, and AWQ's and SmoothQuant's answers to them (notebook 13b)
    "OutlierConfig", "OutlierReport", "add_outliers_", "with_outliers", "largest_channels", "channel_salience",
    "max_logit_difference",
    "W8A8Config", "W8A8Linear", "W8A8Report", "smooth_scales", "w8a8",
    # the INT8 KV cache and context budgets (notebook 13b)
    "QuantKVCache", "kv_bytes_per_token", "kv_perplexity", "ContextFit", "longest_context",
    # speculative decoding (notebook 13b)
    "SpeculativeConfig", "SpeculativeResult", "speculative_generate", "expected_speedup", "expected_tokens_per_round",
    # GGUF run by llama.cpp (llama-cpp-python, imported when first used)
    "LlamaCppConfig", "LlamaCppError", "load_llamacpp", "llamacpp_info", "llamacpp_logits", "LlamaCppEval",
    "evaluate_llamacpp", "generate_llamacpp",
]
