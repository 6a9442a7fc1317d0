"""mclab.llm.kv: the INT8 KV cache (per token and head scales), its bytes, perplexity and context budgets."""
from __future__ import annotations

import math

import pytest
import torch

from mclab import llm


def test_int8_cache_bytes_formula_and_allocation(tiny):
    c = llm.QuantKVCache(tiny, batch=3)
    assert c.nbytes == pytest.approx(llm.kv_bytes_per_token(tiny, 8, batch=3) * tiny.max_seq_len)
    # 1 byte per value + a 2-byte scale per head_dim values
    assert llm.kv_bytes_per_token(tiny, 8) == 2 * tiny.n_layers * tiny.n_kv_heads * (tiny.head_dim + 2)
    fp16 = llm.kv_cache_bytes(tiny, tiny.max_seq_len, 3, 2)
    assert c.nbytes / fp16 == pytest.approx((1 + 2 / tiny.head_dim) / 2)
    assert llm.kv_bytes_per_token(tiny, 16) * tiny.max_seq_len == llm.kv_cache_bytes(tiny, tiny.max_seq_len, 1, 2)


def test_int8_cache_round_trip_error_is_half_a_step(tiny):
    c = llm.QuantKVCache(tiny, batch=2)
    k = torch.randn(2, tiny.n_kv_heads, 10, tiny.head_dim)
    v = torch.randn(2, tiny.n_kv_heads, 10, tiny.head_dim) * 5
    k_all, v_all = c.store(0, 0, k, v)
    step = k.abs().amax(-1, keepdim=True) / 127
    assert k_all.shape == k.shape and (k_all - k).abs().le(step / 2 * 1.01 + 1e-6).all()
    assert c.k[0].dtype == torch.int8 and c.k_scale[0].dtype == torch.float16
    k2, _ = c.store(0, 10, k[:, :, :3], v[:, :, :3])  # appending keeps what was stored
    assert torch.equal(k2[:, :, :10], k_all)


@torch.inference_mode()
def test_generation_through_int8_cache_matches_float(tiny_model):
    m = tiny_model(2)
    x = torch.randint(0, 256, (1, 40), generator=torch.Generator().manual_seed(0))
    ref = m(x)
    out = m(x, llm.QuantKVCache(m.config))
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    # prefill then one step at a time reads the int8 cache back
    c = llm.QuantKVCache(m.config)
    m(x[:, :30], c)
    step = m(x[:, 30:31], c)[0, -1]
    assert torch.allclose(step, ref[0, 30], atol=0.05 * float(ref.abs().max()))


def test_kv_perplexity_matches_plain_at_fp32_and_close_at_int8(tiny_model):
    m = tiny_model()
    tokens = torch.randint(0, 256, (2000,), generator=torch.Generator().manual_seed(1)).numpy()
    p = llm.perplexity(m, tokens, seq_len=64)
    assert llm.kv_perplexity(m, tokens, 32, seq_len=64) == pytest.approx(p, rel=1e-5)
    assert llm.kv_perplexity(m, tokens, 16, seq_len=64) == pytest.approx(p, rel=1e-3)
    assert llm.kv_perplexity(m, tokens, 8, seq_len=64) == pytest.approx(p, rel=1e-2)


def test_longest_context_on_a_phone():
    cfg = llm.LLAMA2_7B
    fit16 = llm.longest_context(cfg, 8e9, weight_bits=4.5, kv_bits=16)
    fit8 = llm.longest_context(cfg, 8e9, weight_bits=4.5, kv_bits=8)
    weights = llm.param_count(cfg) * 4.5 / 8
    assert fit16.max_context == math.floor((8e9 - weights) / (2 * 32 * 32 * 128 * 2))
    assert fit8.max_context == math.floor((8e9 - weights) / (2 * 32 * 32 * (128 + 2)))
    assert 1.9 < fit8.max_context / fit16.max_context < 2
    assert llm.longest_context(cfg, 2e9, weight_bits=4.5).max_context == 0  # the weights alone do not fit 2 GB
    assert not llm.longest_context(cfg, 2e9, weight_bits=4.5).fits_weights


def test_kv_bad_input(tiny, tiny_model):
    with pytest.raises(ValueError, match="kv_bits=4 is not supported"):
        llm.kv_bytes_per_token(tiny, 4)
    with pytest.raises(ValueError, match="memory_bytes=-1"):
        llm.longest_context(tiny, -1)
    with pytest.raises(TypeError, match="LlamaConfig"):
        llm.QuantKVCache("tiny")
    with pytest.raises(TypeError, match="TinyLlama"):
        llm.kv_perplexity(torch.nn.Linear(2, 2), [1, 2, 3])
