"""OpenVINO on the CPU plugin: ONNX or IR in, a compiled model out, and the precision it really uses.

On CPUs with native BF16 (AVX512-BF16 / AMX, e.g. Sapphire Rapids) the CPU plugin's default
``INFERENCE_PRECISION_HINT`` is ``bf16``: a model "run in FP32" silently computes in BF16. This module
always reads the hint back from the compiled model, and ``precision="fp32"`` pins ``f32``.
Introduced in notebook 10.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from .base import Runner

__all__ = [
    # compiling and running
    "config", "build", "compile_model", "actual_precision", "to_ir", "async_throughput", "AsyncResult", "HINTS",
    # what the CPU plugin runs
    "runtime_layers", "kernels", "isa_caps", "ab_under_isa", "ISA_CAPS",
]

_TO_OV = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_FROM_OV = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "i8": "int8", "u8": "int8"}
HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
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
    return [{k: v.astype(str) for k, v in op.get_rt_info().items()} for op in ops]


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


def _read(path: str, batch: int, input_shape: tuple[int, ...]) -> Any:
    import openvino as ov

    try:
        m = ov.Core().read_model(path)
    except RuntimeError as e:  # OpenVINO raises RuntimeError with a long C++ trace for bad files
        first = next((ln for ln in str(e).splitlines() if ln.strip() and "Exception from" not in ln), str(e))
        raise ValueError(f"cannot load {path!r} as an OpenVINO model: {first.strip()[:200]}") from None
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


def build(model: Any, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None,
          precision: str = "fp32") -> Runner:
    """A :class:`Runner` on OpenVINO (CPU). ``model``: an ``.xml`` IR, an ``.onnx`` file, a torchvision
    name or a module (exported to ONNX first). The runner copies each output out of OpenVINO's buffer."""
    import numpy as np
    import openvino as ov

    from .export import onnx_for, remove_with

    path, shape, tmp = onnx_for(model, batch, input_shape)
    m = _read(path, batch, tuple(shape))
    compiled = compile_model(m, precision=precision, threads=threads)
    request = compiled.create_infer_request()
    want = tuple(compiled.inputs[0].get_shape())

    def run(x: Any) -> Any:
        return np.array(request.infer({0: x}, share_inputs=True)[0], copy=True)

    info = {"version": ov.get_version(), "performance_hint": str(compiled.get_property("PERFORMANCE_HINT")),
            "streams": int(compiled.get_property("NUM_STREAMS")),
            "optimal_infer_requests": int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))}
    used_threads = int(compiled.get_property("INFERENCE_NUM_THREADS")) or threads
    label = model if isinstance(model, str) else type(model).__name__
    runner = Runner(label, "openvino", want, actual_precision(compiled), used_threads, run,
                    file=path, info=info, handle=compiled)
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
