"""TensorRT: ONNX → serialized engine on an NVIDIA GPU at FP32 / FP16 / INT8, with a dynamic-batch
optimisation profile, run with ``execute_async_v3`` on torch-owned CUDA buffers.

TensorRT 11 builds *strongly typed* networks only: the precision lives in the ONNX file, not in builder
flags (``BuilderFlag.FP16``/``INT8`` and the ``IInt8Calibrator`` classes were removed). So:

- FP16: the ONNX graph is converted to float16 (inputs/outputs stay float32) before the build;
- INT8: a calibrator (ONNX Runtime's, entropy or min-max, fed real batches) inserts symmetric
  QuantizeLinear/DequantizeLinear pairs (explicit quantisation), which TensorRT fuses into INT8 kernels.

:func:`build_engine` writes the ``.engine`` file and returns an :class:`EngineReport`; :func:`engine_runner`
runs one; :func:`cuda_time_ms` times a callable with CUDA events. ``available()`` says why it cannot run
(no ``tensorrt`` package — ``pip install -e .[gpu]`` — or no CUDA GPU). Introduced in notebook 12.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

from .base import Runner, model_label

__all__ = ["TRTConfig", "EngineReport", "available", "probe", "to_fp16_onnx", "to_qdq_onnx", "build_engine",
           "engine_runner", "cuda_time_ms", "build"]


def available() -> tuple[bool, str]:
    """(True, "") when the ``tensorrt`` package imports and torch sees a CUDA GPU, else (False, why)."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return False, "the tensorrt package is not installed (pip install -e .[gpu], NVIDIA GPUs only)"
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA GPU visible to torch (TensorRT runs on NVIDIA GPUs only)"
    return True, ""


@dataclass
class TRTConfig:
    """How to build an engine."""

    precision: str = "fp32"                 # "fp32", "fp16" or "int8"
    min_batch: int = 1                      # the optimisation profile: smallest batch the engine accepts,
    opt_batch: int = 1                      # the batch its kernels are tuned for,
    max_batch: int = 8                      # and the largest
    workspace_mb: int = 1024                # scratch memory TensorRT may use for tactics
    calibration: Iterable[Any] | None = None  # INT8: real NCHW float32 batches (≈ 100–500 images is typical)
    calib_method: str = "entropy"           # INT8: "entropy" (KL, TensorRT's classic choice) or "minmax"

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "fp16", "int8"):
            raise ValueError(f"precision={self.precision!r} is not a TensorRT precision here; "
                             f"allowed: fp32, fp16, int8")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(f"need 1 <= min_batch <= opt_batch <= max_batch, got {self.min_batch}, "
                             f"{self.opt_batch}, {self.max_batch}")
        if self.workspace_mb < 16:
            raise ValueError(f"workspace_mb={self.workspace_mb} must be >= 16")
        if self.calib_method not in ("entropy", "minmax"):
            raise ValueError(f"calib_method={self.calib_method!r}; allowed: 'entropy', 'minmax'")
        if self.precision == "int8" and self.calibration is None:
            raise ValueError("precision='int8' needs calibration= batches of real inputs")


@dataclass
class EngineReport:
    """What the build produced."""

    engine: str                 # path of the serialized engine
    onnx: str                   # the ONNX file the engine was built from (FP16/QDQ variants included)
    precision: str
    build_s: float              # wall time of the TensorRT build (tactic selection included)
    size_bytes: int
    profile: tuple[int, int, int]  # (min, opt, max) batch
    tensorrt: str               # version

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- precision in the ONNX file


def to_fp16_onnx(path: str, out_path: str) -> str:
    """``path`` with weights and compute in float16 and float32 inputs/outputs (ONNX Runtime's converter)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(path), keep_io_types=True), out_path)
    return out_path


def to_qdq_onnx(path: str, out_path: str, calibration: Iterable[Any], *, method: str = "entropy") -> str:
    """Explicit INT8: calibrate ``path`` on ``calibration`` (NCHW float32 batches) and insert symmetric,
    per-channel Q/DQ pairs as TensorRT requires (zero point 0); returns ``out_path``."""
    import numpy as np
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    name = onnx.load(path, load_external_data=False).graph.input[0].name
    batches = iter([{name: np.asarray(b, np.float32)} for b in calibration])

    class Calibrator(CalibrationDataReader):
        def get_next(self) -> dict | None:
            return next(batches, None)

    quantize_static(path, out_path, Calibrator(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.Entropy if method == "entropy" else CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return out_path


# ----------------------------------------------------------------------------- build and run


def build_engine(onnx_path: str, engine_path: str, config: TRTConfig | None = None) -> EngineReport:
    """Build a TensorRT engine from ``onnx_path`` (dynamic batch in dim 0) and write it to ``engine_path``."""
    import tensorrt as trt

    cfg = config or TRTConfig()
    stem = os.path.splitext(engine_path)[0]
    src = onnx_path
    if cfg.precision == "fp16":
        src = to_fp16_onnx(onnx_path, stem + ".fp16.onnx")
    elif cfg.precision == "int8":
        src = to_qdq_onnx(onnx_path, stem + ".qdq.onnx", cfg.calibration, method=cfg.calib_method)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(1 << int(typed) if typed is not None else 0)
    parser = trt.OnnxParser(network, logger)
    with open(src, "rb") as f:
        if not parser.parse(f.read()):
            errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ValueError(f"TensorRT cannot parse {src}: {errs[:400]}")
    inp = network.get_input(0)
    chw = tuple(inp.shape)[1:]
    if any(d < 0 for d in chw):
        raise ValueError(f"{src} has dynamic dims besides the batch ({tuple(inp.shape)}); export a fixed C, H, W")
    bc = builder.create_builder_config()
    bc.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_mb << 20)
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, (cfg.min_batch, *chw), (cfg.opt_batch, *chw), (cfg.max_batch, *chw))
    bc.add_optimization_profile(profile)
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, bc)
    seconds = time.perf_counter() - t0
    if plan is None:
        raise ValueError(f"TensorRT failed to build an engine from {src} (see the TensorRT log above)")
    with open(engine_path, "wb") as f:
        f.write(plan)
    return EngineReport(engine_path, src, cfg.precision, seconds, os.path.getsize(engine_path),
                        (cfg.min_batch, cfg.opt_batch, cfg.max_batch), trt.__version__)


def engine_runner(engine_path: str, input_shape: tuple[int, ...], *, precision: str = "fp32",
                  model: str | None = None) -> Runner:
    """A :class:`Runner` over a serialized engine for NCHW float32 input of ``input_shape`` (B, C, H, W).
    ``run`` copies host → device, executes on torch's current stream and copies back (I/O included);
    ``info['device_run']`` takes and returns CUDA tensors (no copies) for GPU-side timing."""
    import numpy as np
    import tensorrt as trt
    import torch

    with open(engine_path, "rb") as f:
        data = f.read()
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(data)
    if engine is None:
        raise ValueError(f"cannot load {engine_path!r} as a TensorRT engine (corrupt, truncated, or built by "
                         f"another TensorRT version or GPU)")
    ctx = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    i_name = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
    o_name = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
    lo, _, hi = engine.get_tensor_profile_shape(i_name, 0)
    if tuple(input_shape[1:]) != tuple(lo[1:]) or not lo[0] <= input_shape[0] <= hi[0]:
        raise ValueError(f"input shape {tuple(input_shape)} does not fit {engine_path}: its profile takes "
                         f"{tuple(lo)} to {tuple(hi)}")
    ctx.set_input_shape(i_name, tuple(input_shape))
    x_dev = torch.empty(tuple(input_shape), dtype=torch.float32, device="cuda")
    y_dev = torch.empty(tuple(ctx.get_tensor_shape(o_name)), dtype=torch.float32, device="cuda")
    ctx.set_tensor_address(i_name, x_dev.data_ptr())
    ctx.set_tensor_address(o_name, y_dev.data_ptr())

    def device_run(x: Any) -> Any:
        x_dev.copy_(x, non_blocking=True)
        if not ctx.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise RuntimeError(f"TensorRT execution failed for {engine_path}")
        return y_dev

    def run(x: Any) -> Any:
        out = device_run(torch.from_numpy(np.ascontiguousarray(x)).cuda(non_blocking=False))
        return out.cpu().numpy()  # .cpu() synchronises the stream

    return Runner(model or engine_path, "tensorrt", tuple(input_shape), precision, None, run, file=engine_path,
                  info={"device_run": device_run, "profile": (tuple(lo), tuple(hi)),
                        "gpu": torch.cuda.get_device_name()}, handle=engine)


def cuda_time_ms(fn: Callable[..., Any], *args: Any, iters: int = 100, warmup: int = 10) -> list[float]:
    """Per-call GPU time of ``fn(*args)`` in ms, measured with CUDA events around each call."""
    import torch

    for _ in range(warmup):
        fn(*args)
    torch.cuda.synchronize()
    pairs = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn(*args)
        b.record()
        pairs.append((a, b))
    torch.cuda.synchronize()
    return [a.elapsed_time(b) for a, b in pairs]


def build(model: Any, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None,
          precision: str = "fp32", calibration: Iterable[Any] | None = None) -> Runner:
    """Registry entry: an ``.engine`` file runs as it is (``input_shape`` required); an ``.onnx`` file,
    torchvision name or module is exported and built at ``precision`` with a profile covering
    ``batch``. INT8 without ``calibration`` calibrates on 16 random batches (notebook 12 uses real data)."""
    import numpy as np

    from .export import build_folder, onnx_for, remove_with

    if precision == "default":
        precision = "fp32"
    if isinstance(model, str) and model.endswith(".engine"):
        if input_shape is None:
            raise ValueError("input_shape (C, H, W) is required for a .engine file")
        return engine_runner(model, (batch, *input_shape), precision=precision)
    with build_folder("mclab-trt-") as tmp:  # removed at once if the build fails, else with the runner
        path, rest = onnx_for(model, batch, input_shape, tmp)
        if not rest:
            import onnx

            rest = tuple(d.dim_value for d in onnx.load(path, load_external_data=False).graph.input[0]
                         .type.tensor_type.shape.dim[1:])
        rng = np.random.default_rng(0)
        calib = calibration or [rng.standard_normal((batch, *rest), dtype=np.float32) for _ in range(16)]
        rep = build_engine(path, os.path.join(tmp, "model.engine"),
                           TRTConfig(precision=precision, min_batch=1, opt_batch=batch, max_batch=max(batch, 8),
                                     calibration=calib if precision == "int8" else None))
        runner = engine_runner(rep.engine, (batch, *rest), precision=precision,
                               model=model_label(model))
        runner.info.update(rep.as_dict())
    remove_with(runner, tmp)
    return runner


def probe() -> dict[str, Any]:
    """What ``mclab doctor`` shows for TensorRT (run in a fresh interpreter): version; it needs a CUDA GPU."""
    import tensorrt as trt

    return {"version": trt.__version__, "devices": ["cuda"]}
