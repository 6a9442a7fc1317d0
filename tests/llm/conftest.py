"""The tiny model shape the mclab.llm tests share, and a factory for seeded models of that shape."""
from __future__ import annotations

import pytest
import torch

from mclab import llm


@pytest.fixture(scope="session")
def tiny() -> llm.LlamaConfig:
    """A 2-layer model shape: width 64 (quantisation groups of 32 and 64 fit), context 96."""
    return llm.LlamaConfig(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=128, max_seq_len=96)


@pytest.fixture(scope="session")
def tiny_model(tiny):
    """``tiny_model(seed=0)`` -> a fresh, untrained TinyLlama of shape ``tiny`` in eval mode."""
    def make(seed: int = 0) -> llm.TinyLlama:
        torch.manual_seed(seed)
        return llm.TinyLlama(tiny).eval()

    return make
