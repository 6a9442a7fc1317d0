"""mclab.llm.model: config validation, parameter count, RoPE, and the KV cache against a full forward pass."""
from __future__ import annotations

import pytest
import torch

from mclab import llm
from mclab.llm.model import apply_rope, rope_tables


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="n_heads=4 must be a multiple of n_kv_heads=3"):
        llm.LlamaConfig(dim=64, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="dim=100 must be divisible by n_heads=8"):
        llm.LlamaConfig(dim=100)
    with pytest.raises(ValueError, match="n_layers=0"):
        llm.LlamaConfig(n_layers=0)


def test_param_count_matches_the_module_and_llama2_7b(tiny, tiny_model):
    assert llm.param_count(tiny) == tiny_model().n_params()
    assert llm.param_count(llm.LlamaConfig()) == llm.TinyLlama(llm.LlamaConfig()).n_params()
    assert abs(llm.param_count(llm.LLAMA2_7B) - 6.74e9) / 6.74e9 < 0.001  # Llama 2 paper: 6.74 B


def test_rope_preserves_norms_and_depends_only_on_relative_position():
    cos, sin = rope_tables(16, 64, 10000.0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def rot(x, p):
        return apply_rope(x, cos[p:p + 1], sin[p:p + 1])

    assert torch.allclose(rot(q, 7).norm(), q.norm(), atol=1e-5)
    dots = [(rot(q, p + 5) * rot(k, p)).sum().item() for p in (0, 11, 40)]  # offset 5 each time
    assert max(dots) - min(dots) < 1e-4


def test_cache_gives_the_same_logits_as_a_full_forward(tiny, tiny_model):
    m = tiny_model()
    x = torch.randint(0, 256, (2, 40))
    cache = llm.KVCache(tiny, batch=2)
    with torch.no_grad():
        full = m(x)
        parts = [m(x[:, :25], cache), m(x[:, 25:33], cache), m(x[:, 33:34], cache)]
    assert cache.pos == 34
    assert torch.allclose(torch.cat(parts, 1), full[:, :34], atol=1e-5)


def test_kv_cache_bytes_formula_matches_the_allocation(tiny):
    cache = llm.KVCache(tiny, batch=3)
    assert cache.nbytes == llm.kv_cache_bytes(tiny, tiny.max_seq_len, batch=3) == 2 * 2 * 2 * 16 * 96 * 3 * 4
    assert llm.KVCache(tiny, dtype=torch.float16).nbytes == llm.kv_cache_bytes(tiny, 96, bytes_per_value=2)
