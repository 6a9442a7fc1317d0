"""Weight-only quantisation of the language model's linear layers: INT8/INT4, group-wise, packed.

Three algorithms choose the integers, all producing the same packed format (so memory is equal
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

The arithmetic is :mod:`mclab.quant`'s, the one implementation under every quantiser in the kit:
group-wise scales (stored in float16, rounded up) and zero points from
:func:`mclab.quant.qparams_from_range`, the integers from :func:`mclab.quant.quantize`, the floats
from :func:`mclab.quant.dequantize`, two 4-bit integers per byte from :func:`mclab.quant.pack_int4`.
This module chooses *which* integers, and stores them. Introduced in notebook 13.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..quant.primitives import (
    QParams,
    dequantize,
    observe_range,
    pack_int4,
    qparams_from_range,
    quantize,
    unpack_int4,
)
from .model import ModelCopy

__all__ = [
    # config and results
    "ALGORITHMS", "LLMQuantConfig", "LayerInputs", "QuantReport",
    # the packed layer
    "QuantLinear",
    # model-level verbs
    "quant_linears", "capture_inputs", "quantize_", "quantized", "cast", "linear_weight_bytes",
]

ALGORITHMS = ("rtn", "awq", "gptq")


@dataclass(frozen=True)
class LLMQuantConfig:
    """How to quantise the LLM's linear weights: INT4 or INT8 integers stored packed, one asymmetric scale (float16)
    and zero point per group of input channels, the integers chosen by ``algorithm`` (see the module docstring).

    Its sibling :class:`mclab.quant.WeightOnlyConfig` fake-quantises the Conv/Linear weights of any model at any
    width from 2 to 16 bits to *measure* the error; this config really *stores* the packed format, so memory and
    decode speed change too. Both take their scales and integers from :mod:`mclab.quant`."""

    bits: int = 4  # integer width: 4 (two weights per byte) or 8
    group_size: int = 32  # input channels sharing one scale and zero-point; must divide each layer's width
    algorithm: str = "rtn"  # "rtn" | "awq" | "gptq": how the integers are chosen
    awq_grid: int = 20  # AWQ-style search tries alpha = 0, 1/grid, ..., 1 (alpha = 0 is plain RTN)
    awq_clip_grid: int = 10  # AWQ-style clipping tries ranges 1, 1 - 0.5/grid, ..., 0.5 of each group's; 0 = none
    gptq_damp: float = 0.01  # GPTQ's percdamp: this fraction of the mean Hessian diagonal is added for stability

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise ValueError(f"bits={self.bits!r} is not supported; allowed: 4 or 8")
        if not isinstance(self.group_size, int) or isinstance(self.group_size, bool) or self.group_size < 2:
            raise ValueError(f"group_size={self.group_size!r} must be an int >= 2 (e.g. 32, 64, 128)")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm={self.algorithm!r} is not known; allowed: {', '.join(ALGORITHMS)}")
        if not isinstance(self.awq_grid, int) or self.awq_grid < 1:
            raise ValueError(f"awq_grid={self.awq_grid!r} must be a positive int")
        if not isinstance(self.awq_clip_grid, int) or self.awq_clip_grid < 0:
            raise ValueError(f"awq_clip_grid={self.awq_clip_grid!r} must be an int >= 0 (0 = no clipping search)")
        if not 0 <= self.gptq_damp < 1:
            raise ValueError(f"gptq_damp={self.gptq_damp} must be in [0, 1)")

    @property
    def label(self) -> str:
        return f"INT{self.bits} {self.algorithm.upper()} g{self.group_size}"


# ----------------------------------------------------------------------------- group-wise parameters


def _check_groups(width: int, group_size: int, what: str = "weight") -> None:
    if width % group_size:
        fits = ", ".join(str(g) for g in (32, 64, 128) if width % g == 0) or "none of 32/64/128"
        raise ValueError(f"group_size={group_size} does not divide the {what} width {width}; "
                         f"allowed: a divisor of {width} (e.g. {fits})")


def _group_qparams(w: torch.Tensor, bits: int, group_size: int, clip: torch.Tensor | float | None = None) -> QParams:
    """:func:`mclab.quant.qparams_from_range` per group of ``group_size`` input channels of ``w`` (out, in): the range
    [min, max] of each group (multiplied by ``clip``, (out, in/g) or a number, when given) onto 0 ... 2^bits - 1,
    the scale stored in float16. Scales and zero points have shape (out, in/g)."""
    lo, hi = observe_range(w, axis=1, group_size=group_size)  # (out, in/g) each
    if clip is not None:  # a narrower range: finer steps, and values beyond it saturate
        lo, hi = lo * clip, hi * clip
    return qparams_from_range(lo, hi, bits=bits, axis=1, group_size=group_size, scale_dtype=torch.float16)


# ----------------------------------------------------------------------------- the packed layer


class QuantLinear(nn.Module):
    """A bias-free linear layer whose weight is stored packed: ``y = dequantize(W_q) @ (x / input_scale)``.

    Built from the integers ``q`` (out, in) uint8 and their group-wise :class:`mclab.quant.QParams`. Buffers:
    ``qweight`` uint8 (out, in/2 for 4-bit, in for 8-bit), ``scales`` fp16 (out, in/g), ``zeros`` uint8
    (out, in/g), optional ``input_scale`` fp16 (in,) from the AWQ-style search. The weight is dequantised on
    every call (PyTorch has no fused low-bit CPU kernel for this layout; llama.cpp's kernels dequantise inside
    the dot product instead).
    """

    def __init__(self, q: torch.Tensor, qp: QParams, input_scale: torch.Tensor | None = None) -> None:
        super().__init__()
        if not isinstance(qp, QParams):
            raise TypeError(f"qp must be a mclab.quant.QParams, got {type(qp).__name__}")
        if qp.bits not in (4, 8) or qp.signed or qp.axis != 1 or qp.group_size is None:
            raise ValueError(f"QuantLinear stores unsigned 4- or 8-bit integers in groups along the input axis (1); "
                             f"got bits={qp.bits}, signed={qp.signed}, axis={qp.axis}, group_size={qp.group_size}")
        if q.dim() != 2 or q.dtype != torch.uint8:
            raise ValueError(f"q must be uint8 (out, in), got {q.dtype} {tuple(q.shape)}")
        self.out_features, self.in_features = q.shape
        self.bits, self.group_size = qp.bits, qp.group_size
        self.register_buffer("qweight", pack_int4(q) if self.bits == 4 else q)
        self.register_buffer("scales", qp.scale.half())
        self.register_buffer("zeros", qp.zero_point.to(torch.uint8))
        self.register_buffer("input_scale", None if input_scale is None else input_scale.half())

    def qparams(self) -> QParams:
        """The stored group-wise scales (fp16) and zero points as :class:`mclab.quant.QParams`."""
        return QParams(self.scales, self.zeros.long(), self.bits, axis=1, group_size=self.group_size)

    def integers(self) -> torch.Tensor:
        """The stored integers, unpacked: uint8 (out, in)."""
        return unpack_int4(self.qweight) if self.bits == 4 else self.qweight

    def weight_dequantized(self) -> torch.Tensor:
        """The effective float32 weight (out, in), input scaling folded in."""
        w = dequantize(self.integers(), self.qparams())
        return w if self.input_scale is None else w / self.input_scale.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = dequantize(self.integers(), self.qparams()).to(x.dtype)  # (out, in)
        if self.input_scale is not None:
            x = x / self.input_scale.to(x.dtype)
        return F.linear(x, w)

    @property
    def nbytes(self) -> int:
        """Bytes of everything stored: packed integers, scales, zero-points, input scale."""
        return sum(b.nbytes for b in self.buffers())

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, bits={self.bits}, group_size={self.group_size}"


# ----------------------------------------------------------------------------- calibration inputs and algorithms


@dataclass
class LayerInputs:
    """Inputs seen by each linear layer on calibration text (:func:`capture_inputs`): ``inputs[name]`` is
    (n_tokens, in_features) float32. AWQ weighs input channels by them; GPTQ builds its Hessian from them."""

    inputs: dict[str, torch.Tensor]
    n_tokens: int

    def hessian(self, name: str) -> torch.Tensor:
        """GPTQ's H = 2 X^T X / n for layer ``name`` (in, in)."""
        x = self.inputs[name].double()
        return (2 * x.T @ x / len(x)).float()

    def as_dict(self) -> dict[str, Any]:
        return {"n_tokens": self.n_tokens, "layers": {k: list(v.shape) for k, v in self.inputs.items()}}


def quant_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The linear layers a quantiser replaces: those inside ``model.layers`` (the transformer blocks), by their
    dotted name from the model's root (``"layers.0.attention.wq"``), in module order. Embeddings and the output
    head stay in float. Used by :func:`quantize_`, :func:`capture_inputs` and :func:`mclab.llm.w8a8`."""
    layers = getattr(model, "layers", None)
    if layers is None:
        raise TypeError(f"model must be a TinyLlama-like module with .layers, got {type(model).__name__}")
    return {f"layers.{n}": m for n, m in layers.named_modules() if isinstance(m, nn.Linear)}


@torch.inference_mode()
def capture_inputs(model: nn.Module, tokens, n_tokens: int = 2048, seq_len: int = 256) -> LayerInputs:
    """Run ``n_tokens`` of ``tokens`` (windows of ``seq_len``) through ``model`` and keep every linear layer's
    inputs; returns :class:`LayerInputs` for the AWQ and GPTQ algorithms."""
    t = torch.as_tensor(tokens, dtype=torch.int64)[: n_tokens]
    n = len(t) // seq_len
    if n < 1:
        raise ValueError(f"need at least seq_len={seq_len} calibration tokens, got {len(t)}")
    x = t[: n * seq_len].view(n, seq_len)
    linears = quant_linears(model)
    seen: dict[str, list[torch.Tensor]] = {k: [] for k in linears}

    def keep(k: str):
        return lambda mod, args: seen[k].append(args[0].reshape(-1, args[0].shape[-1]).float())

    hooks = [m.register_forward_pre_hook(keep(k)) for k, m in linears.items()]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return LayerInputs(inputs={k: torch.cat(v) for k, v in seen.items()}, n_tokens=n * seq_len)


def _rtn(w: torch.Tensor, cfg: LLMQuantConfig) -> tuple[torch.Tensor, QParams]:
    """Round to nearest: (integers (out, in) uint8, their group-wise parameters)."""
    qp = _group_qparams(w, cfg.bits, cfg.group_size)
    return quantize(w, qp), qp


def _awq(w: torch.Tensor, x: torch.Tensor, cfg: LLMQuantConfig) -> tuple[torch.Tensor, QParams, torch.Tensor, float]:
    """Search alpha for s = mean|x|^alpha; returns (integers of w * s, their parameters, s, best alpha)."""
    x_mean = x.abs().mean(0).clamp(min=1e-5)  # (in,) salience of each input channel
    y_ref = x @ w.T
    best = None
    for i in range(cfg.awq_grid + 1):
        alpha = i / cfg.awq_grid
        s = x_mean.pow(alpha)
        s = (s / (s.max() * s.min()).sqrt()).half().float()  # centred around 1; stored in fp16
        q, qp = _rtn(w * s, cfg)
        w_eff = dequantize(q, qp) / s
        err = (x @ w_eff.T - y_ref).pow(2).mean().item()
        if best is None or err < best[0]:
            best = (err, q, qp, s, alpha)
    _, q, qp, s, alpha = best
    if cfg.awq_clip_grid:
        qp = _group_qparams(w * s, cfg.bits, cfg.group_size, _awq_clip(w * s, x / s, cfg))
        q = quantize(w * s, qp)
    return q, qp, s, alpha


def _awq_clip(w: torch.Tensor, x: torch.Tensor, cfg: LLMQuantConfig, max_tokens: int = 2048) -> torch.Tensor:
    """Per (output, group) range factor in {1, ..., 0.5} minimising that group's error on the outputs x @ w.T."""
    g = cfg.group_size
    x = x[:: max(1, len(x) // max_tokens)].unflatten(-1, (-1, g))  # (n, groups, g)
    best = torch.ones(w.shape[0], w.shape[1] // g)
    best_err = torch.full_like(best, float("inf"))
    for r in torch.linspace(1.0, 0.5, cfg.awq_clip_grid + 1).tolist():
        qp = _group_qparams(w, cfg.bits, g, r)
        d = (w - dequantize(quantize(w, qp), qp)).unflatten(-1, (-1, g))
        err = torch.einsum("nGk,oGk->nGo", x, d).pow(2).mean(0).T  # (out, groups)
        better = err < best_err
        best_err, best = torch.where(better, err, best_err), torch.where(better, r, best)
    return best


def _gptq(w: torch.Tensor, H: torch.Tensor, cfg: LLMQuantConfig) -> tuple[torch.Tensor, QParams]:
    """GPTQ column by column with group parameters taken at each group start; returns (integers, parameters)."""
    W = w.clone().float()
    H = H.clone()
    dead = H.diagonal() == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += cfg.gptq_damp * H.diagonal().mean() * torch.eye(len(H))
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    out, n_in = W.shape
    g = cfg.group_size
    Q = torch.zeros(out, n_in, dtype=torch.uint8)
    groups: list[QParams] = []
    for i in range(n_in):
        if i % g == 0:
            groups.append(_group_qparams(W[:, i:i + g], cfg.bits, g))  # scales and zeros (out, 1)
            grp = groups[-1]  # the current group's parameters, per output channel, for one column at a time
            col_qp = QParams(grp.scale[:, 0], grp.zero_point[:, 0], grp.bits, axis=0)
        col = W[:, i]
        q = quantize(col, col_qp)  # (out,)
        err = (col - dequantize(q, col_qp)) / Hinv[i, i]
        W[:, i + 1:] -= err[:, None] * Hinv[i, i + 1:][None, :]
        Q[:, i] = q
    scale = torch.cat([p.scale for p in groups], 1)
    zero = torch.cat([p.zero_point for p in groups], 1)
    return Q, QParams(scale, zero, cfg.bits, axis=1, group_size=g)


# ----------------------------------------------------------------------------- model-level


@dataclass
class QuantReport:
    """What :func:`quantize_` did: bytes of the linear weights before (FP32) and after (packed, scales included)."""

    label: str
    bits: int
    group_size: int
    algorithm: str
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


def quantize_(model: nn.Module, config: LLMQuantConfig, inputs: LayerInputs | None = None) -> QuantReport:
    """Replace, in place, every linear layer in ``model.layers`` by a :class:`QuantLinear`; returns a
    :class:`QuantReport`.

    ``awq`` and ``gptq`` need ``inputs`` from :func:`capture_inputs` (run on the float model).
    """
    if not isinstance(config, LLMQuantConfig):
        raise TypeError(f"config must be a LLMQuantConfig, got {type(config).__name__}")
    if config.algorithm != "rtn" and inputs is None:
        raise ValueError(f"algorithm={config.algorithm!r} needs calibration inputs: pass "
                         f"inputs=capture_inputs(model, tokens)")
    if inputs is not None and not isinstance(inputs, LayerInputs):
        raise TypeError(f"inputs must be LayerInputs from capture_inputs, got {type(inputs).__name__}")
    linears = quant_linears(model)
    for name, lin in linears.items():
        _check_groups(lin.in_features, config.group_size, what=f"{name} input")
    fp32 = packed = 0
    alphas: dict[str, float] = {}
    for name, lin in linears.items():
        w = lin.weight.detach().float()
        s = None
        with torch.no_grad():
            if config.algorithm == "rtn":
                q, qp = _rtn(w, config)
            elif config.algorithm == "awq":
                q, qp, s, alphas[name] = _awq(w, inputs.inputs[name], config)
            else:
                q, qp = _gptq(w, inputs.hessian(name), config)
        new = QuantLinear(q, qp, input_scale=s)
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, new)
        fp32 += w.numel() * 4
        packed += new.nbytes
    return QuantReport(label=config.label, bits=config.bits, group_size=config.group_size, algorithm=config.algorithm,
                       layers=len(linears), fp32_bytes=fp32, packed_bytes=packed, awq_alpha=alphas)


def quantized(model: nn.Module, config: LLMQuantConfig, inputs: LayerInputs | None = None) -> ModelCopy:
    """A quantised deep copy of ``model`` (the original is untouched): a :class:`~mclab.llm.model.ModelCopy`
    (``.model``, ``.report``: a :class:`QuantReport`)."""
    m = copy.deepcopy(model)
    return ModelCopy(m, quantize_(m, config, inputs))


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
