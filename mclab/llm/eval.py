"""Scoring a language model on held-out text: windows of tokens, next-token log-probabilities, perplexity, KL.

Every score in :mod:`mclab.llm` is built from the same three pieces, so that numbers from different functions
are computed over the same positions and can be set side by side:

- :func:`token_windows` cuts a token sequence into non-overlapping (inputs, next-token targets) windows;
- :func:`log_probs` runs a model over those windows, one batch at a time, and yields log-softmax outputs;
- :func:`nll` sums the negative log-likelihood of the targets under them.

:func:`perplexity` and :func:`kl_divergence` are the two scores built from them; :func:`mclab.llm.kv_perplexity`,
:func:`mclab.llm.compare_formats` and :func:`mclab.llm.evaluate_llamacpp` use the same windows.
Introduced in notebook 13.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["token_windows", "log_probs", "nll", "perplexity", "kl_divergence"]


def token_windows(tokens, seq_len: int, max_tokens: int | None = None,
                  what: str = "evaluation") -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping windows of ``tokens`` (the first ``max_tokens`` of them when given): inputs ``x`` and their
    next-token targets ``y``, two int64 tensors of shape (n_windows, seq_len), ``y`` being ``x`` shifted by one
    token. ``what`` names the caller in the ``ValueError`` raised when fewer than ``seq_len + 1`` tokens remain."""
    t = torch.as_tensor(np.asarray(tokens), dtype=torch.int64)
    if max_tokens is not None:
        t = t[:max_tokens]
    n = (len(t) - 1) // seq_len
    if n < 1:
        raise ValueError(f"need more than seq_len={seq_len} tokens for {what}, got {len(t)}")
    return t[: n * seq_len].view(n, seq_len), t[1: n * seq_len + 1].view(n, seq_len)


def log_probs(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """``model``'s next-token log-probabilities (natural log, float32) on the windows ``x`` (n, T), one batch of
    ``batch_size`` windows at a time: yields (batch, T, vocab) tensors in order. Run it under
    ``torch.inference_mode()``."""
    for i in range(0, len(x), batch_size):
        yield F.log_softmax(model(x[i:i + batch_size]).float(), -1)  # (B, T, vocab)


def nll(logp: torch.Tensor, y: torch.Tensor) -> float:
    """Summed negative log-likelihood, in nats, of the targets ``y`` (B, T) under the log-probabilities ``logp``
    (B, T, vocab); divide by ``y.numel()`` for nats per token."""
    return F.nll_loss(logp.reshape(-1, logp.size(-1)), y.reshape(-1), reduction="sum").item()


@torch.inference_mode()
def perplexity(model: torch.nn.Module, tokens, seq_len: int = 256, batch_size: int = 16,
               max_tokens: int | None = None) -> float:
    """exp(mean next-token cross-entropy) over non-overlapping windows of ``tokens``; per byte for this tokenizer.

    ``max_tokens`` caps how much of ``tokens`` is used (FAST runs). Lower is better; 256 is a uniform guess.
    """
    x, y = token_windows(tokens, seq_len, max_tokens, "perplexity")
    total = sum(nll(lp, yb) for lp, yb in zip(log_probs(model, x, batch_size), y.split(batch_size), strict=True))
    return math.exp(total / y.numel())


@torch.inference_mode()
def kl_divergence(model: torch.nn.Module, reference: torch.nn.Module, tokens, seq_len: int = 256,
                  batch_size: int = 16, max_tokens: int | None = None) -> float:
    """Mean KL(reference || model) of the next-token distributions over ``tokens``, nats per token.

    llama.cpp's measure of quantisation damage: far more sensitive than perplexity, because it compares
    whole distributions with the FP32 model's instead of one probability with the text. 0 = identical.
    """
    x, _ = token_windows(tokens, seq_len, max_tokens, "KL divergence")
    total = sum(F.kl_div(lp, lq, log_target=True, reduction="sum").item()
                for lp, lq in zip(log_probs(model, x, batch_size), log_probs(reference, x, batch_size), strict=True))
    return total / x.numel()
