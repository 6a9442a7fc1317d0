"""OpenVINO on the CPU plugin: ONNX or IR in, a compiled model out, and the precision it really uses.

On CPUs with native BF16 (AVX512-BF16 / AMX, e.g. Sapphire Rapids) the CPU plugin's default
``INFERENCE_PRECISION_HINT`` is ``bf16``: a model "run in FP32" silently computes in BF16. This module
always reads the hint back from the compiled model, and ``precision="fp32"`` pins ``f32``.

``precision="int8"`` quantises with OpenVINO's own post-training quantiser, NNCF (:func:`quantize_nncf`:
FakeQuantize ops inserted by ``nncf.quantize``), unless the model already holds FakeQuantize ops (an NNCF IR, or
a QDQ ONNX file from :func:`.onnxrt.quantize_static`), then compiles with the rest pinned to FP32; the runner
says which calibration data, which NNCF preset and subset size, and which Convolution / MatMul layers the CPU
plugin still runs in FP32 (:func:`int8_layers`, read back from the runtime graph). Introduced in notebook 10.

What :func:`build` sets, and why: ``PERFORMANCE_HINT=LATENCY``, ``NUM_STREAMS=1`` and ``INFERENCE_NUM_THREADS``
(:func:`config`) — one request at a time on the threads asked for, the settings of
``benchmark_app -hint none -nstreams 1 -nthreads N -api sync``; ``INFERENCE_PRECISION_HINT`` pinned (f32 for
"fp32"). CPU pinning and the core type are left at the plugin's defaults, the same as benchmark_app's, and read back
with the rest (:func:`compiled_facts`, in ``Runner.info``). Each call runs the request the way benchmark_app does:
an input Tensor that shares the array's buffer, set once, then ``infer()`` (:func:`_request_runner`).
``benchmarks/vendor.py`` checks the kit's latency against benchmark_app's on the same file.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..base import Runner
from .int8 import NNCF_MODEL_TYPES, NNCF_PRESETS, NNCFResult, nncf_info, quantize_nncf

__all__ = [
    # compiling and running
    "config", "build", "read_model", "compile_model", "compiled_facts", "actual_precision", "to_ir", "async_throughput",
    "AsyncResult", "HINTS", "KNOBS",
    # this runtime's plug-in functions (mclab.runtimes.base)
    "probe", "check_file", "op_counts", "profile",
    # what the CPU plugin runs
    "runtime_layers", "kernels", "isa_caps", "ab_under_isa", "ISA_CAPS",
    # INT8 with NNCF (mclab.runtimes.openvino.int8)
    "quantize_nncf", "NNCFResult", "nncf_info", "int8_layers", "NNCF_PRESETS", "NNCF_MODEL_TYPES",
]

_TO_OV = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_FROM_OV = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "i8": "int8", "u8": "int8"}
HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
# Layers whose arithmetic INT8 replaces: the runtime graph's types for convolutions and matrix products.
_COMPUTE_LAYERS = ("Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul")
_COMPUTE_OPS = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData", "MatMul")
_INT8 = ("u8", "i8")
# The CPU plugin's kernels come from oneDNN, which reads ONEDNN_MAX_CPU_ISA once, when the plugin loads. A cap only
# lowers the instruction set the kernels may use, so one machine can show what an older CPU would do. Each cap
# needs the CPU feature (as mclab.hw.cpu_info names it) beside it; on a CPU without it, the cap changes nothing.
ISA_CAPS = {
    "AVX2": "AVX2",                      # 256-bit; INT8 dot products take three instructions (no VNNI)
    "AVX2_VNNI": "AVX-VNNI",             # 256-bit with VNNI: u8 x s8 -> s32 multiply-accumulate in one instruction
    "AVX512_CORE": "AVX-512",            # 512-bit, no VNNI
    "AVX512_CORE_VNNI": "AVX-512 VNNI",  # 512-bit with VNNI (Cascade Lake, Zen 4 and later)
    "AVX512_CORE_AMX": "AMX-INT8",       # tile matrix units (Sapphire Rapids and later)
}


def config(threads: int) -> dict[str, Any]:
    """``compile_model`` properties that run OpenVINO's CPU plugin on ``threads`` inference threads, so that a
    comparison with torch (``mclab.bench.set_threads``) and ONNX Runtime
    (:func:`mclab.runtimes.onnxrt.session_options`) uses the same number of cores."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads={threads!r} must be an int >= 1")
    return {"INFERENCE_NUM_THREADS": threads}


def actual_precision(compiled: Any) -> str:
    """The precision a compiled model computes in (``INFERENCE_PRECISION_HINT`` read back): fp32, bf16, fp16."""
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    hint = (hint.to_string() if hasattr(hint, "to_string") else str(hint)).lower()  # an openvino.Type
    return _FROM_OV.get(hint, hint)


def runtime_layers(compiled: Any) -> list[dict[str, str]]:
    """The layers of a compiled model (or a :class:`Runner` on OpenVINO) as the CPU plugin runs them, in order:
    ``{"layerType": "Convolution", "primitiveType": "brgconv_avx512_I8", "runtimePrecision": "u8", ...}`` each."""
    compiled = getattr(compiled, "handle", compiled)
    if not hasattr(compiled, "get_runtime_model"):
        raise TypeError(f"compiled must be an OpenVINO CompiledModel or a Runner built on OpenVINO, "
                        f"got {type(compiled).__name__}")
    ops = compiled.get_runtime_model().get_ordered_ops()
    return [{"name": op.get_friendly_name(), **{k: v.astype(str) for k, v in op.get_rt_info().items()}}
            for op in ops]


def int8_layers(compiled: Any, model: Any = None) -> dict[str, Any]:
    """Which convolutions and matrix products of a compiled model (or a :class:`Runner` on OpenVINO) the CPU
    plugin runs in INT8 (runtime precision u8 / i8) and which it still runs in another precision:
    ``{"int8": n, "other": n, "fp32_layers": ["<name> (<op> as <layerType> f32)", ...]}``. Read back from the
    runtime graph, so it reports what runs, not what the quantiser intended.

    ``model``: the ``openvino.Model`` that was compiled. With it, each Convolution / MatMul op of the model is
    found in the runtime layer that runs it — also when the plugin fused it into a ``Subgraph`` (two Linear
    layers of an MLP head, for instance); without it, only runtime layers of a convolution or fully-connected
    type are counted. :func:`build` passes the model (``Runner.info["int8_layers"]``)."""
    kinds = {op.get_friendly_name(): op.get_type_name() for op in model.get_ops()
             if op.get_type_name() in _COMPUTE_OPS} if model is not None else {}
    seen: dict[str, tuple[bool, str]] = {}
    for info in runtime_layers(compiled):
        names = [n for n in info.get("originalLayersNames", "").split(",") if n in kinds]
        if not names and info.get("layerType") in _COMPUTE_LAYERS:
            names = [info["name"]]
        prec = info.get("runtimePrecision", "?")
        for n in names:
            if not seen.get(n, (False,))[0]:  # INT8 wherever it runs in INT8
                seen[n] = (prec in _INT8, f"{n} ({kinds.get(n, info['layerType'])} as {info['layerType']} {prec})")
    fp32 = [desc for is8, desc in seen.values() if not is8]
    return {"int8": len(seen) - len(fp32), "other": len(fp32), "fp32_layers": fp32}


def kernels(compiled: Any, layer_type: str = "Convolution") -> dict[str, int]:
    """How many ``layer_type`` layers of a compiled model (or a :class:`Runner` on OpenVINO) run with each
    oneDNN kernel, e.g. ``{"brgconv_avx512_I8": 17, "brgconv_avx512_1x1_I8": 3}``: the ISA and precision in use."""
    out: dict[str, int] = {}
    for info in runtime_layers(compiled):
        if info["layerType"] == layer_type:
            out[info["primitiveType"]] = out.get(info["primitiveType"], 0) + 1
    return out


def isa_caps(features: dict[str, bool]) -> list[str]:
    """The keys of :data:`ISA_CAPS` a CPU with ``features`` (``mclab.hw.cpu_info().features``) can show: a cap
    above what the CPU has changes nothing."""
    return [cap for cap, feature in ISA_CAPS.items() if features.get(feature)]


def ab_under_isa(path_a: str | os.PathLike, path_b: str | os.PathLike, input_shape: tuple[int, ...], *,
                 isa: str | None = None, threads: int | None = None, rounds: int = 10, calls: int = 5,
                 timeout_s: float = 600) -> dict[str, Any]:
    """Two model files on OpenVINO, interleaved (``mclab ab``), in a fresh process whose kernels are capped at
    ``isa`` (a key of :data:`ISA_CAPS`; None: no cap). Returns ``ABResult.as_dict()`` plus ``kernels``
    ({"a": ..., "b": ...}, convolution kernels per model, which show the cap took effect) and ``isa``."""
    if isa is not None and isa not in ISA_CAPS:
        raise ValueError(f"isa={isa!r}; allowed: None (no cap) or one of {list(ISA_CAPS)}")
    for name, p in (("path_a", path_a), ("path_b", path_b)):
        if not os.path.isfile(p):
            raise ValueError(f"{name}={os.fspath(p)!r} does not exist")
    cmd = [sys.executable, "-m", "mclab", "ab", os.fspath(path_a), os.fspath(path_b), "--runtime", "openvino",
           "--input-shape", ",".join(map(str, input_shape)), "--rounds", str(rounds), "--calls", str(calls), "--json"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    if isa is not None:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"`mclab ab` under ONEDNN_MAX_CPU_ISA={isa} failed (exit {r.returncode}): {last}")
    return {**json.loads(r.stdout), "isa": isa}


def read_model(path: str, batch: int, input_shape: tuple[int, ...], *, dynamic: bool = False) -> Any:
    """The ``openvino.Model`` at ``path`` (IR or ONNX) reshaped to (batch, *input_shape), or as the file declares
    it when ``dynamic``. A file OpenVINO cannot read raises ``ValueError`` naming it."""
    import openvino as ov

    try:
        m = ov.Core().read_model(path)
    except RuntimeError as e:  # OpenVINO raises RuntimeError with a long C++ trace for bad files
        first = next((ln for ln in str(e).splitlines() if ln.strip() and "Exception from" not in ln), str(e))
        raise ValueError(f"cannot load {path!r} as an OpenVINO model: {first.strip()[:200]}") from None
    if dynamic:
        return m
    declared = m.inputs[0].get_partial_shape()
    rank = declared.rank.get_length()
    if input_shape:
        if len(input_shape) != rank - 1:
            raise ValueError(f"input shape {input_shape} has {len(input_shape)} dims; {path} expects "
                             f"{rank - 1} after the batch ({declared})")
        want = (batch, *input_shape)
    else:
        if not all(declared[i].is_static for i in range(1, rank)):
            raise ValueError(f"{path} has dynamic dims {declared}; pass input_shape")
        want = (batch, *(declared[i].get_length() for i in range(1, rank)))
    for i, (w, d) in enumerate(zip(want, declared, strict=True)):
        if d.is_static and d.get_length() != w:
            what = f"batch={batch}" if i == 0 else f"input shape {want[1:]}"
            raise ValueError(f"{what} does not fit {path}: it declares {declared}")
    m.reshape({m.inputs[0].get_any_name(): ov.PartialShape(list(want))})
    return m


def compile_model(model: Any, *, precision: str = "fp32", threads: int | None = None, hint: str = "LATENCY",
                  streams: int | None = None, extra: dict[str, Any] | None = None) -> Any:
    """Compile an ``openvino.Model`` for the CPU with a precision ("default" leaves the plugin's own
    choice), threads, a performance hint and optionally a number of streams; returns the CompiledModel."""
    import openvino as ov

    if precision not in (*_TO_OV, "default"):
        raise ValueError(f"precision={precision!r}; OpenVINO's CPU plugin takes {list(_TO_OV)} or 'default'")
    if hint not in HINTS:
        raise ValueError(f"hint={hint!r}; allowed: {list(HINTS)}")
    cfg: dict[str, Any] = {"PERFORMANCE_HINT": hint, **(extra or {})}
    if precision != "default":
        cfg["INFERENCE_PRECISION_HINT"] = _TO_OV[precision]
    if threads is not None:
        cfg.update(config(threads))
    if streams is not None:
        if streams < 1:
            raise ValueError(f"streams={streams} must be >= 1")
        cfg["NUM_STREAMS"] = int(streams)
    return ov.Core().compile_model(model, "CPU", cfg)


# What compiled_facts reads back: Runner.info key -> the compiled model's property (all of them shown by
# benchmark_app's "Querying optimal runtime parameters" step, so the two can be compared line by line).
_FACTS = {"performance_hint": "PERFORMANCE_HINT", "streams": "NUM_STREAMS",
          "optimal_infer_requests": "OPTIMAL_NUMBER_OF_INFER_REQUESTS", "inference_threads": "INFERENCE_NUM_THREADS",
          "cpu_pinning": "ENABLE_CPU_PINNING", "scheduling_core_type": "SCHEDULING_CORE_TYPE",
          "hyper_threading": "ENABLE_HYPER_THREADING", "execution_mode": "EXECUTION_MODE_HINT"}


def compiled_facts(compiled: Any) -> dict[str, Any]:
    """How a compiled model runs, read back from it (not what was asked): the performance hint, streams, optimal
    infer requests, inference threads, CPU pinning, the core type it schedules on, hyper-threading, the execution
    mode and ``inference_precision`` (:func:`actual_precision`). Integers and booleans stay so; the rest are the
    property's name as text (``"LATENCY"``, ``"ANY_CORE"``). :func:`build` puts them in ``Runner.info``."""
    out: dict[str, Any] = {}
    for key, prop in _FACTS.items():
        v = compiled.get_property(prop)
        out[key] = v if isinstance(v, (bool, int)) else getattr(v, "name", str(v))
    out["inference_precision"] = actual_precision(compiled)
    return out


def _request_runner(request: Any) -> Any:
    """``run(x) -> output copy`` on one infer request, the way benchmark_app drives it: the input is an
    ``openvino.Tensor`` that shares ``x``'s buffer, set on the request once and kept while the same array is passed
    again, then ``request.infer()`` with no arguments. ``request.infer({0: x}, share_inputs=True)`` wrapped ``x`` in a
    new Tensor, set it and built an output dict on every call: about 11 us more per call in Python (measured on a
    model that does next to nothing), time benchmark_app never counts. The output is copied out of OpenVINO's
    buffer, which the next call overwrites. An array the runtime cannot share (not C-contiguous, or read-only) is
    copied into a contiguous one first, as ``share_inputs=True`` did. The runner keeps a reference to the array
    its input tensor shares (the Tensor does not)."""
    import numpy as np
    import openvino as ov

    bound: list[Any] = [None, None]  # [the array passed, the array whose buffer the input tensor shares]

    def run(x: Any) -> Any:
        if x is not bound[0]:
            shared = x if x.flags.c_contiguous and x.flags.writeable else np.array(x, order="C")
            request.set_input_tensor(ov.Tensor(shared, shared_memory=True))
            # the Tensor does not keep its buffer alive: hold it. A copy is not x: the next call copies x again
            bound[:] = [x if shared is x else None, shared]
        request.infer()
        return request.get_output_tensor().data.copy()

    return run


# Settings of :func:`build` that leave the answer the same up to rounding (:func:`mclab.runtimes.audit.audit_defaults`
# sweeps them; the default first): the ``PERFORMANCE_HINT`` and ``NUM_STREAMS`` (1, as benchmark_app -nstreams 1 for
# one request at a time; None: the hint's choice). The inference precision is ``precision`` itself ("fp32" pins f32;
# "default" is the plugin's own, bf16 on AMX CPUs).
KNOBS: dict[str, tuple] = {"hint": ("LATENCY", "THROUGHPUT"), "streams": (1, None)}


def build(model: Any, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None,
          precision: str = "fp32", dynamic: bool = False, hint: str = "LATENCY",
          streams: int | None = 1) -> Runner:
    """A :class:`Runner` on OpenVINO (CPU). ``model``: an ``.xml`` IR, an ``.onnx`` file, a torchvision
    name or a module (exported to ONNX first). The runner copies each output out of OpenVINO's buffer.

    ``precision="int8"``: a model without FakeQuantize ops is quantised first with :func:`quantize_nncf`
    (calibrated on random N(0, 1) inputs — for calibration on real data call :func:`quantize_nncf` with
    batches and load its ``.xml``); a model with them (an NNCF IR, a QDQ ONNX file) is compiled as it is. The
    rest of the graph is pinned to FP32. ``Runner.precision`` is "int8" whenever the runtime graph runs INT8
    convolutions or matrix products (also for a quantised file loaded at "fp32"); ``Runner.info`` then holds
    :func:`int8_layers` (``fp32_layers``: the ones left in FP32), the quantiser, NNCF's preset and subset size,
    and the calibration data. ``dynamic=True``: the file's dynamic dims stay dynamic (-1 in
    ``Runner.input_shape``), see :func:`mclab.runtimes.load`; INT8 then needs a file with FakeQuantize ops.
    ``hint`` (:data:`HINTS`, "LATENCY" for one request at a time) and ``streams`` (1; None: the hint's choice) go to
    :func:`compile_model`; ``Runner.info`` reads back ``performance_hint``, ``streams`` and the rest of
    :func:`compiled_facts`."""
    import openvino as ov

    from ..export import build_folder, onnx_for, remove_with

    with build_folder("mclab-ov-") as tmp:  # removed at once if the build fails, else with the runner
        path, shape = onnx_for(model, batch, input_shape, tmp)
        m = read_model(path, batch, tuple(shape), dynamic=dynamic)
        if dynamic and precision == "int8" and not any(op.get_type_name() == "FakeQuantize" for op in m.get_ops()):
            raise ValueError("precision='int8' with dynamic=True: calibration needs sizes; quantise the file on real "
                             "inputs (onnxrt.quantize_static, or quantize_nncf per size) and load that file")
        if precision == "int8" and not any(op.get_type_name() == "FakeQuantize" for op in m.get_ops()):
            rest = tuple(m.inputs[0].get_partial_shape().get_shape())[1:]
            path = quantize_nncf(path, os.path.join(tmp, "int8.xml"), input_shape=rest).xml
            m = read_model(path, batch, tuple(shape))
        compiled = compile_model(m, precision="fp32" if precision == "int8" else precision, threads=threads, hint=hint,
                                 streams=streams)  # one request at a time: one stream, as benchmark_app -nstreams 1
        run = _request_runner(compiled.create_infer_request())
        want = tuple(d.get_length() if d.is_static else -1 for d in compiled.inputs[0].get_partial_shape())
        info = {"version": ov.get_version(), **compiled_facts(compiled)}
        layers = int8_layers(compiled, m)
        if layers["int8"]:
            info.update(int8_layers=layers, **nncf_info(m))
        elif precision == "int8":
            raise ValueError(f"OpenVINO compiled {path} without a single INT8 convolution or matrix product "
                             f"(this CPU plugin may lack INT8 kernels); its layers: {layers['fp32_layers'][:5]}")
        used_threads = int(compiled.get_property("INFERENCE_NUM_THREADS")) or threads
        label = model if isinstance(model, str) else type(model).__name__
        runner = Runner(label, "openvino", want, "int8" if layers["int8"] else actual_precision(compiled), used_threads,
                        run, file=path, info=info, handle=compiled)
    remove_with(runner, tmp)
    return runner


def to_ir(onnx_path: str | os.PathLike, xml_path: str | os.PathLike, *,
          compress_to_fp16: bool = False) -> dict[str, Any]:
    """Convert an ONNX file to OpenVINO IR (``.xml`` + ``.bin``); returns paths and sizes in bytes.

    ``openvino.save_model`` stores weights as FP16 unless told otherwise — another silent precision
    change — so this function makes the choice explicit (``compress_to_fp16``, default False)."""
    import openvino as ov

    if not os.path.isfile(onnx_path):
        raise ValueError(f"onnx_path={os.fspath(onnx_path)!r} does not exist")
    try:
        m = ov.convert_model(os.fspath(onnx_path))
    except Exception as e:  # convert_model raises several frontend-specific types
        first = str(e).strip().splitlines()[0][:200]
        raise ValueError(f"cannot convert {os.fspath(onnx_path)!r} to OpenVINO: {first}") from None
    xml = os.fspath(xml_path)
    ov.save_model(m, xml, compress_to_fp16=compress_to_fp16)
    binf = xml[:-4] + ".bin" if xml.endswith(".xml") else xml + ".bin"
    return {"xml": xml, "bin": binf, "xml_bytes": os.path.getsize(xml), "bin_bytes": os.path.getsize(binf),
            "compress_to_fp16": compress_to_fp16}


@dataclass
class AsyncResult:
    """Throughput of a compiled model driven by an ``AsyncInferQueue`` for a fixed time."""

    requests: int                 # infer requests in flight
    streams: int                  # the compiled model's NUM_STREAMS
    hint: str
    completed: int                # inferences finished
    wall_s: float
    batch: int

    @property
    def throughput_per_s(self) -> float:
        """Items per second, measured (not derived from latency)."""
        return self.completed * self.batch / self.wall_s

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "throughput_per_s": self.throughput_per_s}


def async_throughput(compiled: Any, x: Any, *, requests: int | None = None, duration_s: float = 2.0) -> AsyncResult:
    """Keep ``requests`` inferences in flight (default: the model's OPTIMAL_NUMBER_OF_INFER_REQUESTS)
    for ``duration_s`` seconds; returns an :class:`AsyncResult` with measured items per second."""
    import openvino as ov

    n = requests or int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    if n < 1 or duration_s <= 0:
        raise ValueError(f"requests={requests} must be >= 1 and duration_s={duration_s} > 0")
    queue = ov.AsyncInferQueue(compiled, n)
    done = [0]

    def callback(request: Any, userdata: Any) -> None:
        done[0] += 1

    queue.set_callback(callback)
    for _ in range(n):  # warm every request once
        queue.start_async({0: x})
    queue.wait_all()
    done[0] = 0
    start = time.perf_counter()
    while time.perf_counter() - start < duration_s:
        queue.start_async({0: x})  # blocks while all n requests are busy
    queue.wait_all()
    wall = time.perf_counter() - start
    return AsyncResult(n, int(compiled.get_property("NUM_STREAMS")), str(compiled.get_property("PERFORMANCE_HINT")),
                       done[0], wall, int(x.shape[0]))


# ----------------------------------------------------------------------------- plug-in: doctor, files, read-back


def probe() -> dict[str, Any]:
    """What ``mclab doctor`` shows for OpenVINO (run in a fresh interpreter): version and devices."""
    import openvino as ov

    core = ov.Core()
    devices = [f"{d} ({core.get_property(d, 'FULL_DEVICE_NAME')})" for d in core.available_devices]
    return {"version": ov.get_version().split("-")[0], "devices": devices}


def check_file(path: str | os.PathLike) -> None:
    """``ValueError`` naming ``path`` unless it is a whole model OpenVINO reads: an IR ``.xml`` that parses as XML
    with a ``<net>`` root and a ``.bin`` beside it holding every constant the XML points at, or an ONNX file that
    parses (:func:`mclab.runtimes.export.check_onnx_file`)."""
    import xml.etree.ElementTree as ET

    from ..export import check_onnx_file

    path = os.fspath(path)
    if not path.endswith(".xml"):
        return check_onnx_file(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"model file {path!r} is not an OpenVINO IR: its XML does not parse ({e}); is it "
                         f"complete?") from None
    if root.tag != "net":
        raise ValueError(f"model file {path!r} is not an OpenVINO IR: its root element is <{root.tag}>, not <net>")
    binf = path[:-4] + ".bin"
    ends = [int(d.get("offset", 0)) + int(d.get("size", 0)) for d in root.iter("data") if d.get("size")]
    have = os.path.getsize(binf) if os.path.isfile(binf) else None
    if ends and have is None:
        raise ValueError(f"model file {binf!r} (the weights beside {path}) does not exist")
    if ends and max(ends) > have:
        raise ValueError(f"model file {binf!r} holds {have} bytes but {path} reads up to byte {max(ends)}: "
                         f"the weights are cut short")


def op_counts(runner: Runner) -> dict[str, int]:
    """``"<layer type> <runtime precision>"`` per layer of the compiled model's runtime graph, counted per kind
    (``"Convolution u8"`` = an INT8 convolution); :func:`mclab.runtimes.int8_op_counts` asks this."""
    import collections

    cnt: collections.Counter = collections.Counter(
        f"{info['layerType']} {info['runtimePrecision']}" for info in runtime_layers(runner)
        if info["layerType"] not in ("Const", "Input", "Output"))
    return dict(cnt.most_common())


def profile(runner: Runner, x: Any, runs: int, warmup: int) -> Any:
    """A :class:`mclab.runtimes.profile.Profile` from the CPU plugin's performance counters (``PERF_COUNT``): real
    time per runtime layer type, with the kernel that ran it (``exec_type``). The model is compiled again."""
    import openvino as ov

    from ..profile import Profile, shares

    if not runner.file:
        raise ValueError("this OpenVINO runner has no model file to compile again with PERF_COUNT")
    m = read_model(runner.file, runner.input_shape[0], tuple(runner.input_shape[1:]))
    prec = runner.precision if runner.precision in ("bf16", "fp16") else "fp32"  # INT8 comes from the file
    compiled = compile_model(m, precision=prec, threads=runner.threads, extra={"PERF_COUNT": True})
    req = compiled.create_infer_request()
    for _ in range(warmup):
        req.infer({0: x})
    times: dict[str, float] = {}
    calls: dict[str, float] = {}
    details: dict[str, set[str]] = {}
    executed = ov.ProfilingInfo.Status.EXECUTED
    t0 = time.perf_counter()
    for _ in range(runs):
        req.infer({0: x})
        for pi in req.profiling_info:  # the counters of the last call only: summed call by call
            if pi.status != executed:
                continue
            times[pi.node_type] = times.get(pi.node_type, 0.0) + pi.real_time.total_seconds() * 1e3 / runs
            calls[pi.node_type] = calls.get(pi.node_type, 0) + 1 / runs
            details.setdefault(pi.node_type, set()).add(pi.exec_type)
    wall = (time.perf_counter() - t0) * 1e3 / runs
    total, ops = shares(times, calls, details)
    return Profile(runner.runtime, runner.model, runner.precision, runner.threads, runs,
                   "OpenVINO PERF_COUNT (real time per runtime layer)", total, wall, ops,
                   note="detail: the kernel the CPU plugin chose (exec_type); the model is compiled again with "
                        "PERF_COUNT on")
