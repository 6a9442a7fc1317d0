"""mclab.llm.generate: greedy and sampled generation with and without a KV cache, its memory and bandwidth."""
from __future__ import annotations

import pytest
import torch

from mclab import llm


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_tokens_identical_with_and_without_cache(tiny, tiny_model, seed):
    m = tiny_model(seed)
    prompt = llm.ByteTokenizer().encode("The KV cache ")
    a = llm.generate(m, prompt, llm.GenerateConfig(max_new_tokens=60, use_cache=True))
    b = llm.generate(m, prompt, llm.GenerateConfig(max_new_tokens=60, use_cache=False))
    assert a.new_tokens == b.new_tokens and len(a.new_tokens) == 60
    assert a.kv_cache_bytes == llm.kv_cache_bytes(tiny, tiny.max_seq_len) and b.kv_cache_bytes == 0
    assert a.ttft_ms > 0 and a.decode_tokens_per_s > 0 and a.prefill_tokens_per_s > 0
    assert len(a.step_ms) == 59 and sum(a.step_ms) <= a.decode_ms


def test_sampling_is_seeded_and_top_k_1_is_greedy(tiny_model):
    m = tiny_model()
    cfg = llm.GenerateConfig(max_new_tokens=20, temperature=1.0, seed=3)
    assert llm.generate(m, [1, 2, 3], cfg).new_tokens == llm.generate(m, [1, 2, 3], cfg).new_tokens
    greedy = llm.generate(m, [1, 2, 3], llm.GenerateConfig(max_new_tokens=20)).new_tokens
    top1 = llm.generate(m, [1, 2, 3], llm.GenerateConfig(max_new_tokens=20, temperature=0.7, top_k=1)).new_tokens
    assert top1 == greedy


def test_generate_rejects_bad_prompts(tiny_model):
    m = tiny_model()
    with pytest.raises(ValueError, match="prompt has no tokens"):
        llm.generate(m, [], llm.GenerateConfig())
    with pytest.raises(ValueError, match=r"exceeds the model's max_seq_len=96"):
        llm.generate(m, list(range(50)), llm.GenerateConfig(max_new_tokens=47))
    with pytest.raises(TypeError, match="encode text"):
        llm.generate(m, "hello", llm.GenerateConfig())
    x = llm.as_prompt([5, 6, 7], max_seq_len=96, max_new_tokens=93)  # the check generate and speculative share
    assert x.shape == (1, 3) and x.dtype == torch.int64 and x.tolist() == [[5, 6, 7]]
    with pytest.raises(ValueError, match="max_new_tokens=0"):
        llm.GenerateConfig(max_new_tokens=0)
    with pytest.raises(ValueError, match="context of 97 tokens exceeds max_seq_len=96"):
        m(torch.zeros(1, 97, dtype=torch.long))


def test_kv_cache_memory_matches_the_formula(tiny):
    from mclab import flops

    cache, peak = flops.peak_tensor_bytes(lambda: llm.KVCache(tiny, batch=2))
    assert peak == cache.nbytes == llm.kv_cache_bytes(tiny, tiny.max_seq_len, 2)


def test_decode_ceiling(tiny):
    assert llm.decode_ceiling(2e9, 20.0) == pytest.approx(10.0)
    assert llm.bytes_per_token(1000, tiny, 10) == 1000 + llm.kv_cache_bytes(tiny, 10)
    with pytest.raises(ValueError, match="bandwidth_gb_s=0"):
        llm.decode_ceiling(1e9, 0)


def test_memory_budget_scales_llama2_7b_like_the_formulas():
    b = llm.memory_budget(llm.LLAMA2_7B, 4096, weight_bits=4.5, kv_bytes_per_value=2)
    assert b.kv_bytes == 2 * 2**30  # 2 x 32 layers x 32 heads x 128 x 4096 x 2 bytes = 2 GiB
    assert b.weights_bytes == pytest.approx(6.74e9 * 4.5 / 8, rel=1e-3)
    assert b.decode_ceiling(50.0) == pytest.approx(50e9 / b.total_bytes)
    with pytest.raises(ValueError, match="seq_len=5000 must be between 1 and the model's max_seq_len=4096"):
        llm.memory_budget(llm.LLAMA2_7B, 5000)
