"""mclab.llm — the kit's own tiny language model, its generation loop, weight quantisation and GGUF export.

No model can be downloaded, so the kit brings one: a Llama-style decoder (RMSNorm, RoPE, SwiGLU,
grouped-query attention) trained in a few minutes on CPython 3.11.7's English reference documentation
(``pydoc_data``), shipped in ``data/`` so it is the same on every Python. Importing this package imports torch;
``import mclab`` does not import it. Introduced in notebook 13.
"""
from __future__ import annotations

from .compare import FLOAT_FORMATS, FormatResult, FormatTable, compare_formats
from .eval import kl_divergence, log_probs, nll, perplexity, token_windows
from .generate import (
    GenerateConfig,
    GenerationResult,
    MemoryBudget,
    as_prompt,
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
from .model import FAST_LLAMA, LLAMA2_7B, KVCache, LlamaConfig, ModelCopy, TinyLlama, kv_cache_bytes, param_count
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
    capture_inputs,
    cast,
    linear_weight_bytes,
    quant_linears,
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
from .train import LMTrainConfig, LMTrainResult, cache_dir, pretrained, train_lm

__all__ = [
    # model and data
    "LlamaConfig", "TinyLlama", "ModelCopy", "KVCache", "kv_cache_bytes", "param_count", "LLAMA2_7B", "FAST_LLAMA",
    "ByteTokenizer", "Corpus", "corpus",
    # training
    "LMTrainConfig", "LMTrainResult", "train_lm", "pretrained", "cache_dir",
    # scoring on held-out text: the windows, log-probabilities and NLL every score is built from
    "perplexity", "kl_divergence", "token_windows", "log_probs", "nll",
    # generation and its costs
    "GenerateConfig", "GenerationResult", "generate", "as_prompt", "decode_ceiling",
    "bytes_per_token", "MemoryBudget", "memory_budget",
    # weight-only quantisation (packed INT4/INT8, group-wise; the arithmetic is mclab.quant's)
    "ALGORITHMS", "LLMQuantConfig", "LayerInputs", "QuantReport", "QuantLinear", "quant_linears",
    "capture_inputs", "quantize_", "quantized", "cast", "linear_weight_bytes",
    # comparing weight formats
    "FLOAT_FORMATS", "FormatResult", "FormatTable", "compare_formats",
    # GGUF
    "GGUFConfig", "GGUFExport", "export_gguf", "load_gguf",
    # outliers made on purpose, and AWQ's and SmoothQuant's answers to them (notebook 13b)
    "OutlierConfig", "OutlierReport", "add_outliers_", "with_outliers", "largest_channels",
    "channel_salience", "max_logit_difference",
    "W8A8Config", "W8A8Linear", "W8A8Report", "smooth_scales", "w8a8",
    # the INT8 KV cache and context budgets (notebook 13b)
    "QuantKVCache", "kv_bytes_per_token", "kv_perplexity", "ContextFit", "longest_context",
    # speculative decoding (notebook 13b)
    "SpeculativeConfig", "SpeculativeResult", "speculative_generate", "expected_speedup", "expected_tokens_per_round",
    # GGUF run by llama.cpp (llama-cpp-python, imported when first used)
    "LlamaCppConfig", "LlamaCppError", "load_llamacpp", "llamacpp_info", "llamacpp_logits", "LlamaCppEval",
    "evaluate_llamacpp", "generate_llamacpp",
]
