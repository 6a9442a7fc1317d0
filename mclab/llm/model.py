"""A Llama-style decoder-only transformer, small enough to train in minutes on 2 CPU cores.

The pieces are the ones edge LLMs use (Llama 2/3, Mistral, Qwen): RMSNorm before each block,
rotary position embeddings (RoPE), a SwiGLU MLP and grouped-query attention (GQA). The code is
written for reading (nanoGPT style: shapes at line ends), and ``forward`` takes an optional
:class:`KVCache` so that one model serves both generation with and without a cache.
RoPE rotates *adjacent* pairs of channels (Meta's original layout), which is also the layout
llama.cpp expects, so GGUF export needs no weight permutation. Introduced in notebook 13.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["LlamaConfig", "KVCache", "TinyLlama", "ModelCopy", "kv_cache_bytes", "param_count", "LLAMA2_7B",
           "FAST_LLAMA"]


@dataclass(frozen=True)
class LlamaConfig:
    """Shape of the model. Defaults: ~1.8 M parameters, trains in a few minutes on 2 cores."""

    vocab_size: int = 256  # byte-level tokens: nothing to train, every text encodes, no <unk>
    dim: int = 256  # residual width; a multiple of 128 so that quantisation groups of 32, 64 and 128 all fit
    n_layers: int = 3  # depth; each layer adds one K and one V tensor to the cache
    n_heads: int = 8  # query heads of head_dim = dim / n_heads = 32
    n_kv_heads: int = 2  # GQA: 4 query heads share one K/V head, so the KV cache is 4x smaller
    hidden_dim: int = 512  # SwiGLU width: 2 x dim (Llama uses ~8/3), a multiple of 128, to keep training short
    max_seq_len: int = 512  # longest context; the KV cache is preallocated to this length
    rope_theta: float = 10000.0  # RoPE base frequency (Llama 2's value)
    norm_eps: float = 1e-5  # RMSNorm epsilon (Llama's value)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "hidden_dim", "max_seq_len"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}={v!r} must be a positive int")
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} must be divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads}")
        if (self.dim // self.n_heads) % 2:
            raise ValueError(f"head_dim={self.dim // self.n_heads} must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def kv_cache_bytes(config: LlamaConfig, seq_len: int, batch: int = 1, bytes_per_value: float = 4) -> int:
    """Bytes of a KV cache: 2 (K and V) x layers x kv-heads x head-dim x sequence x batch x bytes."""
    return 2 * config.n_layers * config.n_kv_heads * config.head_dim * seq_len * batch * bytes_per_value


def param_count(config: LlamaConfig) -> int:
    """Parameters of a model of shape ``config`` without building it (untied embedding and output head)."""
    attn = config.dim * config.head_dim * (2 * config.n_heads + 2 * config.n_kv_heads)  # wq, wo, wk, wv
    mlp = 3 * config.dim * config.hidden_dim  # w1, w2, w3
    norms = 2 * config.dim
    return config.n_layers * (attn + mlp + norms) + 2 * config.vocab_size * config.dim + config.dim


# Llama 2 7B's published shape (Touvron et al., 2023), for scaling the formulas up; nothing is built.
LLAMA2_7B = LlamaConfig(vocab_size=32000, dim=4096, n_layers=32, n_heads=32, n_kv_heads=32, hidden_dim=11008,
                        max_seq_len=4096)
# notebooks 13 and 13b in FAST mode: one small shape, so both use the same cached checkpoint
FAST_LLAMA = LlamaConfig(dim=128, n_layers=2, n_heads=4, n_kv_heads=1, hidden_dim=256, max_seq_len=320)


class KVCache:
    """Preallocated keys and values for every layer: (batch, n_kv_heads, max_seq_len, head_dim) each.

    ``pos`` counts the tokens already stored. Preallocating once (rather than concatenating each step)
    keeps memory flat and avoids a copy per token.
    """

    def __init__(self, config: LlamaConfig, batch: int = 1, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        shape = (batch, config.n_kv_heads, config.max_seq_len, config.head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layers)]
        self.pos = 0

    @property
    def nbytes(self) -> int:
        """Bytes allocated for all layers' K and V."""
        return sum(t.nbytes for t in self.k + self.v)

    def store(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write this step's ``k``, ``v`` (B, Hkv, T, hd) at positions ``start ...``; return every stored K and V
        so far, (B, Hkv, start + T, hd) each. A subclass may store them differently (``mclab.llm.QuantKVCache``)."""
        B, T = k.shape[0], k.shape[2]
        self.k[layer][:B, :, start:start + T] = k
        self.v[layer][:B, :, start:start + T] = v
        # read back in the computation's dtype (a no-op when the cache has it; an FP16 cache under an FP32 model)
        return self.k[layer][:B, :, :start + T].to(k.dtype), self.v[layer][:B, :, :start + T].to(v.dtype)


class RMSNorm(nn.Module):
    """x / rms(x) * weight: LayerNorm without the mean subtraction and bias (cheaper, as good)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_tables(head_dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (max_seq_len, head_dim / 2): position p rotates pair i by p * theta^(-2i/d)."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (hd/2,)
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)  # (T, hd/2)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs (x[2i], x[2i+1]) of x (B, H, T, hd) by the angles in cos/sin (T, hd/2)."""
    xp = x.float().unflatten(-1, (-1, 2))  # (B, H, T, hd/2, 2)
    x0, x1 = xp[..., 0], xp[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2).type_as(x)


class Attention(nn.Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.wq = nn.Linear(config.dim, config.n_heads * config.head_dim, bias=False)
        self.wk = nn.Linear(config.dim, config.n_kv_heads * config.head_dim, bias=False)
        self.wv = nn.Linear(config.dim, config.n_kv_heads * config.head_dim, bias=False)
        self.wo = nn.Linear(config.n_heads * config.head_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layer: int,
                cache: KVCache | None) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, hd)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        start = 0
        if cache is not None:  # store this step's K/V, then attend over everything stored so far
            start = cache.pos
            k, v = cache.store(layer, start, k, v)  # (B, Hkv, S, hd) each
        rep = self.n_heads // self.n_kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)  # (B, H, S, hd)
        if T == 1:  # one new token sees every stored position: no mask needed
            y = F.scaled_dot_product_attention(q, k, v)
        elif start == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # several new tokens after a prefix: token t sees positions <= start + t
            S = start + T
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=start)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))  # (B, T, C)


class SwiGLU(nn.Module):
    """w2(silu(w1 x) * w3 x): a gated MLP, better per parameter than GELU's (PaLM, Llama)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(config.dim, config.hidden_dim, bias=False)  # gate
        self.w3 = nn.Linear(config.dim, config.hidden_dim, bias=False)  # up
        self.w2 = nn.Linear(config.hidden_dim, config.dim, bias=False)  # down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.dim, config.norm_eps)
        self.attention = Attention(config)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)
        self.feed_forward = SwiGLU(config)

    def forward(self, x, cos, sin, layer, cache):
        x = x + self.attention(self.attention_norm(x), cos, sin, layer, cache)
        return x + self.feed_forward(self.ffn_norm(x))


class TinyLlama(nn.Module):
    """The kit's language model: ``model(tokens, cache=None) -> logits (B, T, vocab)``."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith(("wo.weight", "w2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        B, T = tokens.shape
        start = cache.pos if cache is not None else 0
        if start + T > self.config.max_seq_len:
            raise ValueError(f"context of {start + T} tokens exceeds max_seq_len={self.config.max_seq_len}")
        cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]  # (T, hd/2)
        x = self.tok_embeddings(tokens)  # (B, T, C)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, i, cache)
        if cache is not None:
            cache.pos += T
        return self.output(self.norm(x))  # (B, T, vocab)


@dataclass
class ModelCopy:
    """What a verb that changes a deep copy of a model returns (the original is untouched): the copy and the report
    of what changed — :func:`mclab.llm.quantized`, :func:`mclab.llm.with_outliers`, :func:`mclab.llm.w8a8`."""

    model: nn.Module = field(repr=False)
    report: Any                      # QuantReport, OutlierReport or W8A8Report

    def as_dict(self) -> dict[str, Any]:
        return self.report.as_dict()
