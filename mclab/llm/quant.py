"""Weight-only quantisation of the language model's linear layers: INT8/INT4, group-wise.

Three ways to choose the integers, all producing the same packed format (so memory is equal
and only accuracy differs):

- ``"rtn"``: round-to-nearest with an asymmetric scale and zero-point per group of
  ``group_size`` input channels.
- ``"awq"``: activation-aware scaling in the spirit of AWQ (Lin et al., 2023): input channels
  whose calibration activations are large are *salient*; scaling their weight columns up by
  s = mean|x|^alpha before rounding (and the input down by s at run time) gives them finer
  steps. ``alpha`` is searched per layer on calibration data; alpha = 0 is plain RTN, so the
  search can only match or beat RTN on the calibration set. Real AWQ folds 1/s into the
  preceding RMSNorm or linear layer; here it is kept as a per-layer ``input_scale`` (counted
  in the bytes) so every layer stands alone. Then, as AWQ does, each group's range is
  narrowed (to 100 %, 95 %, ... 50 % of it) where that lowers the group's error on the
  calibration outputs: finer steps for most weights while the extremes saturate.
- ``"gptq"``: GPTQ-style error compensation (Frantar et al., 2022): quantise one input column
  at a time and push its rounding error onto the not-yet-quantised columns, weighted by the
  inverse Hessian of the layer's calibration inputs (H = 2 X^T X). Group parameters are
  taken when a group starts (``desc_act=False``, the source material's setting).

``mclab.quant`` (generic per-tensor/per-channel primitives) did not yet provide per-group
asymmetric parameters with packing when this module was written, so the LLM-specific group
math lives here. Introduced in notebook 13.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    # config and results
    "WeightQuantConfig", "Calibration", "QuantReport",
    # primitives
    "qparams", "quantize", "dequantize", "pack_int4", "unpack_int4",
    # modules and model-level verbs
    "QuantLinear", "calibrate", "quantize_", "quantized", "cast", "linear_weight_bytes",
]

METHODS = ("rtn", "awq", "gptq")


@dataclass(frozen=True)
class WeightQuantConfig:
    """Weight-only quantisation settings (see the module docstring for the methods)."""

    bits: int = 4  # integer width: 4 (two weights per byte) or 8
    group_size: int = 32  # input channels sharing one scale and zero-point; must divide each layer's width
    method: str = "rtn"  # "rtn" | "awq" | "gptq"
    awq_grid: int = 20  # AWQ-style search tries alpha = 0, 1/grid, ..., 1 (alpha = 0 is plain RTN)
    awq_clip_grid: int = 10  # AWQ-style clipping tries ranges 1, 1 - 0.5/grid, ..., 0.5 of each group's; 0 = none
    gptq_damp: float = 0.01  # GPTQ's percdamp: this fraction of the mean Hessian diagonal is added for stability

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise ValueError(f"bits={self.bits!r} is not supported; allowed: 4 or 8")
        if not isinstance(self.group_size, int) or isinstance(self.group_size, bool) or self.group_size < 2:
            raise ValueError(f"group_size={self.group_size!r} must be an int >= 2 (e.g. 32, 64, 128)")
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is not known; allowed: {', '.join(METHODS)}")
        if not isinstance(self.awq_grid, int) or self.awq_grid < 1:
            raise ValueError(f"awq_grid={self.awq_grid!r} must be a positive int")
        if not isinstance(self.awq_clip_grid, int) or self.awq_clip_grid < 0:
            raise ValueError(f"awq_clip_grid={self.awq_clip_grid!r} must be an int >= 0 (0 = no clipping search)")
        if not 0 <= self.gptq_damp < 1:
            raise ValueError(f"gptq_damp={self.gptq_damp} must be in [0, 1)")

    @property
    def label(self) -> str:
        return f"INT{self.bits} {self.method.upper()} g{self.group_size}"


# ----------------------------------------------------------------------------- primitives


def _check_groups(width: int, group_size: int, what: str = "weight") -> None:
    if width % group_size:
        raise ValueError(f"group_size={group_size} does not divide the {what} width {width}; "
                         f"allowed: a divisor of {width} (e.g. {', '.join(str(g) for g in (32, 64, 128) if width % g == 0) or 'none of 32/64/128'})")


def qparams(w: torch.Tensor, bits: int, group_size: int,
            clip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric per-group parameters of ``w`` (out, in): (scale as stored in fp16 (out, in/g), zero (out, in/g) int).

    The range [min, max] of each group (widened to include 0, and multiplied by ``clip`` (out, in/g) when given)
    maps onto 0 ... 2^bits - 1.
    """
    if bits not in (4, 8):
        raise ValueError(f"bits={bits!r} is not supported; allowed: 4 or 8")
    _check_groups(w.shape[-1], group_size)
    qmax = 2**bits - 1
    g = w.float().unflatten(-1, (-1, group_size))  # (out, in/g, g)
    lo = g.amin(-1).clamp(max=0)
    hi = g.amax(-1).clamp(min=0)
    if clip is not None:  # a narrower range: finer steps, and values beyond it saturate
        lo, hi = lo * clip, hi * clip
    scale = ((hi - lo) / qmax).clamp(min=2**-14)  # smallest normal fp16
    stored = scale.half()  # fp16 is what is kept; round *up* so that [lo, hi] still fits on the grid
    scale = torch.where(stored.float() < scale, (scale * (1 + 2**-10)).half(), stored).float()
    zero = torch.round(-lo / scale).clamp(0, qmax)
    return scale, zero


def quantize(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    """Integers q = clamp(round(w / scale) + zero, 0, 2^bits - 1) as uint8, shape of ``w``."""
    g = w.float().unflatten(-1, (-1, group_size))
    q = torch.clamp(torch.round(g / scale[..., None]) + zero[..., None], 0, 2**bits - 1)
    return q.flatten(-2).to(torch.uint8)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, group_size: int) -> torch.Tensor:
    """(q - zero) x scale per group, float32, shape of ``q``."""
    g = q.float().unflatten(-1, (-1, group_size))
    return ((g - zero[..., None]) * scale[..., None]).flatten(-2)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Two 4-bit integers per byte along the last axis: byte j = q[2j] | q[2j+1] << 4 (last axis halves)."""
    if q.shape[-1] % 2:
        raise ValueError(f"pack_int4 needs an even last dimension, got {q.shape[-1]}")
    if q.dtype != torch.uint8 or int(q.max()) > 15:
        raise ValueError("pack_int4 needs uint8 values in 0..15")
    return q[..., 0::2] | (q[..., 1::2] << 4)


def unpack_int4(p: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: uint8 (..., n) -> uint8 (..., 2n)."""
    return torch.stack((p & 0x0F, p >> 4), dim=-1).flatten(-2)


# ----------------------------------------------------------------------------- the packed layer


class QuantLinear(nn.Module):
    """A bias-free linear layer whose weight is stored packed: ``y = dequantize(W_q) @ (x / input_scale)``.

    Buffers: ``qweight`` uint8 (out, in/2 for 4-bit, in for 8-bit), ``scales`` fp16 (out, in/g),
    ``zeros`` uint8 (out, in/g), optional ``input_scale`` fp16 (in,) from the AWQ-style search.
    The weight is dequantised on every call (PyTorch has no fused low-bit CPU kernel for this
    layout; llama.cpp's kernels dequantise inside the dot product instead).
    """

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int, group_size: int,
                 input_scale: torch.Tensor | None = None) -> None:
        super().__init__()
        self.out_features, self.in_features = q.shape
        self.bits, self.group_size = bits, group_size
        self.register_buffer("qweight", pack_int4(q) if bits == 4 else q.to(torch.uint8))
        self.register_buffer("scales", scale.half())
        self.register_buffer("zeros", zero.to(torch.uint8))
        self.register_buffer("input_scale", None if input_scale is None else input_scale.half())

    def weight_dequantized(self) -> torch.Tensor:
        """The effective float32 weight (out, in), input scaling folded in."""
        q = unpack_int4(self.qweight) if self.bits == 4 else self.qweight
        w = dequantize(q, self.scales.float(), self.zeros.float(), self.group_size)
        return w if self.input_scale is None else w / self.input_scale.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = unpack_int4(self.qweight) if self.bits == 4 else self.qweight
        w = dequantize(q, self.scales.float(), self.zeros.float(), self.group_size).to(x.dtype)
        if self.input_scale is not None:
            x = x / self.input_scale.to(x.dtype)
        return F.linear(x, w)

    @property
    def nbytes(self) -> int:
        """Bytes of everything stored: packed integers, scales, zero-points, input scale."""
        return sum(b.nbytes for b in self.buffers())

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, bits={self.bits}, group_size={self.group_size}"


# ----------------------------------------------------------------------------- calibration and methods


@dataclass
class Calibration:
    """Inputs seen by each linear layer on calibration text: ``inputs[name]`` is (n_tokens, in_features) float32."""

    inputs: dict[str, torch.Tensor]
    n_tokens: int

    def hessian(self, name: str) -> torch.Tensor:
        """GPTQ's H = 2 X^T X / n for layer ``name`` (in, in)."""
        x = self.inputs[name].double()
        return (2 * x.T @ x / len(x)).float()


def _quant_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The linear layers inside the transformer blocks (embeddings and the output head stay in float)."""
    layers = getattr(model, "layers", None)
    if layers is None:
        raise TypeError(f"model must be a TinyLlama-like module with .layers, got {type(model).__name__}")
    return {f"layers.{n}": m for n, m in layers.named_modules() if isinstance(m, nn.Linear)}


@torch.inference_mode()
def calibrate(model: nn.Module, tokens, n_tokens: int = 2048, seq_len: int = 256) -> Calibration:
    """Run ``n_tokens`` of ``tokens`` (windows of ``seq_len``) through ``model`` and keep every linear layer's inputs."""
    t = torch.as_tensor(tokens, dtype=torch.int64)[: n_tokens]
    n = len(t) // seq_len
    if n < 1:
        raise ValueError(f"need at least seq_len={seq_len} calibration tokens, got {len(t)}")
    x = t[: n * seq_len].view(n, seq_len)
    linears = _quant_linears(model)
    seen: dict[str, list[torch.Tensor]] = {k: [] for k in linears}
    hooks = [m.register_forward_pre_hook(lambda mod, args, k=k: seen[k].append(args[0].reshape(-1, args[0].shape[-1]).float()))
             for k, m in linears.items()]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return Calibration(inputs={k: torch.cat(v) for k, v in seen.items()}, n_tokens=n * seq_len)


def _rtn(w: torch.Tensor, cfg: WeightQuantConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    scale, zero = qparams(w, cfg.bits, cfg.group_size)
    return quantize(w, scale, zero, cfg.bits, cfg.group_size), scale, zero


def _awq(w: torch.Tensor, x: torch.Tensor, cfg: WeightQuantConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Search alpha for s = mean|x|^alpha; returns (q, scale, zero, s, best alpha)."""
    x_mean = x.abs().mean(0).clamp(min=1e-5)  # (in,) salience of each input channel
    y_ref = x @ w.T
    best = None
    for i in range(cfg.awq_grid + 1):
        alpha = i / cfg.awq_grid
        s = x_mean.pow(alpha)
        s = (s / (s.max() * s.min()).sqrt()).half().float()  # centred around 1; stored in fp16
        q, scale, zero = _rtn(w * s, cfg)
        w_eff = dequantize(q, scale, zero, cfg.group_size) / s
        err = (x @ w_eff.T - y_ref).pow(2).mean().item()
        if best is None or err < best[0]:
            best = (err, q, scale, zero, s, alpha)
    _, q, scale, zero, s, alpha = best
    if cfg.awq_clip_grid:
        clip = _awq_clip(w * s, x / s, cfg)
        scale, zero = qparams(w * s, cfg.bits, cfg.group_size, clip)
        q = quantize(w * s, scale, zero, cfg.bits, cfg.group_size)
    return q, scale, zero, s, alpha


def _awq_clip(w: torch.Tensor, x: torch.Tensor, cfg: WeightQuantConfig, max_tokens: int = 2048) -> torch.Tensor:
    """Per (output, group) range factor in {1, ..., 0.5} minimising that group's error on the outputs x @ w.T."""
    g = cfg.group_size
    x = x[:: max(1, len(x) // max_tokens)].unflatten(-1, (-1, g))  # (n, groups, g)
    best = torch.ones(w.shape[0], w.shape[1] // g)
    best_err = torch.full_like(best, float("inf"))
    for r in torch.linspace(1.0, 0.5, cfg.awq_clip_grid + 1).tolist():
        scale, zero = qparams(w, cfg.bits, g, torch.full_like(best, r))
        d = (w - dequantize(quantize(w, scale, zero, cfg.bits, g), scale, zero, g)).unflatten(-1, (-1, g))
        err = torch.einsum("nGk,oGk->nGo", x, d).pow(2).mean(0).T  # (out, groups)
        better = err < best_err
        best_err, best = torch.where(better, err, best_err), torch.where(better, r, best)
    return best


def _gptq(w: torch.Tensor, H: torch.Tensor, cfg: WeightQuantConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GPTQ column by column with group parameters taken at each group start; returns (q, scale, zero)."""
    W = w.clone().float()
    H = H.clone()
    dead = H.diagonal() == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += cfg.gptq_damp * H.diagonal().mean() * torch.eye(len(H))
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    out, n_in = W.shape
    g, qmax = cfg.group_size, 2**cfg.bits - 1
    Q = torch.zeros(out, n_in, dtype=torch.uint8)
    scales, zeros = [], []
    for i in range(n_in):
        if i % g == 0:
            scale, zero = qparams(W[:, i:i + g], cfg.bits, g)  # (out, 1) each
            scales.append(scale)
            zeros.append(zero)
        col = W[:, i]
        q = torch.clamp(torch.round(col / scale[:, 0]) + zero[:, 0], 0, qmax)
        err = (col - (q - zero[:, 0]) * scale[:, 0]) / Hinv[i, i]
        W[:, i + 1:] -= err[:, None] * Hinv[i, i + 1:][None, :]
        Q[:, i] = q.to(torch.uint8)
    return Q, torch.cat(scales, 1), torch.cat(zeros, 1)


# ----------------------------------------------------------------------------- model-level


@dataclass
class QuantReport:
    """What :func:`quantize_` did: bytes of the linear weights before (FP32) and after (packed, scales included)."""

    label: str
    bits: int
    group_size: int
    method: str
    layers: int
    fp32_bytes: int
    packed_bytes: int
    awq_alpha: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """packed / FP32 bytes of the quantised layers."""
        return self.packed_bytes / self.fp32_bytes

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def quantize_(model: nn.Module, cfg: WeightQuantConfig, calib: Calibration | None = None) -> QuantReport:
    """Replace, in place, every linear layer in ``model.layers`` by a :class:`QuantLinear`; returns a :class:`QuantReport`.

    ``awq`` and ``gptq`` need ``calib`` from :func:`calibrate` (run on the float model).
    """
    if not isinstance(cfg, WeightQuantConfig):
        raise TypeError(f"cfg must be a WeightQuantConfig, got {type(cfg).__name__}")
    if cfg.method != "rtn" and calib is None:
        raise ValueError(f"method={cfg.method!r} needs calibration data: pass calib=calibrate(model, tokens)")
    linears = _quant_linears(model)
    for name, lin in linears.items():
        _check_groups(lin.in_features, cfg.group_size, what=f"{name} input")
    fp32 = packed = 0
    alphas: dict[str, float] = {}
    for name, lin in linears.items():
        w = lin.weight.detach().float()
        s = None
        with torch.no_grad():
            if cfg.method == "rtn":
                q, scale, zero = _rtn(w, cfg)
            elif cfg.method == "awq":
                q, scale, zero, s, alphas[name] = _awq(w, calib.inputs[name], cfg)
            else:
                q, scale, zero = _gptq(w, calib.hessian(name), cfg)
        new = QuantLinear(q, scale, zero, cfg.bits, cfg.group_size, input_scale=s)
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, new)
        fp32 += w.numel() * 4
        packed += new.nbytes
    return QuantReport(label=cfg.label, bits=cfg.bits, group_size=cfg.group_size, method=cfg.method,
                       layers=len(linears), fp32_bytes=fp32, packed_bytes=packed, awq_alpha=alphas)


def quantized(model: nn.Module, cfg: WeightQuantConfig, calib: Calibration | None = None) -> tuple[nn.Module, QuantReport]:
    """A quantised deep copy of ``model`` (the original is untouched); returns (copy, report)."""
    m = copy.deepcopy(model)
    return m, quantize_(m, cfg, calib)


def cast(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A deep copy of ``model`` with all floating-point weights in ``dtype`` (e.g. torch.bfloat16)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype={dtype!r} must be a floating-point torch.dtype")
    m = copy.deepcopy(model).to(dtype)
    for name in ("rope_cos", "rope_sin"):  # rotary tables stay float32 for accuracy
        if hasattr(m, name):
            setattr(m, name, getattr(model, name))
    return m


def linear_weight_bytes(model: nn.Module) -> int:
    """Bytes of the (possibly packed) weights of the linear layers in ``model.layers``, scales included."""
    total = 0
    for m in model.layers.modules():
        if isinstance(m, QuantLinear):
            total += m.nbytes
        elif isinstance(m, nn.Linear):
            total += m.weight.nbytes
    return total
