"""ONNX Runtime on the CPU execution provider, at FP32 or INT8 (static QDQ quantisation): a plug-in of
:mod:`mclab.runtimes.base`.

:func:`session_options` and :func:`session` build ``InferenceSession`` objects with a fixed thread count;
:func:`build` is this runtime's entry in :data:`mclab.runtimes.RUNTIMES` (``precision="int8"`` quantises a copy
with :func:`calibrate` and :func:`quantize_static`); :func:`optimize_levels` reads back
the graph ONNX Runtime runs at each optimisation level, and :func:`profile_nodes` what each of its nodes ran on
(kernel, input dtypes) and cost (ONNX Runtime's profiler).

INT8 is built here, by this runtime's own quantiser on :mod:`mclab.quant`'s arithmetic: :func:`prepare_onnx`
exports and pre-processes, :func:`calibrate` finds activation ranges on calibration data (a serialisable
:class:`Calibration`), :func:`quantize_static` replays them into a static INT8 QDQ file — the one builder of every
static-INT8 ONNX file in the kit, U8 activations by default, S8 selectable — and :func:`quantize_dynamic` writes
dynamic INT8. Introduced in notebooks 05 (INT8) and 09.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from .base import RANDOM_CALIBRATION, Runner, random_batches

__all__ = [
    # sessions, and this runtime's plug-in functions (mclab.runtimes.base)
    "session_options", "session", "KNOBS", "build", "probe", "check_file", "op_counts", "profile",
    # INT8: this runtime's own builder (static QDQ with U8 or S8 activations, dynamic INT8)
    "ACTIVATION_TYPES", "Calibration", "calibrate", "prepare_onnx", "quantize_static", "quantize_dynamic",
    # the graph ONNX Runtime runs, and what each of its nodes costs
    "LEVELS", "EXECUTION_MODES", "GraphLevel", "optimize_levels", "profile_nodes",
]

LEVELS = ("disable", "basic", "extended", "all")  # ONNX Runtime's graph optimisation levels, in order
EXECUTION_MODES = ("sequential", "parallel")       # one node at a time, or independent branches at once

# Settings of :func:`build` that leave the answer the same up to rounding (:func:`mclab.runtimes.audit.audit_defaults`
# sweeps them; the default first). At INT8 a lower ``level`` may leave QDQ pairs unfused (FP32 maths on
# dequantised values: other numbers), which the audit reports.
KNOBS: dict[str, tuple] = {"level": ("all", "extended", "basic", "disable"),
                           "execution_mode": ("sequential", "parallel")}


def session_options(threads: int) -> Any:
    """ONNX Runtime ``SessionOptions`` with ``threads`` intra-op threads (and one inter-op thread), so that a
    comparison with torch (``mclab.bench.set_threads``) and OpenVINO (:func:`mclab.runtimes.openvino.config`)
    uses the same number of cores."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads={threads!r} must be an int >= 1")
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return so


def session(path: str, threads: int | None = None, *, level: str = "all", sequential: bool = True,
            optimized_path: str | None = None) -> Any:
    """An ``InferenceSession`` on the CPU with ``threads`` intra-op threads, a graph optimisation
    ``level`` (disable, basic, extended, all), an execution mode, and optionally the optimised graph
    written to ``optimized_path``. A file ONNX Runtime cannot read raises ``ValueError``."""
    import onnxruntime as ort

    g = ort.GraphOptimizationLevel
    levels = dict(zip(LEVELS, (g.ORT_DISABLE_ALL, g.ORT_ENABLE_BASIC, g.ORT_ENABLE_EXTENDED, g.ORT_ENABLE_ALL),
                      strict=True))
    if level not in levels:
        raise ValueError(f"level={level!r}; allowed: {list(levels)}")
    so = session_options(threads) if threads else ort.SessionOptions()
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


def profile_nodes(model: Any, x: Any, *, runs: int = 20, threads: int | None = None,
                  warmup: int = 3) -> list[dict[str, Any]]:
    """Run ``x`` through ONNX Runtime ``runs`` times with ``SessionOptions.enable_profiling`` on and return what its
    profiler wrote for each node of the optimised graph, one dict per node (in execution order), times averaged
    over the runs: ``{"name", "op", "us" (per run), "input_types" (the dtype of each input), "input_shapes"}``.
    An ``op`` such as ``QLinearConv`` with ``input_types[0] == "uint8"`` is an INT8 convolution on U8
    activations; ``DequantizeLinear`` on a 4-d ``int8`` input of a weight's shape dequantises weights at run time.
    ``model``: an ``.onnx`` path or a :class:`Runner` on ONNX Runtime (its file and thread count are used)."""
    import json
    import tempfile

    import onnxruntime as ort

    if isinstance(model, Runner):
        if model.runtime != "onnxruntime":
            raise ValueError(f"runner.runtime={model.runtime!r}; profile_nodes reads ONNX Runtime runners")
        path, threads = model.file, threads or model.threads
    else:
        path = os.fspath(model)
    if not path or not os.path.isfile(path):
        raise ValueError(f"model={path!r} is not an ONNX file")
    if not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs={runs!r} must be an int >= 1")
    so = session_options(threads) if threads else ort.SessionOptions()
    with tempfile.TemporaryDirectory(prefix="mclab-ortprof-") as tmp:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(max(0, warmup) + runs):  # the warm-up calls are profiled too; dropped below
            sess.run(None, feed)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    nodes: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        a, name = e["args"], e["name"][: -len("_kernel_time")]
        seen[name] = seen.get(name, 0) + 1
        if seen[name] <= max(0, warmup):  # a warm-up call
            continue
        types = [next(iter(d)) for d in a.get("input_type_shape", [])]
        shapes = [next(iter(d.values())) for d in a.get("input_type_shape", [])]
        node = nodes.setdefault(name, {"name": name, "op": a.get("op_name", "?"), "us": 0.0,
                                       "input_types": types, "input_shapes": shapes})
        node["us"] += float(e.get("dur", 0)) / runs
    return list(nodes.values())


# ----------------------------------------------------------------------------- INT8: this runtime's own builder
# Integer types quantize_static can give activations (weights are always INT8, symmetric, per channel).
# UINT8 activations x INT8 weights is what x86 VNNI (vpdpbusd) multiplies in one instruction.
ACTIVATION_TYPES = ("uint8", "int8")
_MSE_SAMPLE = 16_384  # values per activation tensor the MSE range search looks at (seeded sample)


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
        raise ValueError("batches is empty; pass at least one calibration batch, "
                         "e.g. mclab.data.calibration_batches()")
    return out


def prepare_onnx(model: Any, path: str, input_shape: tuple[int, ...]) -> str:
    """Export a torch module (BatchNorm folded) to ``path`` and run ONNX Runtime's quantisation
    pre-processing (shape inference, constant folding); an existing ``.onnx`` file is pre-processed
    only. Returns the pre-processed file (``<path>.pre.onnx``)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .export import ExportConfig, export_onnx

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


def calibrate(onnx_path: str, batches: Any, *, method: str = "minmax",
              percentile: float = 99.99) -> Calibration:
    """Run ``batches`` (arrays or tensors of the model's input shape) through the FP32 ONNX model with
    every intermediate float tensor exposed, and choose each tensor's range by ``method`` (the same
    :func:`qparams` calibrators as for tensors: min-max, percentile or MSE on an 8-bit unsigned grid).
    Returns a :class:`Calibration` (ranges per ONNX tensor name) for :func:`quantize_static`."""
    import tempfile

    import numpy as np
    import onnx
    import torch

    from ..quant.primitives import METHODS, qparams

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
    m.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                          for n in names if n not in have)
    with tempfile.TemporaryDirectory(prefix="mclab-calib-") as tmp:
        aug = os.path.join(tmp, "augmented.onnx")
        onnx.save(m, aug)
        sess = session(aug)
        inp = sess.get_inputs()[0].name
        outs = [o.name for o in sess.get_outputs()]
        got: dict[str, list[Any]] = {n: [] for n in outs}
        for x in xs:
            for n, v in zip(outs, sess.run(None, {inp: x}), strict=True):
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


def quantize_static(onnx_path: str, out_path: str, calibration: Calibration, *, per_channel: bool = True,
                    activation_type: str = "uint8") -> str:
    """Static INT8 with ONNX Runtime's ``quantize_static`` (QDQ format): activations asymmetric on the
    ``activation_type`` grid ("uint8" or "int8") with the ranges in ``calibration``; weights INT8 symmetric,
    per output channel unless ``per_channel=False``. The default, UINT8 activations with INT8 weights, is the
    pair x86 VNNI multiplies (``vpdpbusd``): ONNX Runtime's x86 kernels run it several times faster than INT8
    activations. Every static-INT8 ONNX file in the kit comes from here. Returns ``out_path``; run it with
    ``mclab.runtimes.load(out_path, "onnxruntime" | "openvino")``. Introduced in notebook 05."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    if activation_type not in ACTIVATION_TYPES:
        raise ValueError(f"activation_type={activation_type!r} is not allowed; allowed: "
                         f"{' | '.join(repr(t) for t in ACTIVATION_TYPES)}")
    if not isinstance(calibration, Calibration):
        raise TypeError(f"calibration must be a Calibration from calibrate, "
                        f"got {type(calibration).__name__}")
    if not os.path.isfile(onnx_path):
        raise ValueError(f"onnx_path={onnx_path!r} does not exist")

    class OneBatch(CalibrationDataReader):  # ORT insists on a reader; every range is overridden below
        def __init__(self) -> None:
            self.items = None

        def get_next(self) -> dict | None:
            if self.items is None:
                inp = session(onnx_path).get_inputs()[0]
                shape = [d if isinstance(d, int) else 1 for d in inp.shape]
                self.items = iter([{inp.name: np.zeros(shape, np.float32)}])
            return next(self.items, None)

    act = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}[activation_type]
    overrides = {n: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for n, (lo, hi) in calibration.ranges.items()}
    ort_quantize_static(onnx_path, out_path, OneBatch(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=act, weight_type=QuantType.QInt8,
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



# ----------------------------------------------------------------------------- registry entry


def build(model: Any, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None,
          precision: str = "fp32", dynamic: bool = False, level: str = "all",
          execution_mode: str = "sequential") -> Runner:
    """A :class:`Runner` on ONNX Runtime (CPU). ``model``: an ``.onnx`` file, a torchvision name or a
    module (exported first). ``precision="int8"`` quantises a copy statically with :func:`calibrate`
    (min-max ranges on 8 random N(0, 1) batches, seed 0) and :func:`quantize_static` (UINT8
    activations, INT8 per-channel weights); ``Runner.info`` then says ``activation_type`` and ``calibration``.
    A file that is already quantised (QDQ) reports ``precision="int8"``. ``dynamic=True``: the file's dynamic
    dims stay dynamic (-1 in ``Runner.input_shape``); see :func:`mclab.runtimes.load`. ``level``: the graph
    optimisation level (:func:`session`; ``Runner.info["graph_optimization"]``), "all" as ONNX Runtime's default.
    ``execution_mode``: "sequential" (ONNX Runtime's default) or "parallel" (independent branches run at once on
    inter-op threads; ``Runner.info["execution_mode"]``). :data:`KNOBS` lists what ``benchmarks/defaults.py``
    sweeps."""
    import onnxruntime as ort

    from .export import build_folder, onnx_for, remove_with

    if execution_mode not in EXECUTION_MODES:
        raise ValueError(f"execution_mode={execution_mode!r}; allowed: {list(EXECUTION_MODES)}")
    sequential = execution_mode == "sequential"
    with build_folder("mclab-onnx-") as tmp:  # removed at once if the build fails, else with the runner
        path, shape = onnx_for(model, batch, input_shape, tmp)
        sess = session(path, threads, level=level, sequential=sequential)
        inp = sess.get_inputs()[0]
        declared = list(inp.shape)  # dims are ints, or names / None where dynamic
        if dynamic:
            if precision == "int8" and not _is_qdq(path):
                raise ValueError("precision='int8' with dynamic=True: calibration needs sizes; quantise the file on "
                                 "real inputs (calibrate + quantize_static) and load the INT8 file")
            rest = tuple(d if isinstance(d, int) else -1 for d in declared[1:])
            batch = declared[0] if isinstance(declared[0], int) else -1
        elif shape:
            if len(shape) != len(declared) - 1:
                raise ValueError(f"input shape {tuple(shape)} has {len(shape)} dims; {path} expects "
                                 f"{len(declared) - 1} after the batch ({declared})")
            for want, have in zip(shape, declared[1:], strict=True):
                if isinstance(have, int) and have != want:
                    raise ValueError(f"input shape {tuple(shape)} does not fit {path}: it declares {declared}")
            rest = tuple(int(d) for d in shape)
        else:
            if any(not isinstance(d, int) for d in declared[1:]):
                raise ValueError(f"{path} has dynamic dims {declared}; pass --input-shape")
            rest = tuple(declared[1:])
        if not dynamic and isinstance(declared[0], int) and declared[0] != batch:
            raise ValueError(f"batch={batch} does not fit {path}: its batch dim is fixed at {declared[0]}")
        actual = {"tensor(float)": "fp32", "tensor(float16)": "fp16"}.get(inp.type, inp.type)
        info: dict[str, Any] = {"graph_optimization": level, "execution_mode": execution_mode}
        if _is_qdq(path):  # quantised already: QuantizeLinear / DequantizeLinear pairs around INT8 kernels
            actual = "int8"
        if precision == "int8" and actual != "int8":
            pre = prepare_onnx(path, os.path.join(tmp, "fp32"), rest)
            cal = calibrate(pre, random_batches((batch, *rest)))
            act = "uint8"  # with int8 weights: the pair x86 VNNI multiplies (quantize_static)
            path = quantize_static(pre, os.path.join(tmp, "int8.onnx"), cal, activation_type=act)
            os.remove(pre)
            sess = session(path, threads, level=level, sequential=sequential)
            actual = "int8"
            info = {**info, "activation_type": act, "weight_type": "int8",
                    "calibration": {**RANDOM_CALIBRATION, "images": cal.n_images, "method": cal.method}}
        name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name

        def run(x: Any) -> Any:
            return sess.run([out_name], {name: x})[0]

        label = model if isinstance(model, str) else type(model).__name__
        used = threads or sess.get_session_options().intra_op_num_threads or None
        runner = Runner(label, "onnxruntime", (batch, *rest), actual, used, run, file=path,
                        info={"version": ort.__version__, "providers": sess.get_providers(), **info}, handle=sess)
    remove_with(runner, tmp)
    return runner


def _is_qdq(path: str) -> bool:
    """True when the ONNX file at ``path`` holds QuantizeLinear nodes (a static-INT8 QDQ file)."""
    import onnx

    return any(n.op_type == "QuantizeLinear" for n in onnx.load(path, load_external_data=False).graph.node)


# ----------------------------------------------------------------------------- plug-in: doctor, files, read-back


def probe() -> dict[str, Any]:
    """What ``mclab doctor`` shows for ONNX Runtime (run in a fresh interpreter): version and providers."""
    import onnxruntime as ort

    return {"version": ort.__version__, "devices": ort.get_available_providers(),
            "details": {"device": ort.get_device()}}


def check_file(path: str | os.PathLike) -> None:
    """``ValueError`` naming ``path`` unless it parses as a whole ONNX model (:func:`.export.check_onnx_file`)."""
    from .export import check_onnx_file

    check_onnx_file(path)


def op_counts(runner: Runner) -> dict[str, int]:
    """The op types of the graph ONNX Runtime runs for ``runner`` after its optimiser, per kind
    (``QLinearConv`` = an INT8 convolution); :func:`mclab.runtimes.int8_op_counts` asks this."""
    import tempfile

    import onnx

    from .export import op_counts as graph_op_counts

    with tempfile.TemporaryDirectory(prefix="mclab-opt-") as tmp:
        opt = os.path.join(tmp, "optimized.onnx")
        session(runner.file, runner.threads, level=runner.info.get("graph_optimization", "all"), optimized_path=opt)
        return graph_op_counts(onnx.load(opt))


def profile(runner: Runner, x: Any, runs: int, warmup: int) -> Any:
    """A :class:`mclab.runtimes.profile.Profile` from ONNX Runtime's own profiler (:func:`profile_nodes`):
    kernel time per node of the optimised graph, summed per op type, with the dtype of each op's first input."""
    import time

    from .profile import Profile, shares

    t0 = time.perf_counter()
    nodes = profile_nodes(runner, x, runs=runs, warmup=warmup)
    wall = (time.perf_counter() - t0) * 1e3 / (runs + warmup)  # includes the session build: an upper bound
    times: dict[str, float] = {}
    calls: dict[str, float] = {}
    details: dict[str, set[str]] = {}
    for n in nodes:
        times[n["op"]] = times.get(n["op"], 0.0) + n["us"] / 1e3
        calls[n["op"]] = calls.get(n["op"], 0) + 1
        if n["input_types"]:
            details.setdefault(n["op"], set()).add(n["input_types"][0])
    total, ops = shares(times, calls, details)
    return Profile(runner.runtime, runner.model, runner.precision, runner.threads, runs,
                   "ONNX Runtime enable_profiling (kernel time per node)", total, wall, ops,
                   note="detail: the dtype of each node's first input; wall_ms includes building the session")
