"""Models the kit uses: torchvision architectures with their published metadata, and the
kit's own trained reference classifier with its train / evaluate loops.

``zoo("resnet18")`` builds a torchvision classifier with *random* weights (nothing is
downloaded — only shape and cost matter for speed and size) and carries what torchvision
publishes about the trained weights (ImageNet top-1, parameter count, file size, the
resolution it was evaluated at), so notebooks can set measured cost beside published
accuracy. Introduced in notebook 00.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import cache
from .stats import wilson_ci

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    # torchvision architectures with published metadata
    "ZooModel", "zoo", "zoo_names",
    # the kit's trained reference model and small CNNs
    "reference", "reference_spec", "ReferenceSpec", "resnet18_digits", "small_cnn", "lenet5", "ARCHITECTURES",
    # a transformer's feed-forward block (export and compilation examples)
    "MLPBlock",
    # training and evaluation
    "TrainConfig", "TrainResult", "EvalResult", "train", "evaluate",
]


@dataclass
class ZooModel:
    """A randomly initialised torchvision model and its published metadata."""

    name: str
    module: torch.nn.Module
    input_shape: tuple[int, int, int, int]   # (B, C, H, W) at torchvision's evaluation resolution
    published_params: int                    # torchvision's num_params for the trained weights
    published_top1: float | None             # ImageNet-1K acc@1, percent
    published_file_mb: float | None          # size of the published checkpoint, MB
    weights: str                             # which published weights the metadata describes

    def example_inputs(self, batch: int = 1, seed: int = 0) -> torch.Tensor:
        """A random input batch of the model's evaluation shape."""
        if batch < 1:
            raise ValueError(f"batch={batch} must be >= 1")
        g = torch.Generator().manual_seed(seed)
        return torch.randn((batch, *self.input_shape[1:]), generator=g)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "module"}


def zoo_names() -> list[str]:
    """torchvision classification models that have published ImageNet weights metadata."""
    import torchvision
    from torchvision.models import list_models

    return sorted(list_models(module=torchvision.models))


def zoo(name: str, *, seed: int = 0) -> ZooModel:
    """Build torchvision model ``name`` in eval mode with random weights (seeded); no download."""
    from torchvision.models import get_model, get_model_weights

    names = zoo_names()
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5) or names[:8]
        raise ValueError(f"model={name!r} is not a torchvision classifier; did you mean one of {close}?")
    weights = get_model_weights(name).DEFAULT
    meta = weights.meta
    crop = weights.transforms().crop_size[0]
    torch.manual_seed(seed)
    module = get_model(name, weights=None).eval()
    return ZooModel(
        name=name, module=module, input_shape=(1, 3, crop, crop),
        published_params=int(meta["num_params"]),
        published_top1=meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1"),
        published_file_mb=meta.get("_file_size"),
        weights=str(weights),
    )


# ----------------------------------------------------------------------------- reference model and training
#
# The kit's reference classifier: torchvision's ResNet-18 with a one-channel stem and 10 classes,
# trained on the bundled digits (mclab.data) and cached by a hash of its recipe. Introduced in
# notebook 05; the pruning, distillation and low-rank notebooks start from it too.

_CACHE_VERSION = 1  # bump when the training code changes what a recipe produces


@dataclass(frozen=True)
class TrainConfig:
    """How to train on the digits' training split. Every field enters the cache key."""

    epochs: int = 12              # enough for ResNet-18 to converge on 1,078 digits with augmentation
    batch_size: int = 64
    lr: float = 3e-3              # AdamW peak learning rate of a one-cycle schedule
    weight_decay: float = 5e-4
    size: int = 32                # input pixels: 32 keeps ResNet-18 training near a minute on 2 cores
    augment: float = 1.0          # strength of random affine + noise per batch (0 = off)
    label_smoothing: float = 0.05
    seed: int = 0                 # weights init and batch order
    threads: int = 2              # intra-op threads while training: the order of oneDNN's sums, and so the trained
                                  # weights, depend on it; fixed, so what ran before (a runner with 1 thread) cannot
                                  # change the model, and the same recipe gives the same weights on every Python
    progress: bool = True         # tqdm bar (not part of the cache key)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "threads"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r} must be an int >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if self.weight_decay < 0 or self.augment < 0 or not 0 <= self.label_smoothing < 1:
            raise ValueError(f"weight_decay={self.weight_decay} and augment={self.augment} must be >= 0, "
                             f"label_smoothing={self.label_smoothing} in [0, 1)")
        from .data import check_size
        check_size(self.size)

    def key(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "progress"}


@dataclass
class TrainResult:
    """What :func:`train` did: per-epoch mean training loss and validation accuracy (0–1), wall time."""

    config: TrainConfig
    loss: list[float]
    val_accuracy: list[float]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"config": self.config.key(), "loss": self.loss, "val_accuracy": self.val_accuracy,
                "seconds": self.seconds}


@dataclass
class EvalResult:
    """Top-1 accuracy (fraction 0–1) with its 95 % Wilson interval over ``n`` examples.
    ``correct`` holds one bool per example, in order, for paired comparisons between models."""

    accuracy: float
    ci95: tuple[float, float]
    n: int
    correct: "np.ndarray"

    def as_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "ci95": list(self.ci95), "n": self.n}

    def __str__(self) -> str:
        lo, hi = self.ci95
        return f"top-1 {100 * self.accuracy:.2f} % (95% CI {100 * lo:.2f}–{100 * hi:.2f}, n={self.n})"


def resnet18_digits(*, seed: int = 0) -> torch.nn.Module:
    """torchvision ResNet-18 with a 1-channel stem and 10 outputs (random init, seeded)."""
    from torchvision.models import resnet18

    torch.manual_seed(seed)
    m = resnet18(num_classes=10)
    m.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return m


def small_cnn(width: int = 16, *, seed: int = 0) -> torch.nn.Module:
    """A three-block CNN for 1-channel digits (conv-BN-ReLU-pool ×3, global pool, linear):
    about ``90·width²`` parameters (24 k at width 16); a student or a quick model."""
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width={width!r} must be an int >= 1")
    torch.manual_seed(seed)
    chans = (1, width, 2 * width, 4 * width)
    layers: list[nn.Module] = []
    for cin, cout in zip(chans, chans[1:], strict=False):  # consecutive pairs
        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                   nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(chans[-1], 10))


def lenet5(*, seed: int = 0) -> torch.nn.Module:
    """LeNet-5 (two 5×5 convolutions, three linear layers) for 1-channel 32×32 digits."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),           # (B, 6, 14, 14)
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),          # (B, 16, 5, 5)
                         nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))                                         # (B, 10)


ARCHITECTURES: dict[str, Callable[..., Any]] = {"resnet18": resnet18_digits, "small_cnn": small_cnn, "lenet5": lenet5}


class MLPBlock(nn.Module):
    """The feed-forward half of a transformer block: LayerNorm -> Linear(d, 4d) -> GELU -> Linear(4d, d), plus the
    residual. Input (..., d) -> output (..., d). Notebooks 09 (ONNX opsets) and 12 (torch.compile) use it."""

    def __init__(self, d: int = 64) -> None:
        super().__init__()
        if not isinstance(d, int) or d < 1:
            raise ValueError(f"d={d!r} must be a positive int (the model width)")
        self.norm, self.fc1, self.act, self.fc2 = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))  # (..., d)


def train(model: torch.nn.Module, config: TrainConfig | None = None, *,
          loss_fn: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          data: Any = None) -> TrainResult:
    """Train ``model`` in place on the digits' training split (AdamW, one-cycle schedule, seeded
    shuffling and augmentation); validation accuracy after each epoch. ``loss_fn(model, x, y)``
    replaces cross-entropy (distillation passes its own); ``data`` (a :class:`mclab.data.DigitsDataset`
    at ``config.size`` pixels, e.g. a subset of the training split) replaces the training split.
    Returns a :class:`TrainResult`."""
    from tqdm.auto import tqdm

    from .data import DigitsDataset, augment, digits

    cfg = config or TrainConfig()
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(cfg).__name__}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if data is not None and not (isinstance(data, DigitsDataset) and data.size == cfg.size and len(data) > 0):
        raise ValueError(f"data must be a non-empty DigitsDataset at size={cfg.size} (config.size), got {data!r:.80}")
    ds, val = (data if data is not None else digits("train", size=cfg.size)), digits("val", size=cfg.size)
    g = torch.Generator().manual_seed(cfg.seed)
    steps = cfg.epochs * math.ceil(len(ds) / cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    loss_fn = loss_fn or (lambda m, x, y: F.cross_entropy(m(x), y, label_smoothing=cfg.label_smoothing))
    losses, accs = [], []
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        t0 = time.perf_counter()
        bar = tqdm(total=steps, desc=f"train {type(model).__name__}", disable=not cfg.progress, leave=False)
        for _ in range(cfg.epochs):
            model.train()
            order, total = torch.randperm(len(ds), generator=g), 0.0
            for i in range(0, len(ds), cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                x, y = ds.x[idx], ds.y[idx]
                if cfg.augment > 0:
                    x = augment(x, generator=g, strength=cfg.augment)
                loss = loss_fn(model, x, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
                bar.update(1)
            losses.append(total / len(ds))
            accs.append(evaluate(model, val).accuracy)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", val=f"{accs[-1]:.3f}")
        bar.close()
        model.eval()
    finally:
        torch.set_num_threads(before)
    return TrainResult(cfg, losses, accs, time.perf_counter() - t0)


def evaluate(model: Any, data: Any, *, batch_size: int = 256) -> EvalResult:
    """Top-1 accuracy of ``model`` on ``data`` (a :class:`mclab.data.DigitsDataset`, any dataset of
    (x, y) pairs, or a DataLoader). ``model`` is a torch module (run in eval mode without gradients)
    or any callable taking an (N, C, H, W) float tensor and returning logits (tensor or array) —
    e.g. an ONNX Runtime session wrapped in a lambda. Returns an :class:`EvalResult`."""
    import numpy as np

    from .data import loader

    if isinstance(data, torch.utils.data.DataLoader):
        batches = data
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        batches = loader(data, batch_size=batch_size)
    else:
        raise TypeError(f"data must be a dataset of (x, y) pairs or a DataLoader, got {type(data).__name__}")
    if not callable(model):
        raise TypeError(f"model must be a torch module or a callable returning logits, got {type(model).__name__}")
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        model.eval()
    hits = []
    with torch.inference_mode():
        for x, y in batches:
            logits = model(x)
            pred = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits).argmax(1)
            hits.append((pred == y).numpy())
    if was_training:
        model.train()
    correct = np.concatenate(hits) if hits else np.zeros(0, dtype=bool)
    if correct.size == 0:
        raise ValueError("data is empty")
    k = int(correct.sum())
    return EvalResult(k / correct.size, wilson_ci(k, correct.size), int(correct.size), correct)


@dataclass(frozen=True)
class ReferenceSpec:
    """A cached, trained model: which architecture, trained how. ``fast`` variants train briefly."""

    arch: str
    train: TrainConfig

    @property
    def size(self) -> int:
        return self.train.size

    def key(self) -> str:
        return cache.key(arch=self.arch, train=self.train.key(), v=_CACHE_VERSION)

    def path(self) -> Path:
        return cache.cache_dir() / f"{self.arch}-{self.train.size}px-{self.key()}.pt"


def reference_spec(fast: bool = False, arch: str = "resnet18") -> ReferenceSpec:
    """The recipe of the reference model (``fast``: 4 epochs instead of 12)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch={arch!r} is unknown; allowed: {sorted(ARCHITECTURES)}")
    return ReferenceSpec(arch, TrainConfig(epochs=4 if fast else 12))


def reference(fast: bool = False, *, arch: str = "resnet18", progress: bool = True) -> torch.nn.Module:
    """The trained reference classifier for the digits (eval mode, a fresh copy on every call).
    Loaded from the cache (:func:`mclab.cache.cache_dir`); trained and cached first when missing
    (ResNet-18, 12 epochs: about 75 s on 2 quiet cores, several minutes on a busy machine; ``fast``
    about a third of that)."""
    spec = reference_spec(fast, arch)
    model = ARCHITECTURES[arch]()

    def build() -> dict[str, Any]:
        result = train(model, replace(spec.train, progress=progress))
        return {"state_dict": model.state_dict(), "train": result.as_dict()}

    entry = cache.cached(spec.path(), build, save=torch.save,
                         load=partial(torch.load, map_location="cpu", weights_only=True))
    if entry.from_cache:
        model.load_state_dict(entry.value["state_dict"])
    return model.eval()
