"""An INT8 KV cache: keys and values stored as 8-bit integers with one FP16 scale per token and KV head.

Decoding reads the whole cache once per token, and at long contexts the cache outgrows the weights (a 7B model's
FP16 cache at 4096 tokens is 2 GiB). Storing K and V in INT8 halves those bytes. Each (token, KV head) vector of
``head_dim`` values gets its own symmetric scale (absmax / 127, stored in FP16), so one unusual token cannot
coarsen the grid of the others, and the scales cost 2 bytes per ``head_dim`` values:
bytes per value = 1 + 2 / head_dim (1.0625 at head_dim 32, 1.016 at Llama 2 7B's 128).

The arithmetic is :mod:`mclab.quant`'s (:func:`~mclab.quant.qparams` per row, :func:`~mclab.quant.quantize`,
:func:`~mclab.quant.dequantize`); :class:`QuantKVCache` plugs into the model through :meth:`KVCache.store`.
Introduced in notebook 13b.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..quant.primitives import QParams, dequantize, qparams, quantize
from .eval import nll, token_windows
from .model import KVCache, LlamaConfig, TinyLlama, kv_cache_bytes, param_count

__all__ = ["QuantKVCache", "kv_bytes_per_token", "kv_perplexity", "ContextFit", "longest_context"]

_KV_BITS = (32, 16, 8)  # FP32, FP16 and INT8 (+ FP16 scale per token and head)


def _check_kv_bits(kv_bits: int) -> None:
    if kv_bits not in _KV_BITS:
        raise ValueError(f"kv_bits={kv_bits!r} is not supported; allowed: 32 (FP32), 16 (FP16), 8 (INT8 + FP16 "
                         f"scale per token and head)")


def kv_bytes_per_token(config: LlamaConfig, kv_bits: int = 16, batch: int = 1) -> float:
    """Bytes the cache adds per token of context: 2 (K and V) x layers x kv-heads x (head-dim x bits / 8, plus a
    2-byte scale per (token, head) at 8 bits) x batch."""
    if not isinstance(config, LlamaConfig):
        raise TypeError(f"config must be a LlamaConfig, got {type(config).__name__}")
    _check_kv_bits(kv_bits)
    scales = 2 * config.n_layers * config.n_kv_heads * 2 * batch if kv_bits == 8 else 0  # one FP16 scale per K/V head
    return kv_cache_bytes(config, 1, batch, kv_bits / 8) + scales


class QuantKVCache(KVCache):
    """A :class:`KVCache` that stores K and V as int8 (B, Hkv, max_seq_len, hd) with FP16 scales
    (B, Hkv, max_seq_len, 1): one symmetric scale per token and KV head. ``store`` quantises the new positions
    and returns every stored position dequantised to float32, so attention reads what an INT8 cache holds."""

    def __init__(self, config: LlamaConfig, batch: int = 1, device: torch.device | str = "cpu") -> None:
        if not isinstance(config, LlamaConfig):
            raise TypeError(f"config must be a LlamaConfig, got {type(config).__name__}")
        super().__init__(config, batch, dtype=torch.int8, device=device)
        shape = (batch, config.n_kv_heads, config.max_seq_len, 1)
        self.k_scale = [torch.ones(shape, dtype=torch.float16, device=device) for _ in range(config.n_layers)]
        self.v_scale = [torch.ones(shape, dtype=torch.float16, device=device) for _ in range(config.n_layers)]

    @property
    def nbytes(self) -> int:
        """Bytes allocated for all layers' int8 K and V and their FP16 scales."""
        return sum(t.nbytes for t in self.k + self.v + self.k_scale + self.v_scale)

    @staticmethod
    def _quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, H, T, hd) -> (int8 of the same shape, FP16 scales (B, H, T, 1)), one scale per row of hd."""
        rows = x.detach().float().reshape(-1, x.shape[-1])  # (B*H*T, hd)
        qp = qparams(rows, bits=8, symmetric=True, axis=0, scale_dtype=torch.float16)
        return quantize(rows, qp).reshape(x.shape), qp.scale.reshape(*x.shape[:-1], 1)

    @staticmethod
    def _dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        rows = q.reshape(-1, q.shape[-1])
        qp = QParams(scale.reshape(-1), torch.zeros(rows.shape[0], dtype=torch.int64), 8, signed=True,
                     symmetric=True, axis=0)
        return dequantize(rows, qp).reshape(q.shape)

    def store(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = k.shape[0], k.shape[2]
        end = start + T
        for x, q, s in ((k, self.k[layer], self.k_scale[layer]), (v, self.v[layer], self.v_scale[layer])):
            q[:B, :, start:end], s[:B, :, start:end] = self._quantize(x)
        k_all = self._dequantize(self.k[layer][:B, :, :end], self.k_scale[layer][:B, :, :end]).to(k.dtype)
        v_all = self._dequantize(self.v[layer][:B, :, :end], self.v_scale[layer][:B, :, :end]).to(v.dtype)
        return k_all, v_all  # (B, Hkv, S, hd) each


@torch.inference_mode()
def kv_perplexity(model: TinyLlama, tokens, kv_bits: int = 32, seq_len: int = 256, batch_size: int = 16,
                  max_tokens: int | None = None) -> float:
    """Perplexity (per byte) of ``model`` over non-overlapping windows of ``tokens``, every window run through a
    KV cache of ``kv_bits`` (32 FP32, 16 FP16, 8 :class:`QuantKVCache`): attention reads keys and values back from
    the cache, as in decoding, so the cache's rounding shows in the perplexity. Introduced in notebook 13b."""
    if not isinstance(model, TinyLlama):
        raise TypeError(f"model must be a TinyLlama, got {type(model).__name__}")
    _check_kv_bits(kv_bits)
    cfg = model.config
    make: Callable[[int], KVCache] = (
        (lambda b: QuantKVCache(cfg, b)) if kv_bits == 8
        else (lambda b: KVCache(cfg, b, dtype=torch.float16 if kv_bits == 16 else torch.float32)))
    x, y = token_windows(tokens, seq_len, max_tokens, "KV-cache perplexity")
    total = 0.0
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):  # a fresh cache per batch of windows
        total += nll(F.log_softmax(model(xb, make(len(xb))).float(), -1), yb)
    return math.exp(total / y.numel())


@dataclass
class ContextFit:
    """The longest context whose KV cache fits beside the weights in ``memory_bytes`` (bytes, tokens)."""

    weight_bits: float
    kv_bits: int
    memory_bytes: float
    weights_bytes: float
    kv_bytes_per_token: float
    max_context: int  # tokens; 0 when the weights alone do not fit
    model_max_seq_len: int  # the context the model was trained for; a longer one fits but is not usable

    @property
    def fits_weights(self) -> bool:
        return self.weights_bytes <= self.memory_bytes

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fits_weights": self.fits_weights}


def longest_context(config: LlamaConfig, memory_bytes: float, weight_bits: float = 4.5, kv_bits: int = 16,
                    batch: int = 1) -> ContextFit:
    """Tokens of context whose cache fits in ``memory_bytes`` after the weights (params x ``weight_bits`` / 8):
    floor((memory - weights) / :func:`kv_bytes_per_token`). Returns a :class:`ContextFit`; extends the
    7B-on-a-phone arithmetic of notebook 13 (:func:`mclab.llm.memory_budget`). Introduced in notebook 13b."""
    _check_kv_bits(kv_bits)
    if not (isinstance(memory_bytes, (int, float)) and memory_bytes > 0 and math.isfinite(memory_bytes)):
        raise ValueError(f"memory_bytes={memory_bytes!r} must be a positive number of bytes")
    if not 1 <= weight_bits <= 32:
        raise ValueError(f"weight_bits={weight_bits} must be between 1 and 32")
    weights = param_count(config) * weight_bits / 8
    per_token = kv_bytes_per_token(config, kv_bits, batch)
    n = max(0, math.floor((memory_bytes - weights) / per_token))
    return ContextFit(weight_bits=weight_bits, kv_bits=kv_bits, memory_bytes=float(memory_bytes),
                      weights_bytes=weights, kv_bytes_per_token=per_token, max_context=n,
                      model_max_seq_len=config.max_seq_len)
