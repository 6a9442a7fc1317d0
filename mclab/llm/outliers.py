"""Outlier activation channels, made on purpose, and the two remedies built for them: AWQ and SmoothQuant.

Large language models grow a few residual channels whose activations are tens of times larger than the rest
(Dettmers et al., 2022; Xiao et al., 2023). The kit's small model has hardly any, so this module makes some
without changing what the model computes:

- :func:`add_outliers_` multiplies chosen channels of every block's RMSNorm gains by ``s`` and divides the
  matching input columns of the linear layers that read that norm's output (wq, wk, wv after the attention norm;
  w1, w3 after the MLP norm) by ``s``. ``W (g * s) x = (W / s) (g x) s``-wise the products are unchanged, so the
  logits are the same up to float rounding, but those channels now enter the linear layers ``s`` times larger and
  their weight columns are ``s`` times smaller: group-wise weight rounding (RTN) loses them, and a per-tensor
  activation scale spends its whole grid on them.
- :func:`w8a8` quantises weights (per output channel) *and* activations (one static scale per tensor, from
  calibration) to INT8, optionally after SmoothQuant's migration (Xiao et al., 2023): input channel j is divided
  by ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` and the weight column multiplied by it, moving the difficulty
  from the activations (hard to quantise per tensor) to the weights (easy per channel). Real SmoothQuant folds
  1/s into the preceding norm; here each layer keeps its own ``smooth`` vector so every layer stands alone (as
  :mod:`mclab.llm.quant` keeps AWQ's ``input_scale``).

The arithmetic is :mod:`mclab.quant`'s. Introduced in notebook 13b.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..quant.primitives import QParams, dequantize, qparams, quantize
from .model import ModelCopy, TinyLlama
from .quant import LayerInputs, quant_linears

__all__ = [
    # function-preserving outliers
    "OutlierConfig", "OutlierReport", "add_outliers_", "with_outliers", "largest_channels",
    "channel_salience", "max_logit_difference",
    # W8A8 with and without SmoothQuant
    "W8A8Config", "W8A8Linear", "W8A8Report", "smooth_scales", "w8a8",
]

# which linear layers read which norm's output, per block
_READERS = {"attention_norm": ("attention.wq", "attention.wk", "attention.wv"),
            "ffn_norm": ("feed_forward.w1", "feed_forward.w3")}


# ----------------------------------------------------------------------------- function-preserving outliers


@dataclass(frozen=True)
class OutlierConfig:
    """Which residual channels become outliers, and how large: their normalised activations grow ``scale`` times
    in every block, while the function stays the same."""

    scale: float = 16.0  # s: the chosen channels' activations grow s-fold (the weight columns shrink s-fold)
    channels: int | tuple[int, ...] = 4  # how many channels (picked at random by seed), or which ones
    seed: int = 0  # for picking the channels

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not math.isfinite(self.scale) \
                or self.scale <= 0:
            raise ValueError(f"scale={self.scale!r} must be a finite number > 0 (1 = no change, 16 = 16x outliers)")
        ch = self.channels
        if isinstance(ch, bool) or not isinstance(ch, (int, tuple)):
            raise TypeError(f"channels={ch!r} must be a count (int) or a tuple of channel indices")
        if isinstance(ch, int) and ch < 1:
            raise ValueError(f"channels={ch} must be >= 1")
        if isinstance(ch, tuple) and (not ch or len(set(ch)) != len(ch)
                                      or not all(isinstance(c, int) and c >= 0 for c in ch)):
            raise ValueError(f"channels={ch!r} must be distinct non-negative channel indices")

    def pick(self, dim: int) -> list[int]:
        """The channel indices for a residual width ``dim``."""
        if isinstance(self.channels, int):
            if self.channels > dim:
                raise ValueError(f"channels={self.channels} exceeds the model width dim={dim}")
            g = torch.Generator().manual_seed(self.seed)
            return sorted(torch.randperm(dim, generator=g)[: self.channels].tolist())
        if max(self.channels) >= dim:
            raise ValueError(f"channels={self.channels!r}: indices must be < the model width dim={dim}")
        return sorted(self.channels)


@dataclass
class OutlierReport:
    """What :func:`add_outliers_` changed: the channels, the factor, the norms scaled and the linears compensated."""

    channels: list[int]
    scale: float
    norms: list[str]
    linears: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, TinyLlama):
        raise TypeError(f"model must be a mclab.llm.TinyLlama, got {type(model).__name__}")


@torch.no_grad()
def add_outliers_(model: TinyLlama, config: OutlierConfig) -> OutlierReport:
    """In place: multiply the chosen channels of every block's two RMSNorm gains by ``config.scale`` and divide the
    same input columns of the linears reading them by it. The logits stay the same up to float rounding; returns an
    :class:`OutlierReport`."""
    _check_model(model)
    if not isinstance(config, OutlierConfig):
        raise TypeError(f"config must be an OutlierConfig, got {type(config).__name__}")
    idx = torch.tensor(config.pick(model.config.dim))
    norms, linears = [], []
    for i, block in enumerate(model.layers):
        for norm_name, readers in _READERS.items():
            getattr(block, norm_name).weight[idx] *= config.scale  # (dim,): the chosen channels grow s-fold
            norms.append(f"layers.{i}.{norm_name}")
            for r in readers:
                block.get_submodule(r).weight[:, idx] /= config.scale  # (out, dim): their columns shrink s-fold
                linears.append(f"layers.{i}.{r}")
    return OutlierReport(channels=idx.tolist(), scale=float(config.scale), norms=norms, linears=linears)


def with_outliers(model: TinyLlama, config: OutlierConfig) -> ModelCopy:
    """A deep copy of ``model`` with :func:`add_outliers_` applied (the original is untouched): an
    :class:`~mclab.llm.model.ModelCopy` (``.model``, ``.report``)."""
    _check_model(model)
    m = copy.deepcopy(model)
    return ModelCopy(m, add_outliers_(m, config))


def largest_channels(inputs: LayerInputs, n: int) -> tuple[int, ...]:
    """The ``n`` residual channels whose normalised activations are largest on average (mean |x| over the
    calibration tokens, averaged over every block's wq and w1 inputs): where large models grow their outliers
    (Dettmers et al., 2022), and the channels whose loss costs most. Pass them as ``OutlierConfig(channels=...)``."""
    if not isinstance(inputs, LayerInputs):
        raise TypeError(f"inputs must be LayerInputs from capture_inputs, got {type(inputs).__name__}")
    readers = [x for k, x in inputs.inputs.items() if k.endswith(("attention.wq", "feed_forward.w1"))]
    if not readers:
        raise ValueError("inputs hold no wq or w1 layer; capture them with capture_inputs(model, tokens)")
    dim = readers[0].shape[1]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= dim:
        raise ValueError(f"n={n!r} must be an int between 1 and the model width {dim}")
    mean = torch.stack([x.abs().mean(0) for x in readers]).mean(0)  # (dim,)
    return tuple(sorted(mean.topk(n).indices.tolist()))


def channel_salience(inputs: LayerInputs) -> dict[str, float]:
    """Per linear layer: largest / median over input channels of mean |activation| (1 = no outliers; large models
    show tens). From :func:`mclab.llm.capture_inputs`."""
    if not isinstance(inputs, LayerInputs):
        raise TypeError(f"inputs must be LayerInputs from capture_inputs, got {type(inputs).__name__}")
    out = {}
    for k, x in inputs.inputs.items():
        m = x.abs().mean(0)
        out[k] = float(m.max() / m.median().clamp(min=1e-12))
    return out


@torch.inference_mode()
def max_logit_difference(a: nn.Module, b: nn.Module, tokens) -> float:
    """max |a(tokens) - b(tokens)| over every position and vocabulary entry (float32 logits); ``tokens`` is a
    (B, T) or (T,) tensor of token ids."""
    t = torch.as_tensor(tokens, dtype=torch.int64)
    t = t.reshape(1, -1) if t.dim() == 1 else t
    return float((a(t).float() - b(t).float()).abs().max())


# ----------------------------------------------------------------------------- W8A8 and SmoothQuant


@dataclass(frozen=True)
class W8A8Config:
    """INT8 weights (symmetric, per output channel) and INT8 activations (symmetric, one static scale per tensor
    from calibration), with SmoothQuant's migration of strength ``alpha`` or none (``alpha=None``: naive W8A8)."""

    alpha: float | None = 0.5  # SmoothQuant's migration strength in [0, 1]; None = no migration (naive W8A8)

    def __post_init__(self) -> None:
        if self.alpha is not None and (isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float))
                                       or not 0 <= self.alpha <= 1):
            raise ValueError(f"alpha={self.alpha!r} must be None (naive W8A8) or a number in [0, 1]")

    @property
    def label(self) -> str:
        return "W8A8 naive" if self.alpha is None else f"W8A8 SmoothQuant a={self.alpha:g}"


def smooth_scales(x_absmax: torch.Tensor, w: torch.Tensor, alpha: float) -> torch.Tensor:
    """SmoothQuant's per-input-channel factors s_j = max|X_j|^alpha / max|W_j|^(1 - alpha) (in,), from the
    calibration absmax of each input channel ``x_absmax`` (in,) and the weight ``w`` (out, in)."""
    if x_absmax.dim() != 1 or w.dim() != 2 or w.shape[1] != x_absmax.numel():
        raise ValueError(f"x_absmax must be (in,) and w (out, in); got {tuple(x_absmax.shape)} and {tuple(w.shape)}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha={alpha} must be in [0, 1]")
    w_absmax = w.abs().amax(0).clamp(min=1e-5)
    return (x_absmax.clamp(min=1e-5).pow(alpha) / w_absmax.pow(1 - alpha)).clamp(min=1e-5)


class W8A8Linear(nn.Module):
    """A bias-free linear layer computing with INT8 weights and INT8 activations:
    ``y = dequantize(quantize(x / smooth, act)) @ dequantize(W_q).T``. Buffers: ``qweight`` int8 (out, in),
    ``w_scale`` (out,), ``act_scale`` (a 0-d static per-tensor scale) and ``smooth`` (in,) or None. The integer
    products are simulated in float (exact for these sizes); the point is the rounding, not the kernel."""

    def __init__(self, weight: torch.Tensor, act_absmax: float, smooth: torch.Tensor | None = None) -> None:
        super().__init__()
        w = weight.detach().float()
        if smooth is not None:
            w = w * smooth  # (out, in): the column grows as its input shrinks
        wqp = qparams(w, bits=8, symmetric=True, axis=0)
        self.register_buffer("qweight", quantize(w, wqp))
        self.register_buffer("w_scale", wqp.scale)
        self.register_buffer("act_scale", qparams(torch.tensor([-act_absmax, act_absmax]), bits=8,
                                                  symmetric=True).scale)
        self.register_buffer("smooth", smooth)

    def _act_qp(self) -> QParams:
        return QParams(self.act_scale, torch.zeros((), dtype=torch.int64), 8, signed=True, symmetric=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.smooth is not None:
            x = x / self.smooth
        qp = self._act_qp()
        xq = dequantize(quantize(x, qp), qp)  # per-tensor INT8: one grid for every channel and token
        wqp = QParams(self.w_scale, torch.zeros_like(self.w_scale, dtype=torch.int64), 8, signed=True,
                      symmetric=True, axis=0)
        return F.linear(xq.to(x.dtype), dequantize(self.qweight, wqp).to(x.dtype))


@dataclass
class W8A8Report:
    """What :func:`w8a8` did: the config's label, layers replaced, and per layer the calibration activation
    absmax after migration (a large one is what per-tensor INT8 cannot resolve)."""

    label: str
    alpha: float | None
    layers: int
    act_absmax: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def w8a8(model: TinyLlama, config: W8A8Config, inputs: LayerInputs) -> ModelCopy:
    """A copy of ``model`` whose block linears are :class:`W8A8Linear` (static per-tensor activation scales from
    ``inputs``, :func:`mclab.llm.capture_inputs` on the float model), with SmoothQuant's migration when
    ``config.alpha`` is a number; returns a :class:`~mclab.llm.model.ModelCopy` (``.model``, ``.report``)."""
    _check_model(model)
    if not isinstance(config, W8A8Config):
        raise TypeError(f"config must be a W8A8Config, got {type(config).__name__}")
    if not isinstance(inputs, LayerInputs):
        raise TypeError(f"inputs must be LayerInputs from capture_inputs, got {type(inputs).__name__}")
    m = copy.deepcopy(model)
    absmax: dict[str, float] = {}
    linears = quant_linears(m)
    missing = sorted(set(linears) - set(inputs.inputs))
    if missing:
        raise ValueError(f"inputs lack layers {missing}; capture them from this model with capture_inputs")
    for name, lin in linears.items():
        x = inputs.inputs[name]  # (n, in)
        smooth = None if config.alpha is None else smooth_scales(x.abs().amax(0), lin.weight.float(), config.alpha)
        xs = x if smooth is None else x / smooth
        absmax[name] = float(xs.abs().max())
        parent, _, attr = name.rpartition(".")
        setattr(m.get_submodule(parent), attr, W8A8Linear(lin.weight, absmax[name], smooth))
    return ModelCopy(m, W8A8Report(label=config.label, alpha=config.alpha, layers=len(linears), act_absmax=absmax))
