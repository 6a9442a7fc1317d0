"""What a PyTorch compiler does to a model, made visible: the graph ``torch.export`` captures (:func:`export_ops`),
the guards Dynamo checks before reusing a compiled graph (:func:`guard_kinds`), the kernels Inductor generated
(:func:`kernels`), recompilation on new shapes (:func:`recompiles`), operator fusion by hand (:func:`fold_bn`,
on :func:`conv_bn_relu`), and torchao's INT8 rewrites of Linear layers (:func:`torchao_int8`).

The compile itself (its cost, graph breaks, ``freezing``, PT2E INT8) is :mod:`mclab.runtimes.torch_compile`.
Introduced in notebook 12.
"""
from __future__ import annotations

import copy
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .quant import fold_batchnorm

__all__ = ["ExportedGraph", "export_ops", "guard_kinds", "Kernel", "kernels", "RecompileStep", "recompiles",
           "conv_bn_relu", "fold_bn", "TORCHAO_INT8", "torchao_int8"]


@dataclass
class ExportedGraph:
    """What ``torch.export`` captured: ATen operator counts before and after decomposition to Core ATen, the
    symbolic ranges of dynamic dimensions, and the program itself."""

    aten_ops: dict[str, int]        # operator -> count in the exported graph (ATen, as traced)
    core_aten_ops: dict[str, int]   # the same after run_decompositions() (Core ATen: what backends implement)
    inputs: dict[str, int]          # input kind (PARAMETER, BUFFER, USER_INPUT …) -> count
    input_shape: list[Any]          # the user input's shape: ints, or a symbol (s0 …) where dynamic
    ranges: dict[str, str]          # symbol -> its value range, e.g. {"s0": "VR[1, 64]"}
    program: Any                    # the torch.export.ExportedProgram


def _op_counts(graph: Any) -> dict[str, int]:
    c = Counter(str(n.target).replace("<built-in function getitem>", "getitem") for n in graph.nodes
                if n.op == "call_function")
    return dict(c.most_common())


def export_ops(module: Any, example: Any, *, dynamic_batch: tuple[int, int] | None = None) -> ExportedGraph:
    """``torch.export`` ``module`` on ``example`` (one tensor) and count what the graph holds. ``dynamic_batch=(lo,
    hi)`` marks dimension 0 as a ``torch.export.Dim`` in [lo, hi]: the graph then works for any batch in that
    range, and ``ranges`` shows the symbol it got."""
    import torch
    from torch.export import Dim

    dyn = None
    if dynamic_batch is not None:
        lo, hi = dynamic_batch
        if not 1 <= lo <= example.shape[0] <= hi or example.shape[0] < 2:
            raise ValueError(f"dynamic_batch={dynamic_batch} must satisfy 1 <= lo <= batch ({example.shape[0]}) "
                             f"<= hi, with an example batch >= 2 (export specialises a size of 1 to a constant)")
        dyn = ({0: Dim("batch", min=lo, max=hi)},)
    ep = torch.export.export(module.eval(), (example,), dynamic_shapes=dyn)
    user = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    shape = next(list(n.meta["val"].shape) for n in ep.graph.nodes if n.op == "placeholder" and n.name == user[0])
    return ExportedGraph(
        aten_ops=_op_counts(ep.graph),
        core_aten_ops=_op_counts(ep.run_decompositions().graph),
        inputs=dict(Counter(s.kind.name for s in ep.graph_signature.input_specs)),
        input_shape=[int(d) if isinstance(d, int) else str(d) for d in shape],
        ranges={str(k): str(v) for k, v in ep.range_constraints.items()},
        program=ep,
    )


_GUARD_LINE = re.compile(r"\+- ([A-Z][A-Z_]+):")


def guard_kinds(module: Any, example: Any) -> dict[str, int]:
    """Compile ``module`` on ``example`` with Dynamo and count the guards it installed, by kind (``TENSOR_MATCH``:
    dtype, device, shape and strides of an input; ``ID_MATCH``/``TYPE_MATCH``: the same objects; ``GLOBAL_STATE``:
    grad mode, threads …). Every later call checks these before it may reuse the compiled code; one that fails
    recompiles. Read from Dynamo's ``guards`` log (an internal format: ``{}`` if it changes)."""
    import torch

    lines: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    log = logging.getLogger("torch._dynamo.guards.__guards")
    handler, propagate = _Keep(), log.propagate
    torch._dynamo.reset()
    try:
        torch._logging.set_logs(guards=True)
        log.addHandler(handler)
        log.propagate = False  # keep the dump out of the notebook's stderr
        compiled = torch.compile(module.eval(), backend="eager")  # guards come from Dynamo; no code generation
        with torch.inference_mode():
            compiled(example)
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
        torch._logging.set_logs()
    dump = next((t for t in lines if "TREE_GUARD_MANAGER" in t), "")
    return dict(Counter(_GUARD_LINE.findall(dump)).most_common())


@dataclass
class Kernel:
    """One call in Inductor's generated wrapper: a loop nest it wrote (``generated``) or a library call."""

    name: str                       # e.g. cpp_fused_relu_1 or mkldnn._convolution_pointwise
    generated: bool                 # True: C++/Triton code Inductor wrote; False: a library call (oneDNN, BLAS …)
    fused: list[str]                # for a generated kernel: the operators its name says it fused (best effort)


_KERNEL_DEF = re.compile(r"^(cpp_fused_\w+|triton_\w+_fused_\w+|triton_\w+)\s*=\s*async_compile", re.M)
_LIBRARY_CALL = re.compile(r"\b(extern_kernels\.\w+|torch\.ops\.(?!inductor\.)\w+\.\w+)(?:\.\w+)?\(")
# ATen names as they appear inside Inductor's kernel names, longest first when matched
_ATEN_NAMES = ("native_batch_norm_legit_no_training", "native_layer_norm", "convolution", "add", "mul", "relu",
               "gelu", "hardtanh", "clamp", "mean", "addmm", "mm", "sigmoid", "silu", "cat", "view", "permute",
               "clone", "max_pool2d_with_indices", "avg_pool2d", "div", "sub", "erf", "sum", "quantize_per_tensor",
               "dequantize_per_tensor", "dequantize_per_channel", "to_dtype", "copy", "round", "index")


def _fused_ops(name: str) -> list[str]:
    body = re.sub(r"_\d+$", "", name)
    body = re.sub(r"^(cpp_fused|triton_\w+?_fused)", "", body)
    ops, rest = [], body.strip("_")
    while rest:
        hit = next((a for a in sorted(_ATEN_NAMES, key=len, reverse=True) if rest.startswith(a)), None)
        if hit is None:
            hit, _, rest = rest.partition("_")
        else:
            rest = rest[len(hit):]
        ops.append(hit)
        rest = rest.lstrip("_")
    return [o for o in ops if o]


def kernels(code: Iterable[str]) -> list[Kernel]:
    """The kernels in Inductor's generated code (``Compiled.code`` from ``compile_module(..., code=True)``), in
    order of definition: the loops it generated (with the operators each one fused, read from its name) and the
    library calls it kept (convolutions and matmuls stay oneDNN/BLAS calls on a CPU)."""
    out: list[Kernel] = []
    for src in code:
        out += [Kernel(n, True, _fused_ops(n)) for n in _KERNEL_DEF.findall(src)]
        seen = set()
        for call in _LIBRARY_CALL.findall(src):
            if call not in seen:
                seen.add(call)
                out.append(Kernel(call.replace("torch.ops.", ""), False, []))
    return out


@dataclass
class RecompileStep:
    """One call in :func:`recompiles`: the input shape, the graphs Dynamo had compiled after it, whether this call
    compiled a new graph, and its wall time in ms (compile included when it compiled)."""

    shape: tuple[int, ...]
    graphs_so_far: int
    compiled: bool
    ms: float

    def as_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "graphs_so_far": self.graphs_so_far, "compiled": self.compiled,
                "ms": self.ms}


def recompiles(module: Any, shapes: Sequence[tuple[int, ...]], *, dynamic: bool | None = None,
               backend: str = "inductor") -> list[RecompileStep]:
    """Compile ``module`` once and call it on a random input of each shape in ``shapes``, in order. One
    :class:`RecompileStep` per call: the shape, the graphs compiled so far, whether this call compiled (a new graph),
    and its wall time in ms. With ``dynamic=None`` (the default) a second shape recompiles once with a symbolic
    size, after which other sizes reuse it; ``dynamic=False`` recompiles for every new shape (up to Dynamo's cache
    limit). ``backend="eager"`` counts the same recompiles (they are Dynamo's) without generating code."""
    import torch
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(module.eval(), dynamic=dynamic, backend=backend)
    rows: list[RecompileStep] = []
    before = 0
    for shape in shapes:
        x = torch.randn(tuple(shape))
        t0 = time.perf_counter()
        with torch.inference_mode():
            compiled(x)
        ms = (time.perf_counter() - t0) * 1e3
        graphs = int(counters["stats"]["unique_graphs"])
        rows.append(RecompileStep(shape=tuple(shape), graphs_so_far=graphs, compiled=graphs > before, ms=ms))
        before = graphs
    return rows


def conv_bn_relu(channels: int = 32, depth: int = 4, *, seed: int = 0) -> Any:
    """``depth`` Conv3x3 -> BatchNorm -> ReLU blocks at ``channels`` channels (non-trivial BN statistics): the
    pattern operator fusion is about."""
    import torch
    from torch import nn

    if channels < 1 or depth < 1:
        raise ValueError(f"channels={channels} and depth={depth} must be >= 1")
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(depth):
        bn = nn.BatchNorm2d(channels)
        with torch.no_grad():
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
        layers += [nn.Conv2d(channels, channels, 3, padding=1), bn, nn.ReLU()]
    return nn.Sequential(*layers).eval()


def fold_bn(module: Any) -> Any:
    """A copy of ``module`` (eval mode) with every Conv -> BatchNorm pair folded into one Conv
    (``w' = w * gamma / sigma``, ``b' = (b - mu) * gamma / sigma + beta``) and the BatchNorm gone: what a compiler's
    Conv+BN fusion does, by hand. The one implementation is :func:`mclab.quant.fold_batchnorm` (QAT folds the same
    way before it quantises); the original is untouched."""
    return fold_batchnorm(module)


# torchao's CPU INT8 rewrites of nn.Linear (quantize_): weights stored in INT8, and activations too for "dynamic"
TORCHAO_INT8 = {
    "weight-only": "Int8WeightOnlyConfig",                      # INT8 weights, dequantised for an FP32 matmul
    "dynamic": "Int8DynamicActivationInt8WeightConfig",         # activations quantised per call: INT8 x INT8 matmul
}


def torchao_int8(module: Any, kind: str) -> Any:
    """A copy of ``module`` whose ``nn.Linear`` layers torchao's ``quantize_`` rewrote at INT8: ``kind`` is
    "weight-only" (INT8 weights, FP32 activations) or "dynamic" (INT8 weights, activations quantised per call
    with scales computed from each input). Other layers stay FP32. Run it eagerly or ``torch.compile`` it."""
    import torchao.quantization as tq

    if kind not in TORCHAO_INT8:
        raise ValueError(f"kind={kind!r} is unknown; allowed: {list(TORCHAO_INT8)}")
    out = copy.deepcopy(module).eval()
    tq.quantize_(out, getattr(tq, TORCHAO_INT8[kind])())
    return out
