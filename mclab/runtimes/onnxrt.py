"""ONNX Runtime on the CPU execution provider, at FP32 or INT8 (static QDQ quantisation).

:func:`session_options` and :func:`session` build ``InferenceSession`` objects with a fixed thread count;
:func:`build` is this runtime's entry in :data:`mclab.runtimes.RUNTIMES` (``precision="int8"`` quantises a copy
with :func:`mclab.quant.calibrate` and :func:`mclab.quant.quantize_static`); :func:`optimize_levels` reads back
the graph ONNX Runtime runs at each optimisation level, and :func:`profile_nodes` what each of its nodes ran on
(kernel, input dtypes) and cost (ONNX Runtime's profiler). Introduced in notebook 09.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from .base import RANDOM_CALIBRATION, Runner, random_batches

__all__ = [
    # sessions
    "session_options", "session", "build",
    # the graph ONNX Runtime runs, and what each of its nodes costs
    "LEVELS", "GraphLevel", "optimize_levels", "profile_nodes",
]

LEVELS = ("disable", "basic", "extended", "all")  # ONNX Runtime's graph optimisation levels, in order


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


def build(model: Any, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None,
          precision: str = "fp32", dynamic: bool = False, level: str = "all") -> Runner:
    """A :class:`Runner` on ONNX Runtime (CPU). ``model``: an ``.onnx`` file, a torchvision name or a
    module (exported first). ``precision="int8"`` quantises a copy statically with :func:`mclab.quant.calibrate`
    (min-max ranges on 8 random N(0, 1) batches, seed 0) and :func:`mclab.quant.quantize_static` (UINT8
    activations, INT8 per-channel weights); ``Runner.info`` then says ``activation_type`` and ``calibration``.
    A file that is already quantised (QDQ) reports ``precision="int8"``. ``dynamic=True``: the file's dynamic
    dims stay dynamic (-1 in ``Runner.input_shape``); see :func:`mclab.runtimes.load`. ``level``: the graph
    optimisation level (:func:`session`; ``Runner.info["graph_optimization"]``), "all" as ONNX Runtime's default."""
    import onnxruntime as ort

    from .export import onnx_for, remove_with

    path, shape, tmp = onnx_for(model, batch, input_shape)
    sess = session(path, threads, level=level)
    inp = sess.get_inputs()[0]
    declared = list(inp.shape)  # dims are ints, or names / None where dynamic
    if dynamic:
        if precision == "int8" and not _is_qdq(path):
            raise ValueError("precision='int8' with dynamic=True: calibration needs sizes; quantise the file on real "
                             "inputs (mclab.quant.calibrate + quantize_static) and load the INT8 file")
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
    info: dict[str, Any] = {"graph_optimization": level}
    if _is_qdq(path):  # quantised already: QuantizeLinear / DequantizeLinear pairs around INT8 kernels
        actual = "int8"
    if precision == "int8" and actual != "int8":
        import tempfile

        from ..quant import api  # here, not at the top: mclab.quant.api imports this module's session()

        tmp = tmp or tempfile.mkdtemp(prefix="mclab-onnx-")
        pre = api.prepare_onnx(path, os.path.join(tmp, "fp32"), rest)
        cal = api.calibrate(pre, random_batches((batch, *rest)))
        act = "uint8"  # with int8 weights: the pair x86 VNNI multiplies (quant.quantize_static)
        path = api.quantize_static(pre, os.path.join(tmp, "int8.onnx"), cal, activation_type=act)
        os.remove(pre)
        sess = session(path, threads, level=level)
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
