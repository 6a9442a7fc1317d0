"""What a model costs: MACs, FLOPs, parameters, sizes at each precision, activation and peak memory.

Convention, stated once and used everywhere: a **MAC** is one multiply-accumulate; **FLOPs = 2 × MACs**
for the multiply-accumulate operators counted here (convolutions, matrix products, attention). This is
the convention torchvision's ``_ops`` metadata uses for MACs ("GFLOPS" in its docs are MACs). Element-wise
work (activations, additions, normalisation, softmax, pooling) is *not* counted as MACs; every such
operator that ran is listed in ``CostReport.uncounted`` so nothing disappears silently.

``count(model, example_inputs)`` runs one forward pass under PyTorch's ``FlopCounterMode`` (functional ops
and ``@`` included) with formulas added for the fused CPU attention kernels PyTorch does not count
(``nn.MultiheadAttention``'s inference fast path, CPU ``scaled_dot_product_attention``), and tracks the
bytes of live tensors in the same pass. Introduced in notebook 03.
"""
from __future__ import annotations

import io
import math
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    # results
    "CostReport", "ThopCount", "SizeReport", "MemoryReport", "Roofline",
    # verbs
    "count", "count_onnx", "count_named", "size", "memory", "peak_tensor_bytes", "roofline", "thop_count",
    # data
    "PRECISION_BYTES",
]

# bytes per weight element at each storage precision (INT4 packs two per byte)
PRECISION_BYTES: dict[str, float] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "int4": 0.5}

# aten operators that move or allocate data without arithmetic: neither MACs nor "uncounted work"
_NO_ARITHMETIC = {
    "view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "cat", "stack", "clone",
    "contiguous", "detach", "slice", "select", "split", "split_with_sizes", "chunk", "unsqueeze",
    "squeeze", "flatten", "empty", "empty_like", "zeros", "zeros_like", "ones", "ones_like", "new_empty",
    "new_zeros", "new_ones", "copy_", "_to_copy", "to", "as_strided", "alias", "lift_fresh", "unbind",
    "constant_pad_nd", "index", "index_select", "gather", "full", "full_like", "arange", "fill_",
    "zero_", "_reshape_alias", "expand_as", "roll", "narrow", "repeat", "flip", "pixel_shuffle",
    "channel_shuffle", "native_channel_shuffle", "unfold", "sym_size", "is_same_size", "masked_fill",
    "_local_scalar_dense", "item", "scalar_tensor", "empty_strided", "pad", "_pad_enum", "linspace",
    "_unsafe_index", "index_put_", "diagonal", "tril", "triu", "rand", "randn", "bernoulli_",
}


# ----------------------------------------------------------------------------- results


@dataclass
class CostReport:
    """MACs, FLOPs and parameters of one forward pass; ``layers`` is the per-leaf-module table."""

    model: str
    input_shape: tuple[int, ...]
    macs: int                                      # multiply-accumulates
    flops: int                                     # = 2 × macs (multiply-accumulate ops only)
    params: int                                    # unique parameters
    layers: list[dict[str, Any]]                   # name, type, macs, params, output_shape
    uncounted: dict[str, int]                      # aten op -> calls: arithmetic not counted as MACs
    activation_bytes: int = 0                      # bytes of every tensor the pass allocated (sum)
    peak_activation_bytes: int = 0                 # most bytes alive at once during the pass
    convention: str = "FLOPs = 2 x MACs; element-wise ops not counted (listed in `uncounted`)"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> "pd.DataFrame":
        """The per-layer table as a DataFrame, with each layer's share of the MACs."""
        import pandas as pd

        df = pd.DataFrame(self.layers)
        if len(df):
            df["share_%"] = 100 * df["macs"] / max(self.macs, 1)
        return df

    def __str__(self) -> str:
        return (f"{self.model} {self.input_shape}: {self.macs / 1e9:.3f} GMACs = {self.flops / 1e9:.3f} GFLOPs, "
                f"{self.params / 1e6:.2f} M params; not counted: {len(self.uncounted)} element-wise op kinds")


@dataclass
class ThopCount:
    """MACs and parameters as the thop package counts them (module hooks only), for comparison with :func:`count`."""

    macs: int
    params: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SizeReport:
    """Bytes of a model's weights at each storage precision, and the size of its real saved file.

    ``bytes[p]`` stores every weight matrix / kernel (parameters with ≥ 2 dims) at precision ``p`` and keeps
    biases, norms and buffers in FP32 for the integer formats, as real INT8/INT4 deployments do. Scales are
    included: INT8 per output channel (one FP32 scale each), INT4 per group of ``group_size`` inputs (one
    FP16 scale each, as in GGUF Q4_0). ``naive_bytes[p]`` is simply params × bytes-per-element.
    """

    params: int
    buffers: int
    bytes: dict[str, int]
    naive_bytes: dict[str, int]
    scale_bytes: dict[str, int]
    file_bytes: int                                # torch.save(state_dict) of the FP32 model
    group_size: int = 32

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def mb(self, precision: str = "fp32") -> float:
        return self.bytes[precision] / 1e6


@dataclass
class MemoryReport:
    """Memory of one forward pass at one batch size, bytes."""

    batch: int
    device: str
    weights_bytes: int
    input_bytes: int
    activation_bytes: int                          # every tensor allocated by the pass, summed
    peak_activation_bytes: int                     # most allocated at once (above weights and inputs)
    method: str                                    # how the peak was measured

    @property
    def peak_bytes(self) -> int:
        return self.weights_bytes + self.input_bytes + self.peak_activation_bytes

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "peak_bytes": self.peak_bytes}


@dataclass
class Roofline:
    """A machine's roofline: attainable GFLOP/s = min(peak, bandwidth × arithmetic intensity)."""

    peak_gflops: float
    bandwidth_gbs: float
    label: str = ""

    @property
    def ridge(self) -> float:
        """Arithmetic intensity (FLOP/byte) where compute and memory limits meet."""
        return self.peak_gflops / self.bandwidth_gbs

    def attainable_gflops(self, intensity: float) -> float:
        return min(self.peak_gflops, self.bandwidth_gbs * intensity)

    def predict_ms(self, flops: float, bytes_moved: float) -> float:
        """Lower bound on run time: the slower of compute at peak and traffic at full bandwidth, ms."""
        return 1e3 * max(flops / (self.peak_gflops * 1e9), bytes_moved / (self.bandwidth_gbs * 1e9))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ridge": self.ridge}


# ----------------------------------------------------------------------------- primitives


def _mha_flops(query, key, value, embed_dim, num_heads, *args, out_shape=None, **kwargs) -> int:
    """nn.MultiheadAttention's fused inference kernel: in-projections, QKᵀ, AV, out-projection."""
    b, lq, e = query
    lk = key[1]
    macs = b * lq * e * e + 2 * b * lk * e * e      # q, k, v projections
    macs += 2 * b * lq * lk * e                      # QKᵀ and attention × V over all heads
    macs += b * lq * e * e                           # output projection
    return 2 * macs


def _sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """Scaled dot-product attention: QKᵀ and AV, (B, H, L, E) layout."""
    *batch, lq, e = query
    lk, ev = key[-2], value[-1]
    return 2 * math.prod(batch) * lq * lk * (e + ev)


def _formulas() -> dict[Any, Any]:
    aten = torch.ops.aten
    extra: dict[Any, Any] = {aten._native_multi_head_attention: _mha_flops}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        extra[aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_flops
    return extra


def _tracker():
    """A dispatch mode that lists every aten op and tracks live tensor bytes (views share storage)."""
    class Tracker(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.calls: dict[str, int] = {}
            self.live: dict[int, list[int]] = {}   # storage ptr -> [bytes, tensors alive]
            self.now = self.peak = self.total = 0

        def _release(self, ptr: int) -> None:
            entry = self.live.get(ptr)
            if entry is not None:
                entry[1] -= 1
                if entry[1] == 0:
                    self.now -= entry[0]
                    del self.live[ptr]

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            self.calls[name] = self.calls.get(name, 0) + 1
            inputs = {a.untyped_storage().data_ptr() for a in tree_flatten((args, kwargs))[0]
                      if isinstance(a, torch.Tensor) and a.device.type != "meta"}
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor) and t.device.type != "meta":
                    st = t.untyped_storage()
                    ptr = st.data_ptr()
                    if ptr in inputs and ptr not in self.live:
                        continue  # a view of, or in-place write to, a tensor made before the pass
                    if ptr not in self.live:
                        self.live[ptr] = [st.nbytes(), 0]
                        self.now += st.nbytes()
                        self.total += st.nbytes()
                        self.peak = max(self.peak, self.now)
                    self.live[ptr][1] += 1
                    weakref.finalize(t, self._release, ptr)
            return out

    return Tracker()


def _as_tuple(example_inputs: Any) -> tuple:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in example_inputs):
        return tuple(example_inputs)
    raise TypeError(f"example_inputs must be a tensor or a tuple of tensors, got {type(example_inputs).__name__}")


def _forward(model: torch.nn.Module, inputs: tuple) -> Any:
    try:
        with torch.no_grad():
            return model(*inputs)
    except (RuntimeError, ValueError, AssertionError, IndexError) as e:
        shapes = [tuple(t.shape) for t in inputs]
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(f"example_inputs of shape {shapes} do not fit {type(model).__name__}: {first}") from None


# ----------------------------------------------------------------------------- verbs


def count(model: torch.nn.Module, example_inputs: Any, *, name: str | None = None) -> CostReport:
    """Count MACs, FLOPs and parameters of ``model(*example_inputs)``, with a per-layer table.

    Returns a :class:`CostReport` (MACs, FLOPs = 2 × MACs, unique parameters, the element-wise ops that
    were not counted, and the bytes the pass allocated). The model runs once under ``torch.no_grad``
    in the mode it is in (call ``.eval()`` first for inference costs).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = _as_tuple(example_inputs)
    leaves = {n: m for n, m in model.named_modules() if n and not any(True for _ in m.children())}
    shapes: dict[str, tuple] = {}

    def hook(n):
        def record(_m, _i, out):
            t = out[0] if isinstance(out, (tuple, list)) and out else out
            if isinstance(t, torch.Tensor):
                shapes[n] = tuple(t.shape)
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in leaves.items()]
    fc = FlopCounterMode(display=False, custom_mapping=_formulas())
    tracker = _tracker()
    try:
        with fc, tracker:
            _forward(model, inputs)
    finally:
        for h in handles:
            h.remove()
    per_module = fc.get_flop_counts()
    root = type(model).__name__
    layers, in_leaves = [], 0
    for n, m in leaves.items():
        macs = sum(per_module.get(f"{root}.{n}", {}).values()) // 2
        in_leaves += macs
        layers.append({"name": n, "type": type(m).__name__, "macs": int(macs),
                       "params": sum(p.numel() for p in m.parameters(recurse=False)),
                       "output_shape": shapes.get(n)})
    total = fc.get_total_flops() // 2
    if total - in_leaves:
        layers.append({"name": "(outside leaf modules)", "type": "functional", "macs": int(total - in_leaves),
                       "params": 0, "output_shape": None})
    counted = {p.__name__ for p in fc.flop_registry}
    uncounted = {op: k for op, k in sorted(tracker.calls.items())
                 if op not in counted and op.rstrip("_") not in _NO_ARITHMETIC and op not in _NO_ARITHMETIC}
    return CostReport(
        model=name or type(model).__name__, input_shape=tuple(inputs[0].shape), macs=int(total),
        flops=int(2 * total), params=sum(p.numel() for p in model.parameters()), layers=layers,
        uncounted=uncounted, activation_bytes=tracker.total, peak_activation_bytes=tracker.peak)


def thop_count(model: torch.nn.Module, example_inputs: Any) -> ThopCount:
    """MACs and parameters as thop counts them — module hooks only, so functional matmuls are missed.

    Runs on a deep copy: thop adds counter buffers to every module it visits. Returns a :class:`ThopCount`;
    notebook 03 sets it beside :func:`count`.
    """
    import copy

    from thop import profile

    inputs = _as_tuple(example_inputs)
    with torch.no_grad():
        macs, params = profile(copy.deepcopy(model), inputs=inputs, verbose=False)
    return ThopCount(int(macs), int(params))


def size(model: torch.nn.Module, *, group_size: int = 32) -> SizeReport:
    """Bytes of ``model``'s weights at FP32/FP16/BF16/INT8/INT4 (scales included) and of its saved file.

    Introduced in notebook 03 (the source material's ResNet-50: ~102 / 51 / 26 MB at FP32 / FP16 / INT8).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if group_size < 1:
        raise ValueError(f"group_size={group_size} must be >= 1")
    params = list(model.parameters())
    bufs = list(model.buffers())
    n_params = sum(p.numel() for p in params)
    float_bufs = sum(b.numel() for b in bufs if b.is_floating_point())
    other_buf_bytes = sum(b.numel() * b.element_size() for b in bufs if not b.is_floating_point())
    matrices = [p for p in params if p.dim() >= 2]
    in_matrices = sum(p.numel() for p in matrices)
    rest = n_params - in_matrices + float_bufs        # biases, norms, float buffers
    scales = {
        "int8": sum(4 * p.shape[0] for p in matrices),
        "int4": sum(2 * p.shape[0] * math.ceil(p[0].numel() / group_size) for p in matrices),
    }
    out: dict[str, int] = {}
    for prec, nbytes in PRECISION_BYTES.items():
        if prec in scales:
            out[prec] = int(math.ceil(in_matrices * nbytes)) + scales[prec] + 4 * rest + other_buf_bytes
        else:
            out[prec] = int(nbytes * (n_params + float_bufs)) + other_buf_bytes
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return SizeReport(
        params=n_params, buffers=sum(b.numel() for b in bufs), bytes=out,
        naive_bytes={p: int(math.ceil(n_params * b)) for p, b in PRECISION_BYTES.items()},
        scale_bytes={"int8": scales["int8"], "int4": scales["int4"]},
        file_bytes=buf.getbuffer().nbytes, group_size=group_size)


def memory(model: torch.nn.Module, example_inputs: Any) -> MemoryReport:
    """Weights, inputs, total and peak activation memory of one forward pass, bytes.

    On CPU the peak comes from the kit's own accounting of live tensor storage during the pass (a
    dispatch mode that adds each new storage and subtracts it when freed); on a CUDA device from
    ``torch.cuda.max_memory_allocated`` around the pass. Introduced in notebook 03.
    """
    inputs = _as_tuple(example_inputs)
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    in_bytes = sum(t.numel() * t.element_size() for t in inputs)
    dev = inputs[0].device
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    tracker = _tracker()
    with tracker:
        _forward(model, inputs)
    peak, method = tracker.peak, "live tensor storage during the pass (mclab accounting)"
    if cuda:
        torch.cuda.synchronize(dev)
        peak, method = torch.cuda.max_memory_allocated(dev) - base, "torch.cuda.max_memory_allocated"
    return MemoryReport(int(inputs[0].shape[0]), str(dev), weights, in_bytes, tracker.total, peak, method)


def peak_tensor_bytes(fn: "Callable[[], Any]") -> tuple[Any, int]:
    """Run ``fn()`` under the kit's live-storage accounting; returns (its result, peak bytes of tensors it
    created that were alive at once). Counts what PyTorch allocates (a KV cache, activations), not what the
    allocator keeps cached, so it does not depend on what ran before. Used by notebook 13."""
    tracker = _tracker()
    with tracker:
        result = fn()
    return result, tracker.peak


def roofline(peak_gflops: float, bandwidth_gbs: float, label: str = "") -> Roofline:
    """A :class:`Roofline` from measured peak compute (GFLOP/s) and memory bandwidth (GB/s)."""
    for arg, v in (("peak_gflops", peak_gflops), ("bandwidth_gbs", bandwidth_gbs)):
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{arg}={v!r} must be a positive number")
    return Roofline(float(peak_gflops), float(bandwidth_gbs), label)


def count_named(model: str, input_shape: tuple[int, ...] | None = None, batch: int = 1) -> CostReport:
    """:func:`count` for a torchvision model name, or :func:`count_onnx` for an ``.onnx`` path (``mclab flops``).

    ``input_shape`` is without the batch (C, H, W); the default is the resolution torchvision evaluated
    the model at.
    """
    if batch < 1:
        raise ValueError(f"batch={batch} must be >= 1")
    if input_shape is not None and (not input_shape or any(int(d) < 1 for d in input_shape)):
        raise ValueError(f"input_shape={tuple(input_shape)} must be positive sizes without the batch, e.g. 3,224,224")
    if str(model).endswith(".onnx"):
        return count_onnx(model, None if input_shape is None else (batch, *input_shape))

    from .models import zoo

    zm = zoo(model)
    shape = (batch, *(input_shape or zm.input_shape[1:]))
    return count(zm.module, torch.randn(shape), name=model)


# ----------------------------------------------------------------------------- ONNX files

_ONNX_MOVES = {"Reshape", "Flatten", "Transpose", "Concat", "Split", "Slice", "Gather", "Shape", "Squeeze",
               "Unsqueeze", "Identity", "Constant", "ConstantOfShape", "Cast", "Expand", "Pad", "Dropout"}


def count_onnx(path: str | Path, input_shape: tuple[int, ...] | None = None) -> CostReport:
    """MACs and parameters of an ``.onnx`` file: Conv, ConvTranspose, Gemm and MatMul counted from shapes.

    ``input_shape`` (with batch) fixes dynamic dimensions of the first input; default batch 1.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper, shape_inference

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"model file {str(p)!r} does not exist")
    try:
        model = onnx.load(str(p))
        onnx.checker.check_model(model)
    except Exception as e:  # onnx raises DecodeError / ValidationError / its own types for corrupt files
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ValueError(f"cannot read {str(p)!r} as an ONNX model: {first}") from None
    g = model.graph
    inits = {i.name for i in g.initializer}
    graph_inputs = [i for i in g.input if i.name not in inits]
    if not graph_inputs:
        raise ValueError(f"{str(p)!r} has no graph inputs")
    dims = graph_inputs[0].type.tensor_type.shape.dim
    declared = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if input_shape is not None:
        if len(input_shape) != len(declared) or any(d and d != s for d, s in zip(declared, input_shape, strict=True)):
            raise ValueError(f"input_shape={tuple(input_shape)} does not fit {p.name}: it declares {declared}")
        shape = tuple(int(s) for s in input_shape)
    else:
        if any(d is None for d in declared[1:]):
            raise ValueError(f"{p.name} has dynamic dims {declared}; pass input_shape")
        shape = (declared[0] or 1, *declared[1:])
    for d, s in zip(dims, shape, strict=True):
        d.ClearField("dim_param")
        d.dim_value = s
    model = shape_inference.infer_shapes(model)
    known: dict[str, tuple[int, ...]] = {}
    for vi in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        known[vi.name] = tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
    weights = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for i in g.initializer:
        known[i.name] = tuple(i.dims)
    layers, uncounted, total = [], {}, 0
    for node in g.node:
        ins = [known.get(n) for n in node.input]
        out = known.get(node.output[0]) if node.output else None
        macs = 0
        if node.op_type in ("Conv", "ConvTranspose") and ins[1] and out:
            w = ins[1]  # (Cout, Cin/groups, kH, kW) for Conv
            per_out = math.prod(w[1:]) if node.op_type == "Conv" else w[1] * math.prod(w[2:])
            macs = math.prod(out) * per_out if node.op_type == "Conv" else math.prod(ins[0]) * per_out
        elif node.op_type in ("Gemm", "MatMul") and ins[0] and ins[1] and out:
            trans_a = any(a.name == "transA" and a.i for a in node.attribute)
            k = ins[0][-2] if (node.op_type == "Gemm" and trans_a) else ins[0][-1]
            macs = math.prod(out) * k
        elif node.op_type not in _ONNX_MOVES:
            uncounted[node.op_type] = uncounted.get(node.op_type, 0) + 1
        total += macs
        layer_params = sum(int(np.prod(weights[n].shape)) for n in node.input if n in weights)
        layers.append({"name": node.name or node.output[0], "type": node.op_type, "macs": int(macs),
                       "params": layer_params, "output_shape": out})
    return CostReport(model=p.name, input_shape=shape, macs=int(total), flops=int(2 * total),
                      params=int(sum(int(np.prod(w.shape)) for w in weights.values() if w.dtype.kind == "f")),
                      layers=layers, uncounted=dict(sorted(uncounted.items())))
