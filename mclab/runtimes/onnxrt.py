"""ONNX Runtime on the CPU execution provider, at FP32 or INT8 (static QDQ quantisation)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from . import Runner

__all__ = ["LEVELS", "GraphLevel", "build", "session", "optimize_levels", "quantize_int8"]

LEVELS = ("disable", "basic", "extended", "all")  # ONNX Runtime's graph optimisation levels, in order


def session(path: str, threads: int | None = None, *, level: str = "all", sequential: bool = True,
            optimized_path: str | None = None) -> Any:
    """An ``InferenceSession`` on the CPU with ``threads`` intra-op threads, a graph optimisation
    ``level`` (disable, basic, extended, all), an execution mode, and optionally the optimised graph
    written to ``optimized_path``. A file ONNX Runtime cannot read raises ``ValueError``."""
    import onnxruntime as ort

    from ..bench import ort_session_options

    g = ort.GraphOptimizationLevel
    levels = dict(zip(LEVELS, (g.ORT_DISABLE_ALL, g.ORT_ENABLE_BASIC, g.ORT_ENABLE_EXTENDED, g.ORT_ENABLE_ALL)))
    if level not in levels:
        raise ValueError(f"level={level!r}; allowed: {list(levels)}")
    so = ort_session_options(threads) if threads else ort.SessionOptions()
    so.graph_optimization_level = levels[level]
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL if sequential else ort.ExecutionMode.ORT_PARALLEL
    if optimized_path:
        so.optimized_model_filepath = optimized_path
        so.log_severity_level = 3  # level "all" warns that NCHWc files are machine-specific; optimize_levels says so
    try:
        return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for corrupt files
        first = str(e).strip().splitlines()[0][:200]
        raise ValueError(f"cannot load {path!r} as an ONNX model: {first}") from None


@dataclass
class GraphLevel:
    """The graph ONNX Runtime runs at one optimisation level, compared with the file it was given."""

    level: str
    n_nodes: int
    ops: dict[str, int]               # node count per op ("domain:op" outside the standard domain)
    added: dict[str, int]             # ops that appeared or grew vs the input file (fused kernels, layouts)
    removed: dict[str, int]           # ops that disappeared or shrank (folded or fused away)
    path: str                         # the optimised graph ONNX Runtime wrote

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def optimize_levels(path: str | os.PathLike, out_dir: str | os.PathLike, *,
                    levels: tuple[str, ...] = LEVELS) -> list[GraphLevel]:
    """Open ``path`` at each graph optimisation level with ``optimized_model_filepath`` set and read back
    the graph ONNX Runtime actually runs; returns one :class:`GraphLevel` per level (node counts, the ops
    added and removed vs the input — e.g. ``BatchNormalization`` folded, ``com.microsoft:FusedConv`` added).
    Level "all" adds CPU-specific layouts (NCHWc): its file is only valid on this machine. Notebook 09."""
    from .export import op_counts

    path, out = os.fspath(path), os.fspath(out_dir)
    if not os.path.isfile(path):
        raise ValueError(f"path={path!r} does not exist")
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad or not levels:
        raise ValueError(f"levels={levels!r}; allowed: a non-empty subset of {list(LEVELS)}")
    os.makedirs(out, exist_ok=True)
    base = op_counts(path, with_domain=True)
    rows = []
    for lv in levels:
        dest = os.path.join(out, f"{os.path.splitext(os.path.basename(path))[0]}.{lv}.onnx")
        session(path, 1, level=lv, optimized_path=dest)
        ops = op_counts(dest, with_domain=True)
        added = {k: v - base.get(k, 0) for k, v in ops.items() if v > base.get(k, 0)}
        removed = {k: v - ops.get(k, 0) for k, v in base.items() if v > ops.get(k, 0)}
        rows.append(GraphLevel(lv, int(sum(ops.values())), ops, added, removed, dest))
    return rows


def quantize_int8(path: str, out_path: str, input_shape: tuple[int, ...], *, n_calib: int = 8, seed: int = 0,
                  per_channel: bool = True, batches: Any = None) -> str:
    """Static INT8 quantisation (QDQ, symmetric INT8 weights and activations) of an FP32 ONNX file,
    calibrated (min-max) on ``batches`` (real NCHW float32 arrays or tensors, notebook 09) or else on
    ``n_calib`` random inputs of ``input_shape`` (B, C, H, W); returns ``out_path``."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            rng = np.random.default_rng(seed)
            data = ([np.asarray(b, dtype=np.float32) for b in batches] if batches is not None
                    else [rng.standard_normal(input_shape, dtype=np.float32) for _ in range(n_calib)])
            if not data:
                raise ValueError("batches= is empty; pass calibration batches or None for random ones")
            self.items = iter([{name: b} for b in data])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    pre = out_path + ".pre.onnx"
    quant_pre_process(path, pre, skip_symbolic_shape=True)
    name = session(pre, 1).get_inputs()[0].name
    quantize_static(pre, out_path, Reader(name), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    os.remove(pre)
    return out_path


def build(model: Any, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None,
          precision: str = "fp32") -> Runner:
    """A :class:`Runner` on ONNX Runtime (CPU). ``model``: an ``.onnx`` file, a torchvision name or a
    module (exported first). ``precision="int8"`` quantises a copy statically (random calibration data)."""
    import onnxruntime as ort

    from .export import onnx_for, remove_with

    path, shape, tmp = onnx_for(model, batch, input_shape)
    sess = session(path, threads)
    inp = sess.get_inputs()[0]
    declared = list(inp.shape)  # dims are ints, or names / None where dynamic
    if shape:
        if len(shape) != len(declared) - 1:
            raise ValueError(f"input shape {tuple(shape)} has {len(shape)} dims; {path} expects "
                             f"{len(declared) - 1} after the batch ({declared})")
        for want, have in zip(shape, declared[1:]):
            if isinstance(have, int) and have != want:
                raise ValueError(f"input shape {tuple(shape)} does not fit {path}: it declares {declared}")
        rest = tuple(int(d) for d in shape)
    else:
        if any(not isinstance(d, int) for d in declared[1:]):
            raise ValueError(f"{path} has dynamic dims {declared}; pass --input-shape")
        rest = tuple(declared[1:])
    if isinstance(declared[0], int) and declared[0] != batch:
        raise ValueError(f"batch={batch} does not fit {path}: its batch dim is fixed at {declared[0]}")
    actual = {"tensor(float)": "fp32", "tensor(float16)": "fp16"}.get(inp.type, inp.type)
    if precision == "int8":
        import tempfile

        tmp = tmp or tempfile.mkdtemp(prefix="mclab-onnx-")
        path = quantize_int8(path, os.path.join(tmp, "int8.onnx"), (batch, *rest))
        sess = session(path, threads)
        actual = "int8"
    name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name

    def run(x: Any) -> Any:
        return sess.run([out_name], {name: x})[0]

    label = model if isinstance(model, str) else type(model).__name__
    used = threads or sess.get_session_options().intra_op_num_threads or None
    runner = Runner(label, "onnxruntime", (batch, *rest), actual, used, run, file=path,
                    info={"version": ort.__version__, "providers": sess.get_providers()}, handle=sess)
    remove_with(runner, tmp)
    return runner
