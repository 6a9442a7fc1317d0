"""Training the tiny language model, caching the checkpoint, and perplexity on held-out text.

``pretrained(TrainConfig())`` returns a :class:`TrainResult` whose ``model`` is a trained :class:`TinyLlama`:
from the cache when a checkpoint for the same model shape, training settings, text and torch version exists,
else it trains (a progress bar shows loss) and saves. The cache directory is ``$MCLAB_CACHE`` or
``~/.cache/mclab``. Introduced in notebook 13.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..cache import cache_dir
from .model import LlamaConfig, TinyLlama
from .tokenizer import Corpus, corpus

__all__ = ["TrainConfig", "TrainResult", "train", "pretrained", "perplexity", "kl_divergence", "cache_dir"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Defaults: 400 steps x 2048 tokens (about two passes over the 0.42 MB training text), about
    1.5 minutes on 2 quiet cores. At 200 steps the model is still far from trained (loss falling fast) and INT4
    rounding barely changes its perplexity, so no quantiser can be ranked by it (notebook 13)."""

    model: LlamaConfig = field(default_factory=LlamaConfig)
    steps: int = 400  # optimiser steps; loss is still falling at the end, but slowly
    batch_size: int = 8  # sequences per step
    seq_len: int = 256  # tokens per sequence: 8 x 256 = 2048 tokens per step
    lr: float = 2e-3  # peak AdamW learning rate; small models tolerate a high one
    warmup: int = 40  # linear warm-up steps, then cosine decay to lr / 10
    weight_decay: float = 0.1  # on matrices only, not on norms
    seed: int = 0  # same seed, same text, same torch -> same model

    def __post_init__(self) -> None:
        if not isinstance(self.model, LlamaConfig):
            raise TypeError(f"model must be a LlamaConfig, got {type(self.model).__name__}")
        for name in ("steps", "batch_size", "seq_len"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r} must be a positive int")
        if self.seq_len > self.model.max_seq_len:
            raise ValueError(f"seq_len={self.seq_len} exceeds the model's max_seq_len={self.model.max_seq_len}")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if not 0 <= self.warmup <= self.steps:
            raise ValueError(f"warmup={self.warmup} must be between 0 and steps={self.steps}")

    @classmethod
    def recipe(cls, model: LlamaConfig, steps: int) -> "TrainConfig":
        """The default recipe for ``model`` at ``steps`` optimiser steps, its warm-up at most a fifth of them
        (notebooks 13 and 13b train with it, so they share cached checkpoints)."""
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps={steps!r} must be a positive int")
        return cls(model=model, steps=steps, warmup=min(cls().warmup, steps // 5))

    def key(self, text_sha256: str) -> str:
        """Cache key: a hash of this config, the training text and the torch version."""
        blob = json.dumps({"cfg": asdict(self), "text": text_sha256, "torch": torch.__version__.split("+")[0]},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    """What training produced: the trained ``model`` (eval mode), the loss curve (nats/token), wall time in s,
    held-out perplexity, whether it came from the cache and the checkpoint's path."""

    model: TinyLlama = field(repr=False)
    losses: list[float]
    train_s: float
    val_perplexity: float
    n_params: int
    from_cache: bool
    path: str

    def as_dict(self) -> dict[str, Any]:
        """Everything but the model (what the checkpoint stores beside the weights)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(cfg: TrainConfig, data: Corpus | None = None, progress: bool = True) -> TrainResult:
    """Train a fresh model on random windows of the training split; returns a :class:`TrainResult` (``.model``
    in eval mode)."""
    from tqdm.auto import tqdm

    data = data or corpus()
    torch.manual_seed(cfg.seed)
    model = TinyLlama(cfg.model)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    train_tokens = torch.from_numpy(data.train.astype(np.int64))
    gen = torch.Generator().manual_seed(cfg.seed)
    offsets = torch.arange(cfg.seq_len + 1)
    losses: list[float] = []
    model.train()
    start = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="training", disable=not progress)
    for step in bar:
        starts = torch.randint(0, len(train_tokens) - cfg.seq_len - 1, (cfg.batch_size,), generator=gen)
        batch = train_tokens[starts[:, None] + offsets]  # (B, T+1)
        x, y = batch[:, :-1], batch[:, 1:]
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        logits = model(x)  # (B, T, vocab)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == cfg.steps - 1:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    train_s = time.perf_counter() - start
    model.eval()
    ppl = perplexity(model, data.val, seq_len=cfg.seq_len)
    return TrainResult(model=model, losses=losses, train_s=train_s, val_perplexity=ppl, n_params=model.n_params(),
                       from_cache=False, path="")


def pretrained(cfg: TrainConfig | None = None, progress: bool = True) -> TrainResult:
    """A trained model for ``cfg``: loaded from the cache if present, else trained and cached; returns a
    :class:`TrainResult` (``.model``, and how it was trained)."""
    cfg = cfg or TrainConfig()
    data = corpus()
    path = cache_dir() / "llm" / f"tinyllama-{cfg.key(data.sha256)}.pt"
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=False)
        model = TinyLlama(cfg.model)
        model.load_state_dict(saved["state_dict"])
        model.eval()
        return TrainResult(model=model, **{**saved["result"], "from_cache": True, "path": str(path)})
    res = train(cfg, data, progress=progress)
    res.path = str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": res.model.state_dict(), "result": res.as_dict(), "config": asdict(cfg)}, tmp)
    tmp.replace(path)  # atomic: a half-written file is never mistaken for a checkpoint
    return res


def _windows(tokens, seq_len: int, max_tokens: int | None, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping (inputs, next-token targets) windows of ``tokens``: two (n, seq_len) int64 tensors."""
    t = torch.as_tensor(np.asarray(tokens), dtype=torch.int64)
    if max_tokens is not None:
        t = t[:max_tokens]
    n = (len(t) - 1) // seq_len
    if n < 1:
        raise ValueError(f"need more than seq_len={seq_len} tokens for {what}, got {len(t)}")
    return t[: n * seq_len].view(n, seq_len), t[1: n * seq_len + 1].view(n, seq_len)


def _log_probs(model: torch.nn.Module, x: torch.Tensor, batch_size: int):
    """``model``'s next-token log-probabilities on the windows ``x``, one batch of windows at a time."""
    for i in range(0, len(x), batch_size):
        yield F.log_softmax(model(x[i:i + batch_size]).float(), -1)


def _nll(logp: torch.Tensor, y: torch.Tensor) -> float:
    """Summed negative log-likelihood of the targets ``y`` under the log-probabilities ``logp``."""
    return F.nll_loss(logp.reshape(-1, logp.size(-1)), y.reshape(-1), reduction="sum").item()


@torch.inference_mode()
def perplexity(model: torch.nn.Module, tokens, seq_len: int = 256, batch_size: int = 16,
               max_tokens: int | None = None) -> float:
    """exp(mean next-token cross-entropy) over non-overlapping windows of ``tokens``; per byte for this tokenizer.

    ``max_tokens`` caps how much of ``tokens`` is used (FAST runs). Lower is better; 256 is a uniform guess.
    """
    x, y = _windows(tokens, seq_len, max_tokens, "perplexity")
    total = sum(_nll(lp, yb) for lp, yb in zip(_log_probs(model, x, batch_size), y.split(batch_size), strict=True))
    return math.exp(total / y.numel())


@torch.inference_mode()
def kl_divergence(model: torch.nn.Module, reference: torch.nn.Module, tokens, seq_len: int = 256,
                  batch_size: int = 16, max_tokens: int | None = None) -> float:
    """Mean KL(reference || model) of the next-token distributions over ``tokens``, nats per token.

    llama.cpp's measure of quantisation damage: far more sensitive than perplexity, because it compares
    whole distributions with the FP32 model's instead of one probability with the text. 0 = identical.
    """
    x, _ = _windows(tokens, seq_len, max_tokens, "KL divergence")
    total = sum(F.kl_div(lp, lq, log_target=True, reduction="sum").item()
                for lp, lq in zip(_log_probs(model, x, batch_size), _log_probs(reference, x, batch_size), strict=True))
    return total / x.numel()
