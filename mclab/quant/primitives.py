"""Quantisation arithmetic, bit-exact with PyTorch: pure tensor primitives, each a few lines you can read.

- :func:`qparams` finds a range (min-max, percentile or MSE-optimal) per tensor, per channel or
  per group and turns it into a :class:`QParams` (scale, zero point, integer range). At 8 bits the
  scale and zero point are exactly those of ``torch.ao.quantization.MinMaxObserver`` /
  ``PerChannelMinMaxObserver``; :func:`quantize` gives exactly the integers of
  ``torch.quantize_per_tensor`` / ``torch.quantize_per_channel`` (x times the float32 reciprocal of
  the scale, rounded half to even). With ``scale_dtype=torch.float16`` the scale is stored as the
  group-wise weight formats of LLMs store it (:mod:`mclab.llm.quant` builds on these functions).
- :func:`dequantize`, :func:`fake_quantize` (straight-through gradient, zero where clipped),
  :func:`error` (MSE, max error, SQNR in dB), :func:`kmeans` (codebook quantisation),
  :func:`int_linear` (int8 × int8 → int32 accumulate → fixed-point requantise, no floats) and
  :func:`pack_int4` (two 4-bit integers per byte).

The model-level verbs built on them live in :mod:`mclab.quant.api`. Introduced in notebook 04.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    # parameters and primitives
    "QParams", "METHODS", "SCALE_DTYPES", "qparams", "qparams_from_range", "observe_range", "quantize", "dequantize",
    "fake_quantize", "pack_int4", "unpack_int4",
    # error and alternatives
    "QuantError", "error", "sqnr_db", "sqnr_by_bits", "Codebook", "kmeans",
    # integer-only arithmetic
    "quantize_multiplier", "requantize", "int_linear",
]

METHODS = ("minmax", "percentile", "mse")
# How a scale may be stored: float32 (PyTorch's observers, ONNX Runtime) or float16 (group-wise LLM weight formats)
SCALE_DTYPES = (torch.float32, torch.float16)
_EPS = 1.1920928955078125e-07  # torch.finfo(torch.float32).eps: the observers' smallest scale
_FP16_TINY = 2.0**-14  # torch.finfo(torch.float16).tiny: the smallest normal float16, the smallest float16 scale


# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class QParams:
    """How real numbers map onto a ``bits``-wide integer grid: ``q = clamp(round(x / scale) + zero_point)``.

    ``scale`` (float32, or float16 where the format stores it so) and ``zero_point`` (int64) are 0-d per
    tensor, ``(C,)`` per channel along ``axis``, and the tensor's shape with ``axis`` divided by
    ``group_size`` per group.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor
    bits: int = 8
    signed: bool = False
    symmetric: bool = False
    axis: int | None = None          # channel axis (per channel) or the axis split into groups (per group)
    group_size: int | None = None    # consecutive elements along ``axis`` sharing one scale
    narrow: bool = False             # signed symmetric grid without its lowest code (int8: -127..127, as
                                     # ONNX Runtime's weights)

    def __post_init__(self) -> None:
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


def _check_tensor(x: Any, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch tensor, "
                        f"got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty")
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{name} contains NaN; quantisation needs finite values (check the data or the model)")
    return x


def _check_axis(x: torch.Tensor, axis: int | None, group_size: int | None) -> int | None:
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


def _slots(x: torch.Tensor, axis: int | None, group_size: int | None) -> torch.Tensor:
    """``x`` as (slots, elements): one row per scale (1 row per tensor, C per channel, … per group)."""
    if axis is None:
        return x.reshape(1, -1)
    if group_size is None:
        return x.movedim(axis, 0).reshape(x.shape[axis], -1)
    shape = (*x.shape[:axis], x.shape[axis] // group_size, group_size, *x.shape[axis + 1:])
    return x.reshape(shape).movedim(axis + 1, -1).reshape(-1, group_size)


def _param_shape(x: torch.Tensor, axis: int | None, group_size: int | None) -> tuple[int, ...]:
    if axis is None:
        return ()
    if group_size is None:
        return (x.shape[axis],)
    return (*x.shape[:axis], x.shape[axis] // group_size, *x.shape[axis + 1:])


def _broadcast(t: torch.Tensor, x: torch.Tensor, qp: QParams) -> torch.Tensor:
    """``t`` (a scale or zero point) shaped to broadcast against ``x``."""
    if qp.axis is None:
        return t
    if qp.group_size is None:
        shape = [1] * x.dim()
        shape[qp.axis] = -1
        return t.reshape(shape)
    t = t.unsqueeze(qp.axis + 1)  # (..., G, 1, ...) against x viewed as (..., G, group_size, ...)
    return t


def _grouped(x: torch.Tensor, qp: QParams) -> torch.Tensor:
    if qp.group_size is None:
        return x
    a = qp.axis
    return x.reshape(*x.shape[:a], x.shape[a] // qp.group_size, qp.group_size, *x.shape[a + 1:])


def observe_range(x: torch.Tensor, *, axis: int | None = None, group_size: int | None = None,
                  method: str = "minmax", percentile: float = 99.99) -> tuple[torch.Tensor, torch.Tensor]:
    """(min, max) of ``x`` per slot (float32, shape of the scale): the plain extremes (``"minmax"``),
    the ``percentile`` and ``100 - percentile`` percentiles (``"percentile"``: outliers clipped).
    ``"mse"`` ranges depend on the grid, so :func:`qparams` searches them."""
    import numpy as np
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


def qparams_from_range(lo: torch.Tensor, hi: torch.Tensor, *, bits: int = 8, symmetric: bool = False,
                       signed: bool | None = None, axis: int | None = None, group_size: int | None = None,
                       narrow: bool = False, scale_dtype: torch.dtype = torch.float32) -> QParams:
    """Scale and zero point for the range [lo, hi], by the formula of PyTorch's observers.

    The range is first widened to include 0 (so 0.0 is exact: zero padding stays zero). Affine:
    ``scale = (hi - lo) / (qmax - qmin)``, ``zero_point = qmin - round(lo / scale)``. Symmetric:
    ``scale = max(|lo|, hi) / ((qmax - qmin) / 2)`` with the zero point in the middle of the grid
    (0 when signed). ``signed`` defaults to symmetric (int8 weights, uint8 activations).

    ``scale_dtype`` is how the scale is stored: ``torch.float32`` (smallest scale float32's eps, as the
    observers) or ``torch.float16`` (as group-wise LLM weight formats store it: at least the smallest
    normal float16, rounded *up* to a float16 so [lo, hi] still fits on the grid; the zero point is then
    computed from the stored scale). Returns :class:`QParams` whose scale has dtype ``scale_dtype``."""
    _check_bits(bits)
    if scale_dtype not in SCALE_DTYPES:
        raise ValueError(f"scale_dtype={scale_dtype!r} is not allowed; allowed: torch.float32 or torch.float16")
    signed = symmetric if signed is None else bool(signed)
    proto = QParams(torch.ones(()), torch.zeros((), dtype=torch.int64), bits, signed, symmetric, None, None, narrow)
    qmin, qmax = proto.qmin, proto.qmax
    lo = torch.as_tensor(lo, dtype=torch.float32)
    hi = torch.as_tensor(hi, dtype=torch.float32)
    if lo.shape != hi.shape or bool((lo > hi).any()):
        raise ValueError("lo and hi must have one shape and lo <= hi everywhere")
    lo, hi = torch.minimum(lo, torch.zeros_like(lo)), torch.maximum(hi, torch.zeros_like(hi))
    smallest = torch.tensor(_EPS if scale_dtype == torch.float32 else _FP16_TINY)
    if symmetric:
        scale = torch.maximum(torch.maximum(-lo, hi) / (float(qmax - qmin) / 2), smallest)
    else:
        scale = torch.maximum((hi - lo) / float(qmax - qmin), smallest)
    if scale_dtype == torch.float16:
        stored = scale.half()  # nearest float16; where that is below the scale, the next one up
        scale = torch.where(stored.float() < scale, (scale * (1 + 2**-10)).half(), stored).float()
    if symmetric:
        mid = 0 if signed else (1 << (bits - 1))
        zp = torch.full(lo.shape, mid, dtype=torch.int64)
    else:
        zp = torch.clamp(qmin - torch.round(lo / scale).to(torch.int64), qmin, qmax)
    return QParams(scale.to(scale_dtype), zp, bits, signed, symmetric, axis, group_size, narrow)


def qparams(x: torch.Tensor, bits: int = 8, symmetric: bool = False, signed: bool | None = None,
            axis: int | None = None, group_size: int | None = None, *, method: str = "minmax",
            percentile: float = 99.99, narrow: bool = False, grid: int = 64,
            scale_dtype: torch.dtype = torch.float32) -> QParams:
    """Quantisation parameters for ``x``: per tensor (``axis=None``), per channel along ``axis``, or per
    group of ``group_size`` consecutive elements along ``axis`` (default the last). ``method``:
    ``"minmax"`` (exact match with PyTorch's MinMax observers), ``"percentile"`` (clip the tails), or
    ``"mse"`` (try ``grid`` clipping ratios of the min-max range per slot; keep the one with the lowest
    squared error). ``scale_dtype``: how the scale is stored (see :func:`qparams_from_range`). Returns
    :class:`QParams`. Introduced in notebook 04."""
    _check_bits(bits)
    _check_tensor(x)
    axis = _check_axis(x, axis, group_size)
    kw = dict(bits=bits, symmetric=symmetric, signed=signed, axis=axis, group_size=group_size, narrow=narrow,
              scale_dtype=scale_dtype)
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


def _int_dtype(qp: QParams) -> torch.dtype:
    if qp.bits <= 8:
        return torch.int8 if qp.signed else torch.uint8
    return torch.int16 if qp.signed else torch.int32


def _check_fits(x: torch.Tensor, qp: QParams) -> None:
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


def quantize(x: torch.Tensor, qp: QParams) -> torch.Tensor:
    """Integers ``clamp(round(x · (1/scale)) + zero_point, qmin, qmax)`` (half to even), as int8/uint8
    for ≤ 8 bits, else int16/int32. Bit-exact with ``torch.quantize_per_tensor`` / ``_per_channel``."""
    _check_tensor(x)
    _check_fits(x, qp)
    xg = _grouped(x.float(), qp)
    inv = 1.0 / _broadcast(qp.scale.float(), xg, qp)
    q = torch.round(xg * inv) + _broadcast(qp.zero_point, xg, qp)
    return q.clamp_(qp.qmin, qp.qmax).to(_int_dtype(qp)).reshape(x.shape)


def dequantize(q: torch.Tensor, qp: QParams) -> torch.Tensor:
    """Real values ``(q - zero_point) · scale`` as float32, same shape as ``q``."""
    _check_fits(q, qp)
    qg = _grouped(q, qp).long()
    return ((qg - _broadcast(qp.zero_point, qg, qp)).float() * _broadcast(qp.scale.float(), qg, qp)).reshape(q.shape)


def fake_quantize(x: torch.Tensor, qp: QParams) -> torch.Tensor:
    """``dequantize(quantize(x))`` in float, differentiable with the straight-through estimator: the
    gradient passes unchanged where ``x`` lies inside the grid's range and is zero where it was clipped
    (as ``torch.fake_quantize_per_tensor_affine``). Used for quantisation-aware training."""
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


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Two 4-bit integers per byte along the last axis: byte j = q[2j] | q[2j+1] << 4 (the last axis halves).
    ``q``: uint8 values in 0..15 (an unsigned 4-bit grid, e.g. :func:`quantize` with ``bits=4``)."""
    if not isinstance(q, torch.Tensor) or q.dim() == 0 or q.shape[-1] % 2:
        raise ValueError(f"pack_int4 needs an even last dimension, got shape {tuple(getattr(q, 'shape', ()))}")
    if q.dtype != torch.uint8 or int(q.max()) > 15:
        raise ValueError("pack_int4 needs uint8 values in 0..15")
    return q[..., 0::2] | (q[..., 1::2] << 4)


def unpack_int4(p: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: uint8 (..., n) -> uint8 (..., 2n)."""
    if not isinstance(p, torch.Tensor) or p.dtype != torch.uint8:
        raise TypeError(f"unpack_int4 needs a uint8 tensor, got {type(p).__name__} {getattr(p, 'dtype', '')}")
    return torch.stack((p & 0x0F, p >> 4), dim=-1).flatten(-2)


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


def sqnr_db(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """10·log10(Σx² / Σ(x - x̂)²) in dB; ``inf`` when the reconstruction is exact."""
    x, x_hat = x.detach().double(), x_hat.detach().double()
    if x.shape != x_hat.shape:
        raise ValueError(f"x {tuple(x.shape)} and x_hat {tuple(x_hat.shape)} must have one shape")
    noise = float(((x - x_hat) ** 2).sum())
    signal = float((x ** 2).sum())
    return math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)


def error(x: torch.Tensor, x_hat: torch.Tensor) -> QuantError:
    """:class:`QuantError` of a reconstruction ``x_hat`` of ``x``."""
    d = (x.detach().double() - x_hat.detach().double())
    return QuantError(float((d ** 2).mean()), float(d.abs().max()), sqnr_db(x, x_hat))


def sqnr_by_bits(x: torch.Tensor, bits: list[int] | range = range(2, 17), *, symmetric: bool = False,
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

    centroids: torch.Tensor   # (2**bits,) float32, sorted
    indices: torch.Tensor     # x.shape, uint8 for ≤ 8 bits else int32
    bits: int
    iters: int                  # Lloyd iterations actually run

    def dequantize(self) -> torch.Tensor:
        return self.centroids[self.indices.long()]

    def as_dict(self) -> dict[str, Any]:
        return {"bits": self.bits, "iters": self.iters, "centroids": self.centroids.tolist()}


def kmeans(x: torch.Tensor, bits: int = 4, *, iters: int = 30) -> Codebook:
    """1-D k-means of the values of ``x`` with ``2**bits`` clusters, started on a linear grid over
    [min, max] (the initialisation Han et al. found best), refined by Lloyd's algorithm until no
    centroid moves. Deterministic. Returns a :class:`Codebook`."""
    _check_bits(bits)
    _check_tensor(x)
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters={iters!r} must be an int >= 1")
    v = x.detach().float().reshape(-1)
    k = 1 << bits
    c = torch.linspace(float(v.min()), float(v.max()), k)
    done = 0
    for step in range(1, iters + 1):
        done = step
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


def quantize_multiplier(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Write each real multiplier ``m`` (usually s_x·s_w/s_y, well below 1) as ``m0 · 2**-(31 + shift)``
    with an int32 ``m0`` in [2**30, 2**31) — how integer-only kernels (gemmlowp, TFLite) requantise.
    Returns (m0, shift) as int64 tensors."""
    m = torch.as_tensor(m, dtype=torch.float64)
    if not bool(((m > 0) & (m < 2**30)).all()):
        raise ValueError(f"multiplier must lie in (0, 2**30); got range [{float(m.min()):g}, {float(m.max()):g}]")
    mant, exp = torch.frexp(m)                              # m = mant · 2**exp, mant in [0.5, 1)
    m0 = torch.round(mant * (1 << 31)).to(torch.int64)
    carry = m0 == (1 << 31)                                  # mantissa rounded up to 1.0
    m0 = torch.where(carry, m0 // 2, m0)
    shift = (-exp).to(torch.int64) - carry.to(torch.int64)
    return m0, shift


def requantize(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor, zero_point: int,
               qmin: int, qmax: int) -> torch.Tensor:
    """int32 accumulators → output integers: ``round(acc · m0 / 2**(31 + shift)) + zero_point``, clamped,
    with integer operations only (rounding half away from zero)."""
    total = 31 + shift
    prod = acc.to(torch.int64) * m0                          # fits int64: |acc| < 2**31, m0 < 2**31
    half = torch.ones_like(total) << (total - 1)
    rounded = torch.where(prod >= 0, (prod + half) >> total, -((-prod + half) >> total))
    return (rounded + zero_point).clamp(qmin, qmax)


def int_linear(xq: torch.Tensor, x_qp: QParams, wq: torch.Tensor, w_qp: QParams,
               bias: torch.Tensor | None, y_qp: QParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer-only ``y = x Wᵀ + b``: uint8/int8 activations ``xq`` (N, K) per tensor, int8 weights ``wq``
    (M, K) symmetric per output channel (axis 0) or per tensor, bias quantised to int32 at scale
    s_x·s_w, products summed in int32, then requantised to ``y_qp`` by a fixed-point multiplier.
    Returns (y integers (N, M), the int32 accumulators)."""
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
