"""Generating text with and without a KV cache, and what it costs: time, memory, bandwidth.

- :func:`generate` runs greedy (or sampled) decoding and times the two phases separately:
  *prefill* (the whole prompt in one forward pass; its end is the time to first token) and
  *decode* (one token per forward pass). Without a cache every decode step re-runs the whole
  sequence; with one it runs only the new token and reads the stored keys and values.
- :func:`decode_ceiling` turns a measured memory bandwidth (``mclab.bench.memory_bandwidth``) into
  the memory-bound speed limit: tokens/s <= bandwidth / bytes read per token.

Introduced in notebook 13.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .model import KVCache, LlamaConfig, TinyLlama, kv_cache_bytes, param_count

__all__ = ["GenerateConfig", "GenerationResult", "generate", "as_prompt", "decode_ceiling", "bytes_per_token",
           "MemoryBudget", "memory_budget"]


@dataclass(frozen=True)
class GenerateConfig:
    """How to generate."""

    max_new_tokens: int = 64  # tokens to produce after the prompt
    use_cache: bool = True  # keep K/V of past tokens (one-token decode steps) or recompute everything each step
    temperature: float = 0.0  # 0 = greedy (deterministic); > 0 samples from softmax(logits / T)
    top_k: int | None = None  # sample only among the k most likely tokens (with temperature > 0)
    seed: int = 0  # for sampling

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens!r} must be a positive int")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature} must be >= 0 (0 = greedy)")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k={self.top_k} must be None or >= 1")


@dataclass
class GenerationResult:
    """Tokens and timings of one :func:`generate` call. Times in ms, speeds in tokens/s, sizes in bytes."""

    prompt_tokens: list[int]
    new_tokens: list[int]
    use_cache: bool
    ttft_ms: float  # prompt in -> first new token out (prefill + sampling)
    decode_ms: float  # the remaining max_new_tokens - 1 steps
    kv_cache_bytes: int  # bytes allocated for the cache (0 without one)
    step_ms: list[float]  # time of each decode step, in order (context grows by one each step)

    @property
    def prefill_tokens_per_s(self) -> float:
        return len(self.prompt_tokens) / (self.ttft_ms / 1e3)

    @property
    def decode_tokens_per_s(self) -> float:
        n = len(self.new_tokens) - 1
        return n / (self.decode_ms / 1e3) if n > 0 and self.decode_ms > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "prefill_tokens_per_s": self.prefill_tokens_per_s,
                "decode_tokens_per_s": self.decode_tokens_per_s}


def as_prompt(prompt, max_seq_len: int, max_new_tokens: int) -> torch.Tensor:
    """``prompt`` (token ids: a list, array or tensor) as an int64 tensor of shape (1, T), checked at the boundary:
    not text, at least one token, and room for ``max_new_tokens`` more within ``max_seq_len`` (else a
    ``ValueError`` naming the limit). Shared by :func:`generate` and :func:`mclab.llm.speculative_generate`."""
    if isinstance(prompt, str):
        raise TypeError("prompt must be token ids; encode text with ByteTokenizer().encode(text) first")
    t = torch.as_tensor(prompt, dtype=torch.int64).reshape(1, -1)
    if t.shape[1] == 0:
        raise ValueError("prompt has no tokens; give at least one token id")
    if t.shape[1] + max_new_tokens > max_seq_len:
        raise ValueError(f"prompt of {t.shape[1]} tokens + max_new_tokens={max_new_tokens} exceeds the model's "
                         f"max_seq_len={max_seq_len}; shorten the prompt or generate fewer tokens")
    return t


def _pick(logits: torch.Tensor, cfg: GenerateConfig, gen: torch.Generator) -> torch.Tensor:
    """Next token (1, 1) from the last position's logits (1, vocab)."""
    if cfg.temperature == 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits.float() / cfg.temperature
    if cfg.top_k is not None:
        kth = torch.topk(logits, min(cfg.top_k, logits.size(-1))).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)


@torch.inference_mode()
def generate(model: TinyLlama, prompt, config: GenerateConfig = GenerateConfig()) -> GenerationResult:
    """Continue ``prompt`` (token ids) by ``config.max_new_tokens`` tokens; returns a :class:`GenerationResult`."""
    if not isinstance(config, GenerateConfig):
        raise TypeError(f"config must be a GenerateConfig, got {type(config).__name__}")
    mcfg = model.config
    x = as_prompt(prompt, mcfg.max_seq_len, config.max_new_tokens)
    gen = torch.Generator().manual_seed(config.seed)
    dtype = next(model.parameters()).dtype
    cache = KVCache(mcfg, batch=1, dtype=dtype) if config.use_cache else None
    start = time.perf_counter()
    nxt = _pick(model(x, cache)[:, -1], config, gen)  # prefill: the whole prompt at once
    ttft = time.perf_counter() - start
    out = [int(nxt)]
    seq = x
    t0 = time.perf_counter()
    steps = []
    for _ in range(config.max_new_tokens - 1):
        ts = time.perf_counter()
        if cache is not None:
            logits = model(nxt, cache)[:, -1]  # (1, vocab): only the new token runs
        else:
            seq = torch.cat([seq, nxt], dim=1)
            logits = model(seq)[:, -1]  # the whole sequence again
        nxt = _pick(logits, config, gen)
        out.append(int(nxt))
        steps.append((time.perf_counter() - ts) * 1e3)
    decode = time.perf_counter() - t0
    return GenerationResult(prompt_tokens=x[0].tolist(), new_tokens=out, use_cache=config.use_cache,
                            ttft_ms=ttft * 1e3, decode_ms=decode * 1e3,
                            kv_cache_bytes=cache.nbytes if cache is not None else 0, step_ms=steps)


def bytes_per_token(weight_bytes: int, config, seq_len: int, kv_bytes_per_value: int = 4) -> int:
    """Bytes read from memory to decode one token at context ``seq_len``: all weights + the KV cache so far."""
    return weight_bytes + kv_cache_bytes(config, seq_len, 1, kv_bytes_per_value)


def decode_ceiling(bytes_read_per_token: float, bandwidth_gb_s: float) -> float:
    """Memory-bound decode limit in tokens/s: bandwidth (GB/s) / bytes read per token."""
    if bytes_read_per_token <= 0 or bandwidth_gb_s <= 0:
        raise ValueError(f"bytes_read_per_token={bytes_read_per_token} and bandwidth_gb_s={bandwidth_gb_s} must be > 0")
    return bandwidth_gb_s * 1e9 / bytes_read_per_token


@dataclass
class MemoryBudget:
    """Memory of a model of a given shape at one context length: weights + KV cache, in bytes."""

    params: int
    weight_bits: float  # per parameter, scales included (F16 16, Q8_0 8.5, Q4_0 4.5)
    seq_len: int
    batch: int
    weights_bytes: int
    kv_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes

    def decode_ceiling(self, bandwidth_gb_s: float) -> float:
        """Tokens/s if every decode step reads all weights and the whole cache once at ``bandwidth_gb_s``."""
        return decode_ceiling(self.total_bytes, bandwidth_gb_s)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_bytes": self.total_bytes}


def memory_budget(config: LlamaConfig, seq_len: int, weight_bits: float = 16.0, kv_bytes_per_value: int = 2,
                  batch: int = 1) -> MemoryBudget:
    """Weights (params x bits / 8) + KV cache (2 x layers x kv-heads x head-dim x seq x batch x bytes) for a model
    of shape ``config``."""
    if not isinstance(config, LlamaConfig):
        raise TypeError(f"config must be a LlamaConfig, got {type(config).__name__}")
    if seq_len < 1 or seq_len > config.max_seq_len:
        raise ValueError(f"seq_len={seq_len} must be between 1 and the model's max_seq_len={config.max_seq_len}")
    if not 1 <= weight_bits <= 32:
        raise ValueError(f"weight_bits={weight_bits} must be between 1 and 32")
    n = param_count(config)
    return MemoryBudget(params=n, weight_bits=weight_bits, seq_len=seq_len, batch=batch,
                        weights_bytes=int(round(n * weight_bits / 8)),
                        kv_bytes=kv_cache_bytes(config, seq_len, batch, kv_bytes_per_value))
