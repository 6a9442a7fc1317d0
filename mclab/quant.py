"""Quantisation: the arithmetic from scratch, then model-level INT8 that really runs.

Bottom layer — pure tensor primitives, each a few lines you can read:

- :func:`qparams` finds a range (min-max, percentile or MSE-optimal) per tensor, per channel or
  per group and turns it into a :class:`QParams` (scale, zero point, integer range). At 8 bits the
  scale and zero point are exactly those of ``torch.ao.quantization.MinMaxObserver`` /
  ``PerChannelMinMaxObserver``; :func:`quantize` gives exactly the integers of
  ``torch.quantize_per_tensor`` / ``torch.quantize_per_channel`` (x times the float32 reciprocal of
  the scale, rounded half to even).
- :func:`dequantize`, :func:`fake_quantize` (straight-through gradient, zero where clipped),
  :func:`error` (MSE, max error, SQNR in dB), :func:`kmeans` (codebook quantisation) and
  :func:`int_linear` (int8 × int8 → int32 accumulate → fixed-point requantise, no floats).

Top layer — model-level verbs on ``torch.nn.Module`` (notebook 05): weight-only fake quantisation,
dynamic and static INT8 through ONNX Runtime (``quantize_static`` with ranges calibrated here), the
same QDQ model on OpenVINO, and quantisation-aware training. Introduced in notebook 04.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import torch

__all__ = [
    # parameters and primitives
    "QParams", "METHODS", "qparams", "qparams_from_range", "observe_range", "quantize", "dequantize", "fake_quantize",
    # error and alternatives
    "QuantError", "error", "sqnr_db", "sqnr_by_bits", "Codebook", "kmeans",
    # integer-only arithmetic
    "quantize_multiplier", "requantize", "int_linear",
    # model level: weight-only, ONNX Runtime / OpenVINO INT8, QAT
    "WeightOnlyConfig", "WeightReport", "quantize_weights_", "Calibration", "calibrate", "prepare_onnx",
    "quantize_static", "quantize_dynamic", "batched", "int8_op_counts", "QATConfig", "QATResult", "fold_batchnorm", "fake_quant_model", "qat",
]

METHODS = ("minmax", "percentile", "mse")
_EPS = 1.1920928955078125e-07  # torch.finfo(torch.float32).eps: the observers' smallest scale
_MSE_SAMPLE = 16_384  # values per activation tensor the MSE range search looks at (seeded sample)


# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class QParams:
    """How real numbers map onto a ``bits``-wide integer grid: ``q = clamp(round(x / scale) + zero_point)``.

    ``scale`` (float32) and ``zero_point`` (int64) are 0-d per tensor, ``(C,)`` per channel along
    ``axis``, and the tensor's shape with ``axis`` divided by ``group_size`` per group.
    """

    scale: "torch.Tensor"
    zero_point: "torch.Tensor"
    bits: int = 8
    signed: bool = False
    symmetric: bool = False
    axis: int | None = None          # channel axis (per channel) or the axis split into groups (per group)
    group_size: int | None = None    # consecutive elements along ``axis`` sharing one scale
    narrow: bool = False             # signed symmetric grid without its lowest code (int8: -127..127, as ONNX Runtime's weights)

    def __post_init__(self) -> None:
        import torch

        _check_bits(self.bits)
        if not isinstance(self.scale, torch.Tensor) or not isinstance(self.zero_point, torch.Tensor):
            raise TypeError("scale and zero_point must be torch tensors")
        if self.scale.shape != self.zero_point.shape:
            raise ValueError(f"scale shape {tuple(self.scale.shape)} and zero_point shape "
                             f"{tuple(self.zero_point.shape)} must match")
        if not bool(torch.isfinite(self.scale).all()) or not bool((self.scale > 0).all()):
            raise ValueError(f"scale must be finite and > 0; got min {float(self.scale.min()):g}")
        zmin, zmax = int(self.zero_point.min()), int(self.zero_point.max())
        if zmin < self.qmin or zmax > self.qmax:
            raise ValueError(f"zero_point range [{zmin}, {zmax}] lies outside the {self.bits}-bit "
                             f"{'signed' if self.signed else 'unsigned'} integer range [{self.qmin}, {self.qmax}]")
        if self.narrow and not (self.signed and self.symmetric):
            raise ValueError("narrow=True needs a signed symmetric grid")
        if self.group_size is not None and self.axis is None:
            raise ValueError("group_size needs the axis it splits")

    @property
    def qmin(self) -> int:
        lo = -(1 << (self.bits - 1)) if self.signed else 0
        return lo + 1 if self.narrow else lo

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def granularity(self) -> str:
        return "per-tensor" if self.axis is None else ("per-group" if self.group_size else "per-channel")

    def as_dict(self) -> dict[str, Any]:
        return {"bits": self.bits, "signed": self.signed, "symmetric": self.symmetric, "narrow": self.narrow,
                "axis": self.axis, "group_size": self.group_size, "qmin": self.qmin, "qmax": self.qmax,
                "granularity": self.granularity, "scale": self.scale.tolist(), "zero_point": self.zero_point.tolist()}


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 16:
        raise ValueError(f"bits={bits!r} is not allowed; allowed: an int from 2 to 16")


def _check_tensor(x: Any, name: str = "x") -> "torch.Tensor":
    import torch

    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty")
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{name} contains NaN; quantisation needs finite values (check the data or the model)")
    return x


def _check_axis(x: "torch.Tensor", axis: int | None, group_size: int | None) -> int | None:
    if axis is None:
        if group_size is not None:
            axis = x.dim() - 1  # groups run along the last axis unless told otherwise
        else:
            return None
    if not isinstance(axis, int) or not -x.dim() <= axis < x.dim():
        raise ValueError(f"axis={axis!r} does not exist in a tensor of shape {tuple(x.shape)}; "
                         f"allowed: {-x.dim()} to {x.dim() - 1}")
    axis %= x.dim()
    if group_size is not None:
        if not isinstance(group_size, int) or group_size < 1 or x.shape[axis] % group_size:
            raise ValueError(f"group_size={group_size!r} does not divide dimension {axis} of size {x.shape[axis]}; "
                             f"allowed: a positive divisor of {x.shape[axis]}")
    return axis


def _slots(x: "torch.Tensor", axis: int | None, group_size: int | None) -> "torch.Tensor":
    """``x`` as (slots, elements): one row per scale (1 row per tensor, C per channel, … per group)."""
    if axis is None:
        return x.reshape(1, -1)
    if group_size is None:
        return x.movedim(axis, 0).reshape(x.shape[axis], -1)
    shape = (*x.shape[:axis], x.shape[axis] // group_size, group_size, *x.shape[axis + 1:])
    return x.reshape(shape).movedim(axis + 1, -1).reshape(-1, group_size)


def _param_shape(x: "torch.Tensor", axis: int | None, group_size: int | None) -> tuple[int, ...]:
    if axis is None:
        return ()
    if group_size is None:
        return (x.shape[axis],)
    return (*x.shape[:axis], x.shape[axis] // group_size, *x.shape[axis + 1:])


def _broadcast(t: "torch.Tensor", x: "torch.Tensor", qp: QParams) -> "torch.Tensor":
    """``t`` (a scale or zero point) shaped to broadcast against ``x``."""
    if qp.axis is None:
        return t
    if qp.group_size is None:
        shape = [1] * x.dim()
        shape[qp.axis] = -1
        return t.reshape(shape)
    t = t.unsqueeze(qp.axis + 1)  # (..., G, 1, ...) against x viewed as (..., G, group_size, ...)
    return t


def _grouped(x: "torch.Tensor", qp: QParams) -> "torch.Tensor":
    if qp.group_size is None:
        return x
    a = qp.axis
    return x.reshape(*x.shape[:a], x.shape[a] // qp.group_size, qp.group_size, *x.shape[a + 1:])


def observe_range(x: "torch.Tensor", *, axis: int | None = None, group_size: int | None = None,
                  method: str = "minmax", percentile: float = 99.99) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(min, max) of ``x`` per slot (float32, shape of the scale): the plain extremes (``"minmax"``),
    the ``percentile`` and ``100 - percentile`` percentiles (``"percentile"``: outliers clipped).
    ``"mse"`` ranges depend on the grid, so :func:`qparams` searches them."""
    import numpy as np
    import torch

    _check_tensor(x)
    axis = _check_axis(x, axis, group_size)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is unknown; allowed: {METHODS}")
    rows = _slots(x.detach().float(), axis, group_size)
    shape = _param_shape(x, axis, group_size)
    if method == "percentile":
        if not 50 < percentile <= 100:
            raise ValueError(f"percentile={percentile} must be in (50, 100]")
        lo, hi = np.percentile(rows.numpy(), [100 - percentile, percentile], axis=1)
        return torch.from_numpy(lo).float().reshape(shape), torch.from_numpy(hi).float().reshape(shape)
    lo, hi = torch.aminmax(rows, dim=1)
    return lo.reshape(shape), hi.reshape(shape)


def qparams_from_range(lo: "torch.Tensor", hi: "torch.Tensor", *, bits: int = 8, symmetric: bool = False,
                       signed: bool | None = None, axis: int | None = None, group_size: int | None = None,
                       narrow: bool = False) -> QParams:
    """Scale and zero point for the range [lo, hi], by the formula of PyTorch's observers.

    The range is first widened to include 0 (so 0.0 is exact: zero padding stays zero). Affine:
    ``scale = (hi - lo) / (qmax - qmin)``, ``zero_point = qmin - round(lo / scale)``. Symmetric:
    ``scale = max(|lo|, hi) / ((qmax - qmin) / 2)`` with the zero point in the middle of the grid
    (0 when signed). ``signed`` defaults to symmetric (int8 weights, uint8 activations)."""
    import torch

    _check_bits(bits)
    signed = symmetric if signed is None else bool(signed)
    proto = QParams(torch.ones(()), torch.zeros((), dtype=torch.int64), bits, signed, symmetric, None, None, narrow)
    qmin, qmax = proto.qmin, proto.qmax
    lo = torch.as_tensor(lo, dtype=torch.float32)
    hi = torch.as_tensor(hi, dtype=torch.float32)
    if lo.shape != hi.shape or bool((lo > hi).any()):
        raise ValueError("lo and hi must have one shape and lo <= hi everywhere")
    lo, hi = torch.minimum(lo, torch.zeros_like(lo)), torch.maximum(hi, torch.zeros_like(hi))
    eps = torch.tensor(_EPS)
    if symmetric:
        scale = torch.maximum(torch.maximum(-lo, hi) / (float(qmax - qmin) / 2), eps)
        mid = 0 if signed else (1 << (bits - 1))
        zp = torch.full(lo.shape, mid, dtype=torch.int64)
    else:
        scale = torch.maximum((hi - lo) / float(qmax - qmin), eps)
        zp = torch.clamp(qmin - torch.round(lo / scale).to(torch.int64), qmin, qmax)
    return QParams(scale, zp, bits, signed, symmetric, axis, group_size, narrow)


def qparams(x: "torch.Tensor", bits: int = 8, symmetric: bool = False, signed: bool | None = None,
            axis: int | None = None, group_size: int | None = None, *, method: str = "minmax",
            percentile: float = 99.99, narrow: bool = False, grid: int = 64) -> QParams:
    """Quantisation parameters for ``x``: per tensor (``axis=None``), per channel along ``axis``, or per
    group of ``group_size`` consecutive elements along ``axis`` (default the last). ``method``:
    ``"minmax"`` (exact match with PyTorch's MinMax observers), ``"percentile"`` (clip the tails), or
    ``"mse"`` (try ``grid`` clipping ratios of the min-max range per slot; keep the one with the lowest
    squared error). Returns :class:`QParams`. Introduced in notebook 04."""
    import torch

    _check_bits(bits)
    _check_tensor(x)
    axis = _check_axis(x, axis, group_size)
    kw = dict(bits=bits, symmetric=symmetric, signed=signed, axis=axis, group_size=group_size, narrow=narrow)
    if method != "mse":
        lo, hi = observe_range(x, axis=axis, group_size=group_size, method=method, percentile=percentile)
        return qparams_from_range(lo, hi, **kw)
    if not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid={grid!r} must be an int >= 2")
    lo, hi = observe_range(x, axis=axis, group_size=group_size)
    rows = _slots(x.detach().float(), axis, group_size)                  # (S, n)
    best_err = torch.full((rows.shape[0],), math.inf)
    best_lo, best_hi = lo.clone().reshape(-1), hi.clone().reshape(-1)
    for r in torch.linspace(1.0, 1.0 / grid, grid).tolist():             # clip ratio: 1 = min-max
        qp = qparams_from_range((lo * r).reshape(-1), (hi * r).reshape(-1), **{**kw, "axis": 0, "group_size": None})
        err = ((dequantize(quantize(rows, qp), qp) - rows) ** 2).mean(1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_lo = torch.where(better, lo.reshape(-1) * r, best_lo)
        best_hi = torch.where(better, hi.reshape(-1) * r, best_hi)
    return qparams_from_range(best_lo.reshape(lo.shape), best_hi.reshape(hi.shape), **kw)


# ----------------------------------------------------------------------------- quantise / dequantise


def _int_dtype(qp: QParams) -> "torch.dtype":
    import torch

    if qp.bits <= 8:
        return torch.int8 if qp.signed else torch.uint8
    return torch.int16 if qp.signed else torch.int32


def _check_fits(x: "torch.Tensor", qp: QParams) -> None:
    if not isinstance(qp, QParams):
        raise TypeError(f"qp must be a QParams, got {type(qp).__name__}")
    if qp.axis is not None and qp.axis >= x.dim():
        raise ValueError(f"qp.axis={qp.axis} does not exist in a tensor of shape {tuple(x.shape)}")
    if qp.axis is not None and qp.group_size is None and qp.scale.numel() != x.shape[qp.axis]:
        raise ValueError(f"qp has {qp.scale.numel()} channels but x has {x.shape[qp.axis]} along axis {qp.axis}")
    if qp.group_size is not None:
        _check_axis(x, qp.axis, qp.group_size)
        if tuple(qp.scale.shape) != _param_shape(x, qp.axis, qp.group_size):
            raise ValueError(f"qp holds scales of shape {tuple(qp.scale.shape)}; x of shape {tuple(x.shape)} "
                             f"needs {_param_shape(x, qp.axis, qp.group_size)}")


def quantize(x: "torch.Tensor", qp: QParams) -> "torch.Tensor":
    """Integers ``clamp(round(x · (1/scale)) + zero_point, qmin, qmax)`` (half to even), as int8/uint8
    for ≤ 8 bits, else int16/int32. Bit-exact with ``torch.quantize_per_tensor`` / ``_per_channel``."""
    import torch

    _check_tensor(x)
    _check_fits(x, qp)
    xg = _grouped(x.float(), qp)
    inv = 1.0 / _broadcast(qp.scale.float(), xg, qp)
    q = torch.round(xg * inv) + _broadcast(qp.zero_point, xg, qp)
    return q.clamp_(qp.qmin, qp.qmax).to(_int_dtype(qp)).reshape(x.shape)


def dequantize(q: "torch.Tensor", qp: QParams) -> "torch.Tensor":
    """Real values ``(q - zero_point) · scale`` as float32, same shape as ``q``."""
    _check_fits(q, qp)
    qg = _grouped(q, qp).long()
    return ((qg - _broadcast(qp.zero_point, qg, qp)).float() * _broadcast(qp.scale.float(), qg, qp)).reshape(q.shape)


def fake_quantize(x: "torch.Tensor", qp: QParams) -> "torch.Tensor":
    """``dequantize(quantize(x))`` in float, differentiable with the straight-through estimator: the
    gradient passes unchanged where ``x`` lies inside the grid's range and is zero where it was clipped
    (as ``torch.fake_quantize_per_tensor_affine``). Used for quantisation-aware training."""
    import torch

    _check_tensor(x)
    _check_fits(x, qp)
    xg = _grouped(x, qp)
    s = _broadcast(qp.scale.to(x.dtype), xg, qp)
    z = _broadcast(qp.zero_point, xg, qp)
    with torch.no_grad():
        r = torch.round(xg * (1.0 / s)) + z
        inside = (r >= qp.qmin) & (r <= qp.qmax)
        out = (r.clamp(qp.qmin, qp.qmax) - z) * s
    return (out + (xg - xg.detach()) * inside).reshape(x.shape)


# ----------------------------------------------------------------------------- error metrics


@dataclass
class QuantError:
    """How far a reconstruction is from the original: mean squared error, largest absolute error
    (units of x), and signal-to-quantisation-noise ratio in dB (≈ 6.02 dB per bit for a uniform grid)."""

    mse: float
    max_abs: float
    sqnr_db: float

    def as_dict(self) -> dict[str, Any]:
        return {"mse": self.mse, "max_abs": self.max_abs, "sqnr_db": self.sqnr_db}


def sqnr_db(x: "torch.Tensor", x_hat: "torch.Tensor") -> float:
    """10·log10(Σx² / Σ(x - x̂)²) in dB; ``inf`` when the reconstruction is exact."""
    x, x_hat = x.detach().double(), x_hat.detach().double()
    if x.shape != x_hat.shape:
        raise ValueError(f"x {tuple(x.shape)} and x_hat {tuple(x_hat.shape)} must have one shape")
    noise = float(((x - x_hat) ** 2).sum())
    signal = float((x ** 2).sum())
    return math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)


def error(x: "torch.Tensor", x_hat: "torch.Tensor") -> QuantError:
    """:class:`QuantError` of a reconstruction ``x_hat`` of ``x``."""
    d = (x.detach().double() - x_hat.detach().double())
    return QuantError(float((d ** 2).mean()), float(d.abs().max()), sqnr_db(x, x_hat))


def sqnr_by_bits(x: "torch.Tensor", bits: "list[int] | range" = range(2, 17), *, symmetric: bool = False,
                 axis: int | None = None, method: str = "minmax") -> dict[int, float]:
    """SQNR in dB of quantising ``x`` at each bit width (min-max ranges unless ``method`` says otherwise):
    the measured curve that notebook 04 draws beside the 6.02 dB-per-bit law."""
    out = {}
    for b in bits:
        qp = qparams(x, b, symmetric=symmetric, axis=axis, method=method)
        out[int(b)] = sqnr_db(x, dequantize(quantize(x, qp), qp))
    return out


# ----------------------------------------------------------------------------- k-means (codebook) quantisation


@dataclass
class Codebook:
    """Non-uniform quantisation: ``2**bits`` float centroids and one index per element (Deep Compression)."""

    centroids: "torch.Tensor"   # (2**bits,) float32, sorted
    indices: "torch.Tensor"     # x.shape, uint8 for ≤ 8 bits else int32
    bits: int
    iters: int                  # Lloyd iterations actually run

    def dequantize(self) -> "torch.Tensor":
        return self.centroids[self.indices.long()]

    def as_dict(self) -> dict[str, Any]:
        return {"bits": self.bits, "iters": self.iters, "centroids": self.centroids.tolist()}


def kmeans(x: "torch.Tensor", bits: int = 4, *, iters: int = 30) -> Codebook:
    """1-D k-means of the values of ``x`` with ``2**bits`` clusters, started on a linear grid over
    [min, max] (the initialisation Han et al. found best), refined by Lloyd's algorithm until no
    centroid moves. Deterministic. Returns a :class:`Codebook`."""
    import torch

    _check_bits(bits)
    _check_tensor(x)
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters={iters!r} must be an int >= 1")
    v = x.detach().float().reshape(-1)
    k = 1 << bits
    c = torch.linspace(float(v.min()), float(v.max()), k)
    done = 0
    for done in range(1, iters + 1):
        idx = torch.bucketize(v, (c[1:] + c[:-1]) / 2)                  # nearest centroid on a sorted line
        sums = torch.zeros(k).index_add_(0, idx, v)
        counts = torch.bincount(idx, minlength=k).float()
        new = torch.where(counts > 0, sums / counts.clamp(min=1), c)   # empty clusters keep their place
        new, _ = torch.sort(new)
        if torch.equal(new, c):
            break
        c = new
    idx = torch.bucketize(v, (c[1:] + c[:-1]) / 2)
    return Codebook(c, idx.to(torch.uint8 if bits <= 8 else torch.int32).reshape(x.shape), bits, done)


# ----------------------------------------------------------------------------- integer-only arithmetic


def quantize_multiplier(m: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Write each real multiplier ``m`` (usually s_x·s_w/s_y, well below 1) as ``m0 · 2**-(31 + shift)``
    with an int32 ``m0`` in [2**30, 2**31) — how integer-only kernels (gemmlowp, TFLite) requantise.
    Returns (m0, shift) as int64 tensors."""
    import torch

    m = torch.as_tensor(m, dtype=torch.float64)
    if not bool(((m > 0) & (m < 2**30)).all()):
        raise ValueError(f"multiplier must lie in (0, 2**30); got range [{float(m.min()):g}, {float(m.max()):g}]")
    mant, exp = torch.frexp(m)                              # m = mant · 2**exp, mant in [0.5, 1)
    m0 = torch.round(mant * (1 << 31)).to(torch.int64)
    carry = m0 == (1 << 31)                                  # mantissa rounded up to 1.0
    m0 = torch.where(carry, m0 // 2, m0)
    shift = (-exp).to(torch.int64) - carry.to(torch.int64)
    return m0, shift


def requantize(acc: "torch.Tensor", m0: "torch.Tensor", shift: "torch.Tensor", zero_point: int,
               qmin: int, qmax: int) -> "torch.Tensor":
    """int32 accumulators → output integers: ``round(acc · m0 / 2**(31 + shift)) + zero_point``, clamped,
    with integer operations only (rounding half away from zero)."""
    import torch

    total = 31 + shift
    prod = acc.to(torch.int64) * m0                          # fits int64: |acc| < 2**31, m0 < 2**31
    half = torch.ones_like(total) << (total - 1)
    rounded = torch.where(prod >= 0, (prod + half) >> total, -((-prod + half) >> total))
    return (rounded + zero_point).clamp(qmin, qmax)


def int_linear(xq: "torch.Tensor", x_qp: QParams, wq: "torch.Tensor", w_qp: QParams,
               bias: "torch.Tensor | None", y_qp: QParams) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Integer-only ``y = x Wᵀ + b``: uint8/int8 activations ``xq`` (N, K) per tensor, int8 weights ``wq``
    (M, K) symmetric per output channel (axis 0) or per tensor, bias quantised to int32 at scale
    s_x·s_w, products summed in int32, then requantised to ``y_qp`` by a fixed-point multiplier.
    Returns (y integers (N, M), the int32 accumulators)."""
    import torch

    if x_qp.axis is not None or y_qp.axis is not None:
        raise ValueError("x_qp and y_qp must be per-tensor")
    if not w_qp.symmetric or not w_qp.signed or (w_qp.axis not in (None, 0)) or w_qp.group_size:
        raise ValueError("w_qp must be signed symmetric, per tensor or per output channel (axis=0)")
    if xq.dim() != 2 or wq.dim() != 2 or xq.shape[1] != wq.shape[1]:
        raise ValueError(f"need xq (N, K) and wq (M, K); got {tuple(xq.shape)} and {tuple(wq.shape)}")
    xs = xq.to(torch.int64) - int(x_qp.zero_point)                       # (N, K)
    acc = xs @ wq.to(torch.int64).T                                      # (N, M)
    s_acc = x_qp.scale.double() * w_qp.scale.double()                    # () or (M,)
    if bias is not None:
        acc = acc + torch.round(bias.double() / s_acc).to(torch.int64)
    if bool((acc.abs() >= 2**31).any()):
        raise ValueError("the int32 accumulator overflowed; K is too large for 8-bit inputs")
    m0, shift = quantize_multiplier((s_acc / y_qp.scale.double()).expand(wq.shape[0]))
    y = requantize(acc, m0, shift, int(y_qp.zero_point), y_qp.qmin, y_qp.qmax)
    return y.to(_int_dtype(y_qp)), acc.to(torch.int32)


# ----------------------------------------------------------------------------- model level: weight-only


def _quantizable(model: "torch.nn.Module") -> dict[str, "torch.nn.Module"]:
    import torch

    return {n: m for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}


@dataclass(frozen=True)
class WeightOnlyConfig:
    """Weight-only quantisation of every Conv2d / Linear weight (biases and activations stay float)."""

    bits: int = 8                   # 2..16
    symmetric: bool = True          # weights are centred on 0; symmetric grids keep kernels simple
    per_channel: bool = True        # one scale per output channel (axis 0); False: one per tensor
    group_size: int | None = None   # per group of input channels (axis 1), e.g. 32; layers it does not divide stay per channel
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


def quantize_weights_(model: "torch.nn.Module", config: WeightOnlyConfig | None = None) -> WeightReport:
    """Replace every Conv2d / Linear weight of ``model`` in place by its quantised-dequantised value
    (what a weight-only INT8/INT4 kernel computes with); returns a :class:`WeightReport`."""
    import torch

    cfg = config or WeightOnlyConfig()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    sq, nbytes, fp32 = {}, 0, 0
    with torch.no_grad():
        for name, mod in _quantizable(model).items():
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


# ----------------------------------------------------------------------------- model level: ONNX Runtime INT8


@dataclass
class Calibration:
    """Activation ranges for static quantisation, found on calibration data: ONNX tensor name ->
    (rmin, rmax), by ``method``. Serialisable (``as_dict``); :func:`quantize_static` replays it."""

    ranges: dict[str, tuple[float, float]]
    method: str
    n_images: int
    percentile: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _batches(batches: Any) -> list[Any]:
    import numpy as np

    out = [np.ascontiguousarray(np.asarray(b, dtype=np.float32)) for b in batches]
    if not out:
        raise ValueError("batches is empty; pass at least one calibration batch, e.g. mclab.data.calibration_batches()")
    return out


def prepare_onnx(model: Any, path: str, input_shape: tuple[int, ...]) -> str:
    """Export a torch module (BatchNorm folded) to ``path`` and run ONNX Runtime's quantisation
    pre-processing (shape inference, constant folding); an existing ``.onnx`` file is pre-processed
    only. Returns the pre-processed file (``<path>.pre.onnx``)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .runtimes.export import ExportConfig, export_onnx

    src = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    if src is None:
        src = export_onnx(model, path, ExportConfig(input_shape=tuple(input_shape))).path
    elif not os.path.isfile(src):
        raise ValueError(f"model file {src!r} does not exist")
    pre = os.fspath(path) + ".pre.onnx"
    try:
        quant_pre_process(src, pre, skip_symbolic_shape=True)
    except Exception as e:  # onnx/ORT raise several types for unreadable files
        raise ValueError(f"cannot prepare {src!r} for quantisation: {str(e).strip().splitlines()[0][:200]}") from None
    return pre


def calibrate(onnx_path: str, batches: Sequence[Any], *, method: str = "minmax", percentile: float = 99.99) -> Calibration:
    """Run ``batches`` (arrays or tensors of the model's input shape) through the FP32 ONNX model with
    every intermediate float tensor exposed, and choose each tensor's range by ``method`` (the same
    :func:`qparams` calibrators as for tensors: min-max, percentile or MSE on an 8-bit unsigned grid)."""
    import tempfile

    import numpy as np
    import onnx
    import torch

    from .runtimes.onnxrt import session

    if method not in METHODS:
        raise ValueError(f"method={method!r} is unknown; allowed: {METHODS}")
    xs = _batches(batches)
    m = onnx.shape_inference.infer_shapes(onnx.load(onnx_path))
    floats = {vi.name for vi in (*m.graph.value_info, *m.graph.input, *m.graph.output)
              if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    inits = {i.name for i in m.graph.initializer}
    names = [n.name for n in m.graph.input if n.name not in inits]
    names += [o for node in m.graph.node for o in node.output if o in floats]
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names if n not in have)
    with tempfile.TemporaryDirectory(prefix="mclab-calib-") as tmp:
        aug = os.path.join(tmp, "augmented.onnx")
        onnx.save(m, aug)
        sess = session(aug)
        inp = sess.get_inputs()[0].name
        outs = [o.name for o in sess.get_outputs()]
        got: dict[str, list[Any]] = {n: [] for n in outs}
        for x in xs:
            for n, v in zip(outs, sess.run(None, {inp: x})):
                got[n].append(v)
    ranges = {}
    rng = np.random.default_rng(0)
    for n in names:
        v = np.concatenate([a.reshape(-1) for a in got[n]])
        if method == "mse" and v.size > _MSE_SAMPLE:  # the search quantises the tensor 24 times: sample it
            v = np.concatenate([rng.choice(v, _MSE_SAMPLE, replace=False), [v.min(), v.max()]])
        qp = qparams(torch.from_numpy(v), 8, method=method, percentile=percentile, grid=24)
        lo = float((qp.qmin - int(qp.zero_point)) * float(qp.scale))
        hi = float((qp.qmax - int(qp.zero_point)) * float(qp.scale))
        ranges[n] = (lo, hi)
    return Calibration(ranges, method, int(sum(x.shape[0] for x in xs)), percentile if method == "percentile" else None)


def quantize_static(onnx_path: str, out_path: str, calibration: Calibration, *, per_channel: bool = True) -> str:
    """Static INT8 with ONNX Runtime's ``quantize_static`` (QDQ format; UINT8 asymmetric activations with the
    ranges in ``calibration``; INT8 symmetric weights, per output channel unless ``per_channel=False``).
    Returns ``out_path``; run it with ``mclab.runtimes.load(out_path, "onnxruntime" | "openvino")``."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    if not isinstance(calibration, Calibration):
        raise TypeError(f"calibration must be a Calibration from mclab.quant.calibrate, got {type(calibration).__name__}")
    if not os.path.isfile(onnx_path):
        raise ValueError(f"onnx_path={onnx_path!r} does not exist")

    class OneBatch(CalibrationDataReader):  # ORT insists on a reader; every range is overridden below
        def __init__(self) -> None:
            self.items = None

        def get_next(self) -> dict | None:
            if self.items is None:
                from .runtimes.onnxrt import session

                inp = session(onnx_path).get_inputs()[0]
                shape = [d if isinstance(d, int) else 1 for d in inp.shape]
                self.items = iter([{inp.name: np.zeros(shape, np.float32)}])
            return next(self.items, None)

    overrides = {n: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for n, (lo, hi) in calibration.ranges.items()}
    ort_quantize_static(onnx_path, out_path, OneBatch(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        extra_options={"TensorQuantOverrides": overrides})
    return out_path


def quantize_dynamic(onnx_path: str, out_path: str, *, per_channel: bool = True) -> str:
    """Dynamic INT8 with ONNX Runtime: weights stored as INT8, each activation's range measured at run time
    (no calibration; ConvInteger / MatMulInteger kernels). Returns ``out_path``."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    if not os.path.isfile(onnx_path):
        raise ValueError(f"onnx_path={onnx_path!r} does not exist")
    ort_quantize_dynamic(onnx_path, out_path, per_channel=per_channel, weight_type=QuantType.QInt8)
    return out_path


def batched(runner: Any) -> Any:
    """A callable for :func:`mclab.models.evaluate` over a fixed-batch :class:`mclab.runtimes.Runner`: any
    (N, C, H, W) tensor is cut into the runner's batch size (the last chunk zero-padded) and the logits joined."""
    import numpy as np

    b = runner.input_shape[0]

    def run(x: Any) -> Any:
        x = np.asarray(x, dtype=np.float32)
        outs = []
        for i in range(0, len(x), b):
            chunk = x[i:i + b]
            n = len(chunk)
            if n < b:
                chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), np.float32)])
            outs.append(runner.run(np.ascontiguousarray(chunk))[:n])
        return np.concatenate(outs)

    return run


def int8_op_counts(runner: Any) -> dict[str, int]:
    """What a runtime really executes: for ONNX Runtime, the op types of the graph after its optimiser
    (``QLinearConv`` = an INT8 convolution); for OpenVINO, ``"<layer> <precision>"`` of the compiled
    model's runtime graph (``"Convolution u8"`` = INT8). Counts per kind."""
    import collections
    import tempfile

    from .runtimes import Runner

    if not isinstance(runner, Runner):
        raise TypeError(f"runner must be a mclab.runtimes.Runner, got {type(runner).__name__}")
    if runner.runtime == "openvino":
        from .runtimes.openvino import runtime_layers

        cnt: collections.Counter = collections.Counter(
            f"{info['layerType']} {info['runtimePrecision']}" for info in runtime_layers(runner)
            if info["layerType"] not in ("Const", "Input", "Output"))
        return dict(cnt.most_common())
    if runner.runtime == "onnxruntime":
        import onnx

        from .runtimes.export import op_counts
        from .runtimes.onnxrt import session

        with tempfile.TemporaryDirectory(prefix="mclab-opt-") as tmp:
            opt = os.path.join(tmp, "optimized.onnx")
            session(runner.file, runner.threads, optimized_path=opt)
            return op_counts(onnx.load(opt))
    raise ValueError(f"runner.runtime={runner.runtime!r}; int8_op_counts reads 'onnxruntime' or 'openvino'")


# ----------------------------------------------------------------------------- model level: QAT


def fold_batchnorm(model: "torch.nn.Module") -> "torch.nn.Module":
    """A copy of ``model`` (eval mode) with every Conv→BatchNorm pair folded into one Conv, as the ONNX
    export and INT8 kernels see it — so QAT quantises the weights that will really be deployed."""
    import copy

    import torch
    from torch.fx.experimental.optimization import fuse

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return fuse(copy.deepcopy(model).eval(), inplace=True)


class _FakeQuant:
    """Wraps a Conv2d / Linear: fake-quantised input (per tensor, asymmetric, EMA min-max range) and
    weights (per output channel, symmetric narrow range — ONNX Runtime's INT8 weight grid)."""

    @staticmethod
    def wrap(mod: "torch.nn.Module", bits: int, momentum: float) -> "torch.nn.Module":
        import torch
        import torch.nn.functional as F

        class QATLayer(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = mod
                self.register_buffer("lo", torch.tensor(math.inf))
                self.register_buffer("hi", torch.tensor(-math.inf))

            def forward(self, x: "torch.Tensor") -> "torch.Tensor":
                if self.training or not bool(torch.isfinite(self.lo)):
                    lo, hi = torch.aminmax(x.detach())
                    first = not bool(torch.isfinite(self.lo))
                    self.lo.copy_(lo if first else self.lo + momentum * (lo - self.lo))
                    self.hi.copy_(hi if first else self.hi + momentum * (hi - self.hi))
                xq = fake_quantize(x, qparams_from_range(self.lo, self.hi, bits=bits))
                w = self.inner.weight
                wq = fake_quantize(w, qparams(w.detach(), bits, symmetric=True, axis=0, narrow=True))
                if isinstance(self.inner, torch.nn.Linear):
                    return F.linear(xq, wq, self.inner.bias)
                c = self.inner
                return F.conv2d(xq, wq, c.bias, c.stride, c.padding, c.dilation, c.groups)

        return QATLayer()


@dataclass(frozen=True)
class QATConfig:
    """Quantisation-aware fine-tuning: a short, low-learning-rate run with fake quantisation in the loop."""

    epochs: int = 2                 # a few epochs suffice: the float model is already trained
    lr: float = 5e-5                # peak learning rate, 1/60 of the reference training's 3e-3 (2e-4 measured 2 points
                                    # lower on the fast reference model: fine-tuning must nudge the weights, not retrain)
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

    fake: "torch.nn.Module"
    float: "torch.nn.Module"
    loss: list[float]
    val_accuracy: list[float]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "val_accuracy": self.val_accuracy, "seconds": self.seconds}


def fake_quant_model(model: "torch.nn.Module", bits: int = 8, *, momentum: float = 0.05,
                     calibration: Sequence[Any] = ()) -> "torch.nn.Module":
    """A copy of ``model`` with BatchNorm folded and every Conv2d / Linear wrapped by fake quantisation
    (inputs per tensor with running ranges, weights per channel); ranges are first observed on the
    ``calibration`` batches. Evaluating it simulates INT8 (or ``bits``) PTQ; training it is QAT."""
    import torch

    _check_bits(bits)
    fused = fold_batchnorm(model)
    for name, mod in list(_quantizable(fused).items()):
        parent, _, leaf = name.rpartition(".")
        setattr(fused.get_submodule(parent) if parent else fused, leaf, _FakeQuant.wrap(mod, bits, momentum))
    fused.train()
    with torch.no_grad():
        for x in calibration:
            fused(torch.as_tensor(x))
    return fused.eval()


def _unwrap(fake: "torch.nn.Module") -> "torch.nn.Module":
    import copy

    plain = copy.deepcopy(fake)
    for name, mod in list(plain.named_modules()):
        if hasattr(mod, "inner") and hasattr(mod, "lo"):
            parent, _, leaf = name.rpartition(".")
            setattr(plain.get_submodule(parent) if parent else plain, leaf, mod.inner)
    return plain.eval()


def qat(model: "torch.nn.Module", config: QATConfig | None = None, *, size: int = 32, progress: bool = False,
        cache: str | None = None) -> QATResult:
    """Quantisation-aware training on the digits: :func:`fake_quant_model` (BatchNorm folded, fake
    quantisation with straight-through gradients), fine-tuned with :func:`mclab.models.train`. ``model``
    is not changed. ``cache`` (a name, e.g. the reference model's cache key) stores the result in
    :func:`mclab.models.cache_dir` and reuses it. Returns a :class:`QATResult`. Introduced in notebook 05."""
    import hashlib
    import json
    import time

    import torch

    from .data import calibration_batches
    from .models import TrainConfig, cache_dir, train

    cfg = config or QATConfig()
    if not isinstance(cfg, QATConfig):
        raise TypeError(f"config must be a QATConfig, got {type(cfg).__name__}")
    path = None
    if cache is not None:
        key = hashlib.sha256(json.dumps({"m": cache, "cfg": asdict(cfg), "size": size}, sort_keys=True).encode()).hexdigest()[:12]
        path = cache_dir() / f"qat-{key}.pt"
        if path.is_file():  # the saved state holds the trained weights and the activation ranges
            saved = torch.load(path, map_location="cpu", weights_only=True)
            fake = fake_quant_model(model, cfg.bits, momentum=cfg.momentum)
            fake.load_state_dict(saved["state_dict"])
            return QATResult(fake.eval(), _unwrap(fake), saved["loss"], saved["val_accuracy"], 0.0)
    fake = fake_quant_model(model, cfg.bits, momentum=cfg.momentum,
                            calibration=calibration_batches(4, batch_size=64, size=size, seed=cfg.seed))
    t0 = time.perf_counter()
    res = train(fake, TrainConfig(epochs=cfg.epochs, lr=cfg.lr, size=size, seed=cfg.seed, progress=progress,
                                  weight_decay=0.0))
    if path is not None:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"state_dict": fake.state_dict(), "loss": res.loss, "val_accuracy": res.val_accuracy}, tmp)
        os.replace(tmp, path)
    return QATResult(fake.eval(), _unwrap(fake), res.loss, res.val_accuracy, time.perf_counter() - t0)
