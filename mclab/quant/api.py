"""Model-level quantisation: the verbs on ``torch.nn.Module`` and ONNX files, built on :mod:`mclab.quant.primitives`.

- Weight-only: :func:`quantize_weights_` replaces every Conv2d / Linear weight by its quantised-dequantised
  value at any width (:class:`WeightOnlyConfig`) and reports the SQNR per layer.
- PTQ of an ONNX file lives with its runtime (:mod:`mclab.runtimes.onnxrt`: ``calibrate`` -> ``quantize_static``),
  as OpenVINO's NNCF and ExecuTorch's PT2E builders live with theirs: this package is pure PyTorch.
- QAT: :func:`fold_batchnorm`, :func:`fake_quant_model` and :func:`qat` (straight-through fake quantisation).

Introduced in notebook 05.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..cache import cache_dir, cached
from ..cache import key as cache_key
from .primitives import METHODS, _check_bits, dequantize, fake_quantize, qparams, qparams_from_range, quantize, sqnr_db

__all__ = [
    # weight-only
    "WeightOnlyConfig", "WeightReport", "quantize_weights_", "quantizable_layers",
    # QAT
    "QATConfig", "QATResult", "fold_batchnorm", "fake_quant_model", "qat",
]



# ----------------------------------------------------------------------------- model level: weight-only


def quantizable_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The layers weight quantisation acts on: every Conv2d and Linear of ``model``, by module name, in order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}


@dataclass(frozen=True)
class WeightOnlyConfig:
    """Weight-only quantisation of every Conv2d / Linear weight (biases and activations stay float): the weights
    are replaced by their fake-quantised values at any width from 2 to 16 bits, per tensor, channel or group.

    It measures what a width and a range method do to a CNN (notebook 05). The LLM's packed format is its
    sibling :class:`mclab.llm.LLMQuantConfig`: INT4/INT8 group-wise integers really stored packed, chosen by
    RTN, AWQ or GPTQ; both take their scales from :func:`mclab.quant.qparams` (or ``qparams_from_range``)."""

    bits: int = 8                   # 2..16
    symmetric: bool = True          # weights are centred on 0; symmetric grids keep kernels simple
    per_channel: bool = True        # one scale per output channel (axis 0); False: one per tensor
    group_size: int | None = None   # per group of input channels (axis 1), e.g. 32; layers it does not divide
                                    # stay per channel
    method: str = "minmax"          # range: "minmax" | "percentile" | "mse"

    def __post_init__(self) -> None:
        _check_bits(self.bits)
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is unknown; allowed: {METHODS}")
        if self.group_size is not None and (not isinstance(self.group_size, int) or self.group_size < 1):
            raise ValueError(f"group_size={self.group_size!r} must be a positive int or None")


@dataclass
class WeightReport:
    """Per-layer SQNR (dB) of the quantised weights, and their storage at ``bits`` (scales included)."""

    config: WeightOnlyConfig
    sqnr_db: dict[str, float]
    weight_bytes: int               # integer weights + one float32 scale (and zero point) per slot
    fp32_weight_bytes: int

    @property
    def min_sqnr_db(self) -> float:
        return min(self.sqnr_db.values())

    def as_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "sqnr_db": self.sqnr_db, "min_sqnr_db": self.min_sqnr_db,
                "weight_bytes": self.weight_bytes, "fp32_weight_bytes": self.fp32_weight_bytes}


def quantize_weights_(model: torch.nn.Module, config: WeightOnlyConfig | None = None) -> WeightReport:
    """Replace every Conv2d / Linear weight of ``model`` in place by its quantised-dequantised value
    (what a weight-only INT8/INT4 kernel computes with); returns a :class:`WeightReport`."""
    cfg = config or WeightOnlyConfig()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    sq, nbytes, fp32 = {}, 0, 0
    with torch.no_grad():
        for name, mod in quantizable_layers(model).items():
            w = mod.weight
            if cfg.group_size is not None and w.shape[1] % cfg.group_size == 0:
                qp = qparams(w, cfg.bits, cfg.symmetric, axis=1, group_size=cfg.group_size, method=cfg.method)
            else:
                qp = qparams(w, cfg.bits, cfg.symmetric, axis=0 if cfg.per_channel else None, method=cfg.method)
            w_hat = dequantize(quantize(w, qp), qp)
            sq[name] = sqnr_db(w, w_hat)
            w.copy_(w_hat)
            nbytes += math.ceil(w.numel() * cfg.bits / 8) + qp.scale.numel() * (4 if cfg.symmetric else 5)
            fp32 += 4 * w.numel()
    return WeightReport(cfg, sq, nbytes, fp32)


# ----------------------------------------------------------------------------- model level: QAT


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` (eval mode) with every Conv→BatchNorm pair folded into one Conv, as the ONNX
    export and INT8 kernels see it — so QAT quantises the weights that will really be deployed."""
    import copy

    from torch.fx.experimental.optimization import fuse

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return fuse(copy.deepcopy(model).eval(), inplace=True)


class _QATLayer(torch.nn.Module):
    """Wraps a Conv2d / Linear: fake-quantised input (per tensor, asymmetric, EMA min-max range) and
    weights (per output channel, symmetric narrow range — ONNX Runtime's INT8 weight grid)."""

    def __init__(self, inner: torch.nn.Module, bits: int, momentum: float) -> None:
        super().__init__()
        self.inner, self.bits, self.momentum = inner, bits, momentum
        self.register_buffer("lo", torch.tensor(math.inf))
        self.register_buffer("hi", torch.tensor(-math.inf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not bool(torch.isfinite(self.lo)):
            lo, hi = torch.aminmax(x.detach())
            first = not bool(torch.isfinite(self.lo))
            self.lo.copy_(lo if first else self.lo + self.momentum * (lo - self.lo))
            self.hi.copy_(hi if first else self.hi + self.momentum * (hi - self.hi))
        xq = fake_quantize(x, qparams_from_range(self.lo, self.hi, bits=self.bits))
        w = self.inner.weight
        wq = fake_quantize(w, qparams(w.detach(), self.bits, symmetric=True, axis=0, narrow=True))
        if isinstance(self.inner, torch.nn.Linear):
            return F.linear(xq, wq, self.inner.bias)
        c = self.inner
        return F.conv2d(xq, wq, c.bias, c.stride, c.padding, c.dilation, c.groups)


@dataclass(frozen=True)
class QATConfig:
    """Quantisation-aware fine-tuning: a short, low-learning-rate run with fake quantisation in the loop."""

    epochs: int = 2                 # a few epochs suffice: the float model is already trained
    lr: float = 5e-5                # peak learning rate, 1/60 of the reference training's 3e-3 (2e-4 measured
                                    # 2 points lower on the fast reference model: fine-tuning must nudge the
                                    # weights, not retrain)
    bits: int = 8                   # weights and activations
    momentum: float = 0.05          # EMA of the activation ranges
    seed: int = 0

    def __post_init__(self) -> None:
        _check_bits(self.bits)
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs={self.epochs!r} must be an int >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if not 0 < self.momentum <= 1:
            raise ValueError(f"momentum={self.momentum} must be in (0, 1]")


@dataclass
class QATResult:
    """The fine-tuned model with fake quantisation (``fake``: evaluate it to see simulated accuracy) and
    the same weights as a plain float model without BatchNorm (``float``: export it, then quantise)."""

    fake: torch.nn.Module
    float: torch.nn.Module
    loss: list[float]
    val_accuracy: list[float]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "val_accuracy": self.val_accuracy, "seconds": self.seconds}


def fake_quant_model(model: torch.nn.Module, bits: int = 8, *, momentum: float = 0.05,
                     calibration: Sequence[Any] = ()) -> torch.nn.Module:
    """A copy of ``model`` with BatchNorm folded and every Conv2d / Linear wrapped by fake quantisation
    (inputs per tensor with running ranges, weights per channel); ranges are first observed on the
    ``calibration`` batches. Evaluating it simulates INT8 (or ``bits``) PTQ; training it is QAT."""
    _check_bits(bits)
    fused = fold_batchnorm(model)
    for name, mod in list(quantizable_layers(fused).items()):
        parent, _, leaf = name.rpartition(".")
        setattr(fused.get_submodule(parent) if parent else fused, leaf, _QATLayer(mod, bits, momentum))
    fused.train()
    with torch.no_grad():
        for x in calibration:
            fused(torch.as_tensor(x))
    return fused.eval()


def _unwrap(fake: torch.nn.Module) -> torch.nn.Module:
    import copy

    plain = copy.deepcopy(fake)
    for name, mod in list(plain.named_modules()):
        if isinstance(mod, _QATLayer):
            parent, _, leaf = name.rpartition(".")
            setattr(plain.get_submodule(parent) if parent else plain, leaf, mod.inner)
    return plain.eval()


def qat(model: torch.nn.Module, config: QATConfig | None = None, *, size: int = 32, progress: bool = False,
        cache: str | None = None) -> QATResult:
    """Quantisation-aware training on the digits: :func:`fake_quant_model` (BatchNorm folded, fake
    quantisation with straight-through gradients), fine-tuned with :func:`mclab.models.train`. ``model``
    is not changed. ``cache`` (a name, e.g. the reference model's cache key) stores the result in
    :func:`mclab.cache.cache_dir` and reuses it. Returns a :class:`QATResult`. Introduced in notebook 05."""
    import time

    from ..data import calibration_batches
    from ..models import TrainConfig, train

    cfg = config or QATConfig()
    if not isinstance(cfg, QATConfig):
        raise TypeError(f"config must be a QATConfig, got {type(cfg).__name__}")

    def build() -> dict[str, Any]:
        fake = fake_quant_model(model, cfg.bits, momentum=cfg.momentum,
                                calibration=calibration_batches(4, batch_size=64, size=size, seed=cfg.seed))
        t0 = time.perf_counter()
        res = train(fake, TrainConfig(epochs=cfg.epochs, lr=cfg.lr, size=size, seed=cfg.seed, progress=progress,
                                      weight_decay=0.0))
        return {"fake": fake, "loss": res.loss, "val_accuracy": res.val_accuracy, "seconds": time.perf_counter() - t0}

    if cache is None:
        got = build()
    else:  # the saved state holds the trained weights and the activation ranges
        def save(got: dict[str, Any], path: Path) -> None:
            torch.save({"state_dict": got["fake"].state_dict(), "loss": got["loss"],
                        "val_accuracy": got["val_accuracy"]}, path)

        def load(path: Path) -> dict[str, Any]:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            fake = fake_quant_model(model, cfg.bits, momentum=cfg.momentum)
            fake.load_state_dict(saved["state_dict"])
            return {"fake": fake, "loss": saved["loss"], "val_accuracy": saved["val_accuracy"], "seconds": 0.0}

        path = cache_dir() / f"qat-{cache_key(m=cache, cfg=asdict(cfg), size=size)}.pt"
        got = cached(path, build, save=save, load=load).value
    fake = got["fake"]
    return QATResult(fake.eval(), _unwrap(fake), got["loss"], got["val_accuracy"], got["seconds"])
