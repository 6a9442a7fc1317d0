"""Training the tiny language model and caching the checkpoint (held-out scores are :mod:`mclab.llm.eval`'s).

``pretrained(LMTrainConfig())`` returns an :class:`LMTrainResult` whose ``model`` is a trained :class:`TinyLlama`:
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

from ..cache import cache_dir, cached
from .eval import perplexity
from .model import LlamaConfig, TinyLlama
from .tokenizer import Corpus, corpus

__all__ = ["LMTrainConfig", "LMTrainResult", "train_lm", "pretrained", "cache_dir"]


@dataclass(frozen=True)
class LMTrainConfig:
    """How to train the language model (:class:`mclab.models.TrainConfig` is the image classifiers'). Defaults: 400
    steps x 2048 tokens (about two passes over the 0.42 MB training text), about 1.5 minutes on 2 quiet cores. At 200
    steps the model is still far from trained (loss falling fast) and INT4 rounding barely changes its perplexity,
    so no quantiser can be ranked by it (notebook 13)."""

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
    def recipe(cls, model: LlamaConfig, steps: int) -> "LMTrainConfig":
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
class LMTrainResult:
    """What :func:`train_lm` produced: the trained ``model`` (eval mode), the loss curve (nats/token), wall time in s,
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


def _lr(step: int, cfg: LMTrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_lm(config: LMTrainConfig, data: Corpus | None = None, progress: bool = True) -> LMTrainResult:
    """Train a fresh model on random windows of the training split; returns an :class:`LMTrainResult` (``.model``
    in eval mode)."""
    from tqdm.auto import tqdm

    data = data or corpus()
    torch.manual_seed(config.seed)
    model = TinyLlama(config.model)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.95))
    train_tokens = torch.from_numpy(data.train.astype(np.int64))
    gen = torch.Generator().manual_seed(config.seed)
    offsets = torch.arange(config.seq_len + 1)
    losses: list[float] = []
    model.train()
    start = time.perf_counter()
    bar = tqdm(range(config.steps), desc="training", disable=not progress)
    for step in bar:
        starts = torch.randint(0, len(train_tokens) - config.seq_len - 1, (config.batch_size,), generator=gen)
        batch = train_tokens[starts[:, None] + offsets]  # (B, T+1)
        x, y = batch[:, :-1], batch[:, 1:]
        for group in opt.param_groups:
            group["lr"] = _lr(step, config)
        logits = model(x)  # (B, T, vocab)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == config.steps - 1:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    train_s = time.perf_counter() - start
    model.eval()
    ppl = perplexity(model, data.val, seq_len=config.seq_len)
    return LMTrainResult(model=model, losses=losses, train_s=train_s, val_perplexity=ppl, n_params=model.n_params(),
                       from_cache=False, path="")


def pretrained(config: LMTrainConfig | None = None, progress: bool = True) -> LMTrainResult:
    """A trained model for ``config``: loaded from the cache if present, else trained and cached; returns an
    :class:`LMTrainResult` (``.model``, and how it was trained)."""
    config = config or LMTrainConfig()
    data = corpus()
    path = cache_dir() / "llm" / f"tinyllama-{config.key(data.sha256)}.pt"
    trained: list[LMTrainResult] = []

    def build() -> dict[str, Any]:
        trained.append(train_lm(config, data, progress=progress))
        return {"state_dict": trained[0].model.state_dict(), "result": trained[0].as_dict(), "config": asdict(config)}

    entry = cached(path, build, save=torch.save, load=lambda p: torch.load(p, map_location="cpu", weights_only=False))
    if trained:
        trained[0].path = str(path)
        return trained[0]
    model = TinyLlama(config.model)
    model.load_state_dict(entry.value["state_dict"])
    model.eval()
    return LMTrainResult(model=model, **{**entry.value["result"], "from_cache": True, "path": str(path)})
