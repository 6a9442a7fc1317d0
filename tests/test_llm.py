"""mclab.llm: the model, tokenizer, training cache, generation with and without a KV cache, memory."""
from __future__ import annotations

import math

import pytest
import torch

from mclab import llm
from mclab.llm.model import apply_rope, rope_tables

TINY = llm.LlamaConfig(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=128, max_seq_len=96)


def tiny_model(seed: int = 0) -> llm.TinyLlama:
    torch.manual_seed(seed)
    return llm.TinyLlama(TINY).eval()


# ----------------------------------------------------------------------------- tokenizer and text


def test_byte_tokenizer_round_trips_any_text():
    tok = llm.ByteTokenizer()
    text = "def f(x):\n    return x ** 2  # ünïcødé, 量化, 🙂"
    ids = tok.encode(text)
    assert all(0 <= i < 256 for i in ids) and len(ids) == len(text.encode())
    assert tok.decode(ids) == text
    assert tok.token_str(65) == "A" and tok.token_str(10) == "<0x0A>"
    with pytest.raises(TypeError, match="text must be str"):
        tok.encode(b"bytes")


def test_corpus_is_the_shipped_python_docs_split_90_10_by_whole_topics():
    from pydoc_data.topics import topics

    c = llm.corpus()
    assert c.n_tokens > 400_000
    assert abs(len(c.val) / c.n_tokens - 0.1) < 2e-3
    train, val = (bytes(a).decode("utf-8") for a in (c.train, c.val))
    held = [k for k in sorted(topics) if topics[k] in val]
    assert held and not any(topics[k] in train for k in held)  # whole topics, each on one side
    first, last = sorted(topics).index(held[0]), sorted(topics).index(held[-1])
    assert first < len(topics) / 5 and last > 4 * len(topics) / 5  # spread through the alphabet, not its tail
    assert llm.corpus().sha256 == c.sha256  # deterministic
    with pytest.raises(ValueError, match="val_fraction"):
        llm.corpus(val_fraction=1.5)


# ----------------------------------------------------------------------------- model


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="n_heads=4 must be a multiple of n_kv_heads=3"):
        llm.LlamaConfig(dim=64, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="dim=100 must be divisible by n_heads=8"):
        llm.LlamaConfig(dim=100)
    with pytest.raises(ValueError, match="n_layers=0"):
        llm.LlamaConfig(n_layers=0)


def test_param_count_matches_the_module_and_llama2_7b():
    assert llm.param_count(TINY) == tiny_model().n_params()
    assert llm.param_count(llm.LlamaConfig()) == llm.TinyLlama(llm.LlamaConfig()).n_params()
    assert abs(llm.param_count(llm.LLAMA2_7B) - 6.74e9) / 6.74e9 < 0.001  # Llama 2 paper: 6.74 B


def test_rope_preserves_norms_and_depends_only_on_relative_position():
    cos, sin = rope_tables(16, 64, 10000.0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    rot = lambda x, p: apply_rope(x, cos[p:p + 1], sin[p:p + 1])
    assert torch.allclose(rot(q, 7).norm(), q.norm(), atol=1e-5)
    dots = [(rot(q, p + 5) * rot(k, p)).sum().item() for p in (0, 11, 40)]  # offset 5 each time
    assert max(dots) - min(dots) < 1e-4


def test_cache_gives_the_same_logits_as_a_full_forward():
    m = tiny_model()
    x = torch.randint(0, 256, (2, 40))
    cache = llm.KVCache(TINY, batch=2)
    with torch.no_grad():
        full = m(x)
        parts = [m(x[:, :25], cache), m(x[:, 25:33], cache), m(x[:, 33:34], cache)]
    assert cache.pos == 34
    assert torch.allclose(torch.cat(parts, 1), full[:, :34], atol=1e-5)


def test_kv_cache_bytes_formula_matches_the_allocation():
    cache = llm.KVCache(TINY, batch=3)
    assert cache.nbytes == llm.kv_cache_bytes(TINY, TINY.max_seq_len, batch=3) == 2 * 2 * 2 * 16 * 96 * 3 * 4
    assert llm.KVCache(TINY, dtype=torch.float16).nbytes == llm.kv_cache_bytes(TINY, 96, bytes_per_value=2)


# ----------------------------------------------------------------------------- generation


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_tokens_identical_with_and_without_cache(seed):
    m = tiny_model(seed)
    prompt = llm.ByteTokenizer().encode("The KV cache ")
    a = llm.generate(m, prompt, llm.GenerateConfig(max_new_tokens=60, use_cache=True))
    b = llm.generate(m, prompt, llm.GenerateConfig(max_new_tokens=60, use_cache=False))
    assert a.new_tokens == b.new_tokens and len(a.new_tokens) == 60
    assert a.kv_cache_bytes == llm.kv_cache_bytes(TINY, TINY.max_seq_len) and b.kv_cache_bytes == 0
    assert a.ttft_ms > 0 and a.decode_tokens_per_s > 0 and a.prefill_tokens_per_s > 0
    assert len(a.step_ms) == 59 and sum(a.step_ms) <= a.decode_ms


def test_sampling_is_seeded_and_top_k_1_is_greedy():
    m = tiny_model()
    cfg = llm.GenerateConfig(max_new_tokens=20, temperature=1.0, seed=3)
    assert llm.generate(m, [1, 2, 3], cfg).new_tokens == llm.generate(m, [1, 2, 3], cfg).new_tokens
    greedy = llm.generate(m, [1, 2, 3], llm.GenerateConfig(max_new_tokens=20)).new_tokens
    top1 = llm.generate(m, [1, 2, 3], llm.GenerateConfig(max_new_tokens=20, temperature=0.7, top_k=1)).new_tokens
    assert top1 == greedy


def test_generate_rejects_bad_prompts():
    m = tiny_model()
    with pytest.raises(ValueError, match="prompt has no tokens"):
        llm.generate(m, [], llm.GenerateConfig())
    with pytest.raises(ValueError, match=r"exceeds the model's max_seq_len=96"):
        llm.generate(m, list(range(50)), llm.GenerateConfig(max_new_tokens=47))
    with pytest.raises(TypeError, match="encode text"):
        llm.generate(m, "hello", llm.GenerateConfig())
    with pytest.raises(ValueError, match="max_new_tokens=0"):
        llm.GenerateConfig(max_new_tokens=0)
    with pytest.raises(ValueError, match="context of 97 tokens exceeds max_seq_len=96"):
        m(torch.zeros(1, 97, dtype=torch.long))


# ----------------------------------------------------------------------------- memory and bandwidth


def test_kv_cache_memory_matches_the_formula():
    from mclab import flops

    cache, peak = flops.peak_tensor_bytes(lambda: llm.KVCache(TINY, batch=2))
    assert peak == cache.nbytes == llm.kv_cache_bytes(TINY, TINY.max_seq_len, 2)


def test_decode_ceiling():
    assert llm.decode_ceiling(2e9, 20.0) == pytest.approx(10.0)
    assert llm.bytes_per_token(1000, TINY, 10) == 1000 + llm.kv_cache_bytes(TINY, 10)
    with pytest.raises(ValueError, match="bandwidth_gb_s=0"):
        llm.decode_ceiling(1e9, 0)


# ----------------------------------------------------------------------------- training, cache, perplexity


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    m = tiny_model()
    torch.nn.init.zeros_(m.output.weight)  # all logits 0: every byte equally likely
    tokens = llm.corpus().val[:2000]
    assert llm.perplexity(m, tokens, seq_len=64) == pytest.approx(256, rel=1e-5)
    with pytest.raises(ValueError, match="need more than seq_len=64"):
        llm.perplexity(m, tokens[:10], seq_len=64)


def test_kl_divergence_is_zero_for_the_same_model_and_matches_uniform():
    m, uniform = tiny_model(), tiny_model()
    torch.nn.init.zeros_(uniform.output.weight)
    tokens = llm.corpus().val[:1000]
    assert llm.kl_divergence(m, m, tokens, seq_len=64) == pytest.approx(0, abs=1e-6)
    # KL(reference || model): with the trained-shape model as reference and a uniform model, log 256 - H(reference)
    x = torch.as_tensor(tokens[: 15 * 64], dtype=torch.int64).view(15, 64)
    with torch.no_grad():
        logp = torch.log_softmax(m(x).float(), -1)
    entropy = float(-(logp.exp() * logp).sum(-1).mean())
    assert llm.kl_divergence(m, uniform, tokens, seq_len=64) > 0
    assert llm.kl_divergence(uniform, m, tokens, seq_len=64) == pytest.approx(math.log(256) - entropy, rel=1e-4)


def test_training_lowers_loss_and_the_checkpoint_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MCLAB_CACHE", str(tmp_path))
    cfg = llm.TrainConfig(model=TINY, steps=30, batch_size=4, seq_len=64, warmup=5, lr=3e-3)
    m1, r1 = llm.pretrained(cfg, progress=False)
    assert not r1.from_cache and r1.path.startswith(str(tmp_path))
    assert sum(r1.losses[-5:]) / 5 < r1.losses[0] - 1.0  # from ~ln 256 = 5.5 nats to well below
    assert r1.losses[0] == pytest.approx(math.log(256), abs=0.3)
    assert r1.val_perplexity < 100
    m2, r2 = llm.pretrained(cfg, progress=False)
    assert r2.from_cache and r2.val_perplexity == r1.val_perplexity
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert cfg.key("x") != llm.TrainConfig(model=TINY, steps=31, batch_size=4, seq_len=64, warmup=5).key("x")


def test_train_config_validation():
    with pytest.raises(ValueError, match="seq_len=1000 exceeds the model's max_seq_len=96"):
        llm.TrainConfig(model=TINY, seq_len=1000)
    with pytest.raises(TypeError, match="model must be a LlamaConfig"):
        llm.TrainConfig(model={"dim": 64})


def test_memory_budget_scales_llama2_7b_like_the_formulas():
    b = llm.memory_budget(llm.LLAMA2_7B, 4096, weight_bits=4.5, kv_bytes_per_value=2)
    assert b.kv_bytes == 2 * 2**30  # 2 x 32 layers x 32 heads x 128 x 4096 x 2 bytes = 2 GiB
    assert b.weights_bytes == pytest.approx(6.74e9 * 4.5 / 8, rel=1e-3)
    assert b.decode_ceiling(50.0) == pytest.approx(50e9 / b.total_bytes)
    with pytest.raises(ValueError, match="seq_len=5000 must be between 1 and the model's max_seq_len=4096"):
        llm.memory_budget(llm.LLAMA2_7B, 5000)
