"""mclab.llm.speculative: greedy speculative decoding is exactly the target's greedy decoding."""
from __future__ import annotations

import pytest
import torch

from mclab import llm


@pytest.fixture(scope="module")
def pair(tiny):
    torch.manual_seed(0)
    target = llm.TinyLlama(tiny).eval()
    torch.manual_seed(1)
    draft = llm.TinyLlama(llm.LlamaConfig(dim=32, n_layers=1, n_heads=2, n_kv_heads=1, hidden_dim=64,
                                          max_seq_len=96)).eval()
    return target, draft


@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("prompt", ["The ", "def f(x):\n    return", "x"])
def test_identical_to_plain_greedy(pair, k, prompt):
    target, draft = pair
    ids = llm.ByteTokenizer().encode(prompt)
    plain = llm.generate(target, ids, llm.GenerateConfig(max_new_tokens=40)).new_tokens
    spec = llm.speculative_generate(target, draft, ids, llm.SpeculativeConfig(k=k, max_new_tokens=40))
    assert spec.new_tokens == plain
    assert spec.proposed == k * spec.rounds and 0 <= spec.accepted <= spec.proposed
    assert sum(spec.accepted_per_round) == spec.accepted and len(spec.new_tokens) == 40


def test_a_perfect_draft_is_always_accepted(pair):
    target, _ = pair
    r = llm.speculative_generate(target, target, [1, 2, 3], llm.SpeculativeConfig(k=4, max_new_tokens=41))
    assert r.acceptance_rate == 1 and r.rejections == 0 and r.alpha == 1
    assert r.rounds == 8 and r.tokens_per_round == 5  # 1 from the prefill + 8 rounds x (4 drafts + 1)
    assert r.new_tokens == llm.generate(target, [1, 2, 3], llm.GenerateConfig(max_new_tokens=41)).new_tokens


def test_expected_speedup_formula():
    # Leviathan et al. (2023): alpha = 0.8, k = 4, free draft -> (1 - 0.8^5) / 0.2 = 3.36 tokens per pass
    assert llm.expected_tokens_per_round(0.8, 4) == pytest.approx(3.3616)
    assert llm.expected_speedup(0.8, 4, 0.0) == pytest.approx(3.3616)
    assert llm.expected_speedup(0.8, 4, 0.05) == pytest.approx(3.3616 / 1.2)
    assert llm.expected_speedup(0.0, 3, 0.5) == pytest.approx(1 / 2.5)  # nothing accepted: pure overhead
    assert llm.expected_tokens_per_round(1.0, 3) == 4


def test_speculative_bad_input(pair, tiny):
    target, draft = pair
    with pytest.raises(ValueError, match="k=0 must be an int >= 1"):
        llm.SpeculativeConfig(k=0)
    other = llm.TinyLlama(llm.LlamaConfig(vocab_size=300, dim=32, n_layers=1, n_heads=2, n_kv_heads=1,
                                          hidden_dim=64, max_seq_len=96)).eval()
    with pytest.raises(ValueError, match=r"draft's vocabulary \(vocab_size=300\) differs from the target's"):
        llm.speculative_generate(target, other, [1, 2], llm.SpeculativeConfig())
    with pytest.raises(TypeError, match="draft must be a mclab.llm.TinyLlama"):
        llm.speculative_generate(target, "draft", [1, 2])
    with pytest.raises(ValueError, match="alpha=1.5"):
        llm.expected_speedup(1.5, 2, 0.1)
    with pytest.raises(ValueError, match="cost_ratio=-1"):
        llm.expected_speedup(0.5, 2, -1)
    with pytest.raises(ValueError, match="max_seq_len"):
        llm.speculative_generate(target, draft, list(range(60)), llm.SpeculativeConfig(k=4, max_new_tokens=34))
