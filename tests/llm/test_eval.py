"""mclab.llm.eval: windows of held-out tokens, NLL, and perplexity and KL divergence by closed form."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mclab import llm


def test_token_windows_are_inputs_and_next_token_targets():
    x, y = llm.token_windows(list(range(20)), seq_len=6)
    assert x.shape == y.shape == (3, 6) and x.dtype == torch.int64
    assert x[1].tolist() == [6, 7, 8, 9, 10, 11] and torch.equal(y, x + 1)
    assert llm.token_windows(list(range(20)), seq_len=6, max_tokens=13)[0].shape == (2, 6)
    with pytest.raises(ValueError, match="need more than seq_len=6 tokens for scoring, got 6"):
        llm.token_windows(list(range(6)), seq_len=6, what="scoring")


def test_nll_is_cross_entropy_summed_over_log_probs_batches(tiny_model):
    m = tiny_model()
    x, y = llm.token_windows(llm.corpus().val[:400], seq_len=32)
    batches = list(llm.log_probs(m, x, batch_size=5))
    assert [len(b) for b in batches] == [5, 5, 2] and batches[0].shape == (5, 32, 256)
    with torch.no_grad():
        ref = F.cross_entropy(m(x).reshape(-1, 256), y.reshape(-1), reduction="sum").item()
    assert sum(llm.nll(lp, yb) for lp, yb in zip(batches, y.split(5), strict=True)) == pytest.approx(ref, rel=1e-5)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(tiny_model):
    m = tiny_model()
    torch.nn.init.zeros_(m.output.weight)  # all logits 0: every byte equally likely
    tokens = llm.corpus().val[:2000]
    assert llm.perplexity(m, tokens, seq_len=64) == pytest.approx(256, rel=1e-5)
    with pytest.raises(ValueError, match="need more than seq_len=64"):
        llm.perplexity(m, tokens[:10], seq_len=64)


def test_kl_divergence_is_zero_for_the_same_model_and_matches_uniform(tiny_model):
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
