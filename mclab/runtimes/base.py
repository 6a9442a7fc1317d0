"""The runtime interface: :class:`Runner`, the registry :data:`RUNTIMES`, :func:`load`, the one model
resolver every runtime builds from (:func:`resolve`), and small helpers over a runner (:func:`batched`,
:func:`int8_op_counts`).

A :class:`Runner` takes a NumPy batch and returns a NumPy array; it knows its input shape, the
precision that was requested and the one the runtime actually computes in, its thread count and
the model file it read. Each runtime lives in its own module (``mclab/runtimes/<module>.py``) with

    build(model, *, batch, threads, input_shape, precision) -> Runner
    available() -> tuple[bool, str]        # optional: checks beyond "the package imports" (e.g. a GPU)
    import_framework() -> module           # optional: how to import its framework (tflite: after Triton)

and imports its framework only inside those functions. :data:`RUNTIMES` maps a runtime's name to a
:class:`Spec` (one line per runtime). Introduced in notebook 01 (``mclab bench``).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = [
    # the interface and the registry
    "Runner", "Spec", "RUNTIMES", "PRECISIONS", "load", "available", "precisions", "model_label",
    # a torchvision name or a torch module -> (module, input shape, label)
    "Resolved", "resolve",
    # using and inspecting a runner
    "batched", "int8_op_counts",
    # calibration when a caller gives no data
    "RANDOM_CALIBRATION", "random_batches",
]

# What a caller may ask for. "default" lets the runtime choose (and Runner.precision says what it chose).
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "default")


@dataclass
class Runner:
    """A model ready to run on one runtime. ``run(x)`` checks ``x`` and calls the runtime;
    ``raw_run`` is the unchecked call."""

    model: str                       # torchvision name, file path, or the module's class name
    runtime: str
    input_shape: tuple[int, ...]     # (B, C, H, W) with the batch requested
    precision: str                   # what the runtime actually computes in (read back from it)
    threads: int | None
    run: Callable[[Any], Any]        # numpy batch -> numpy output
    file: str | None = None          # the model file it reads, if any
    requested: str = "fp32"          # the precision that was asked for
    input_dtype: str = "float32"     # what run() accepts
    info: dict[str, Any] = field(default_factory=dict)  # runtime-specific facts (hints, versions, providers)
    handle: Any = None               # the runtime's own object (session, compiled model …) for inspection

    def __post_init__(self) -> None:
        self.raw_run = raw = self.run
        shape, dtype, where = tuple(self.input_shape), self.input_dtype, f"{self.runtime} runner for {self.model}"

        def fits(got: Any) -> bool:  # a -1 in input_shape is a dynamic dim: any size fits there
            return got is not None and len(got) == len(shape) and all(
                w == g or (w == -1 and g >= 1) for w, g in zip(shape, got, strict=True))

        def run(x: Any) -> Any:
            if not fits(getattr(x, "shape", None)) or str(getattr(x, "dtype", "")) != dtype:
                got = f"{type(x).__name__} {getattr(x, 'dtype', '?')} {tuple(getattr(x, 'shape', ()))}"
                any_size = " (-1: any size)" if -1 in shape else ""
                raise ValueError(f"input is {got}; the {where} takes a numpy {dtype} array of shape {shape}{any_size}")
            return raw(x)

        self.run = run

    def example_input(self, seed: int = 0):
        import numpy as np

        return np.random.default_rng(seed).standard_normal(self.input_shape, dtype=np.float32)

    @property
    def size_bytes(self) -> int | None:
        """Bytes of the model file(s) this runner reads (an OpenVINO ``.xml`` or NCNN ``.param`` counts its
        ``.bin``)."""
        if not self.file or not os.path.isfile(self.file):
            return None
        extra = Path(self.file).with_suffix(".bin") if self.file.endswith((".xml", ".param")) else None
        return os.path.getsize(self.file) + (os.path.getsize(extra) if extra and extra.is_file() else 0)

    def as_dict(self) -> dict[str, Any]:
        keep = ("model", "runtime", "input_shape", "precision", "requested", "threads", "file", "input_dtype")
        return {**{k: getattr(self, k) for k in keep}, "size_bytes": self.size_bytes, "info": self.info}


@dataclass(frozen=True)
class Spec:
    """How to build one runtime: its module in this package, the package it needs, the precisions it takes."""

    module: str                      # mclab.runtimes.<module> with build(...) and optionally available()
    requires: str                    # python package whose import makes the runtime usable
    precisions: tuple[str, ...]      # requestable precisions ("default" is always allowed)
    dynamic: bool = False            # build(..., dynamic=True) keeps a file's dynamic dims (load(dynamic=True))


# One line per runtime. Names are what `mclab bench --runtime` and compare_runtimes use.
RUNTIMES: dict[str, Spec] = {
    "torch": Spec("torch_eager", "torch", ("fp32", "bf16")),
    "onnxruntime": Spec("onnxrt", "onnxruntime", ("fp32", "int8"), dynamic=True),
    "openvino": Spec("openvino", "openvino", ("fp32", "bf16", "fp16", "int8"), dynamic=True),
    "torch-compile": Spec("torch_compile", "torch", ("fp32", "bf16", "int8")),
    "tflite": Spec("tflite", "tensorflow", ("fp32", "fp16", "int8")),
    "ncnn": Spec("ncnn", "ncnn", ("fp32", "fp16", "bf16")),
    "tensorrt": Spec("tensorrt", "tensorrt", ("fp32", "fp16", "int8")),
    "executorch": Spec("executorch", "executorch", ("fp32", "int8")),
}


def precisions(runtime: str) -> tuple[str, ...]:
    """The precisions ``runtime`` accepts (besides "default")."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r} is unknown; available runtimes: {sorted(RUNTIMES)}")
    return RUNTIMES[runtime].precisions


def available(runtime: str) -> tuple[bool, str]:
    """(True, version) when ``runtime`` can run here, else (False, the reason)."""
    if runtime not in RUNTIMES:
        return False, f"unknown runtime; known: {sorted(RUNTIMES)}"
    spec = RUNTIMES[runtime]
    impl = importlib.import_module(f".{spec.module}", __package__)
    try:  # a runtime module may say how its framework must be imported (tflite: after Triton)
        mod = getattr(impl, "import_framework", lambda: importlib.import_module(spec.requires))()
    except ImportError as e:
        return False, f"{spec.requires} is not installed ({e})"
    if hasattr(impl, "available"):
        ok, why = impl.available()
        if not ok:
            return False, why
    return True, getattr(mod, "__version__", "?")


def model_label(model: Any) -> str:
    """A short name for a model given as a name, a path or a torch module."""
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    return type(model).__name__


@dataclass(frozen=True)
class Resolved:
    """A model as the converters take it: a torch module, its input shape without the batch, and its label."""

    module: Any                      # torch.nn.Module (a torchvision one in eval mode for a name)
    input_shape: tuple[int, ...]     # (C, H, W …) without the batch
    label: str                       # the torchvision name, or the module's class name


def resolve(model: Any, input_shape: tuple[int, ...] | None = None) -> Resolved:
    """Turn ``model`` — a torchvision name (random weights, :func:`mclab.models.zoo`) or a ``torch.nn.Module``
    — into a :class:`Resolved`. ``input_shape`` (without batch) overrides a name's evaluation resolution and is
    required for a module. An unknown name is a ``ValueError`` that lists close torchvision names."""
    if isinstance(model, str):
        from ..models import zoo

        zm = zoo(model)  # raises ValueError naming torchvision's models for an unknown name
        return Resolved(zm.module, tuple(input_shape or zm.input_shape[1:]), model)
    if not hasattr(model, "forward"):
        raise TypeError(f"model has type {type(model).__name__}; pass a torch.nn.Module or a torchvision name")
    if input_shape is None:
        raise ValueError("input_shape is required when model is a torch.nn.Module, e.g. (3, 224, 224)")
    return Resolved(model, tuple(input_shape), type(model).__name__)


_FILE_SUFFIXES = (".onnx", ".xml", ".tflite", ".param", ".engine", ".pt2", ".pte")


def load(model: Any, runtime: str = "torch", *, batch: int = 1, threads: int | None = None,
         input_shape: tuple[int, ...] | None = None, precision: str = "fp32", dynamic: bool = False) -> Runner:
    """Build a :class:`Runner` for ``model`` on ``runtime`` at ``precision``.

    ``model`` is a torchvision name (``"resnet18"``, random weights), a model file the runtime reads
    (``.onnx``; OpenVINO also ``.xml``), or a ``torch.nn.Module`` (then ``input_shape`` is required).
    ``input_shape`` (C, H, W …, without batch) overrides the default. ``precision="default"`` lets the
    runtime choose; ``Runner.precision`` always says what it actually computes in.

    ``dynamic=True`` (a model file on a runtime whose :class:`Spec` says ``dynamic``: ONNX Runtime, OpenVINO) keeps
    the file's dynamic dims, batch included: ``Runner.input_shape`` holds -1 there and ``run`` takes any size in
    them (an OCR detector sized to each image, recognition crops batched by width; notebook 18). INT8 then needs
    a file already quantised on real inputs (a QDQ file from :func:`mclab.quant.quantize_static`, or an NNCF IR
    reshaped to dynamic as :func:`mclab.ocr.quantize_models` writes), since calibration needs sizes.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r} is unknown; available runtimes: {sorted(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is unknown; allowed: {list(PRECISIONS)}")
    if precision != "default" and precision not in RUNTIMES[runtime].precisions:
        raise ValueError(f"precision={precision!r} is not supported by runtime={runtime!r}; "
                         f"it takes {list(RUNTIMES[runtime].precisions)} or 'default'")
    if not isinstance(dynamic, bool):
        raise TypeError(f"dynamic={dynamic!r} must be True or False")
    if dynamic:
        takes = sorted(k for k, v in RUNTIMES.items() if v.dynamic)
        if not RUNTIMES[runtime].dynamic:
            raise ValueError(f"dynamic=True: runtime={runtime!r} runs fixed shapes; runtimes with dynamic shapes: "
                             f"{takes}")
        if not (isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith((".onnx", ".xml"))):
            raise ValueError(f"dynamic=True needs a model file (.onnx, .xml) whose dims are dynamic; got {model!r}")
        if input_shape is not None or batch != 1:
            raise ValueError(f"dynamic=True takes its sizes from the file; drop input_shape={input_shape} and "
                             f"batch={batch}")
    ok, why = available(runtime)
    if not ok:
        raise ValueError(f"runtime={runtime!r} is not available here: {why}")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch={batch!r} must be an integer >= 1")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads={threads!r} must be an integer >= 1 or None")
    if input_shape is not None and (not input_shape or any(int(d) < 1 for d in input_shape)):
        raise ValueError(f"input_shape={input_shape} must be positive sizes without the batch, e.g. 3,224,224")
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if isinstance(model, str):
        if model.endswith(_FILE_SUFFIXES) and not Path(model).is_file():
            raise ValueError(f"model file {model!r} does not exist or is not readable")
        if model.endswith(_FILE_SUFFIXES) and runtime == "torch":
            raise ValueError(f"model={model!r} is a model file; torch runs torchvision names or modules, "
                             f"use e.g. runtime='onnxruntime'")
    elif not hasattr(model, "forward"):
        raise TypeError(f"model has type {type(model).__name__}; pass a torchvision name, a model file path "
                        f"or a torch.nn.Module")
    elif input_shape is None:
        raise ValueError("input_shape is required when model is a torch.nn.Module, e.g. (3, 224, 224)")
    impl = importlib.import_module(f".{RUNTIMES[runtime].module}", __package__)
    runner = impl.build(model, batch=batch, threads=threads,
                        input_shape=tuple(int(d) for d in input_shape) if input_shape else None, precision=precision,
                        **({"dynamic": True} if dynamic else {}))
    runner.requested = precision
    return runner


# What every runtime's INT8 build calibrates on when it is given no data (a torchvision name has none)
RANDOM_CALIBRATION = {"data": "random N(0, 1), seed 0", "batches": 8}


def random_batches(shape: tuple[int, ...], n: int = RANDOM_CALIBRATION["batches"], seed: int = 0) -> list[Any]:
    """``n`` float32 NumPy arrays of ``shape`` drawn from N(0, 1) with ``seed``: the calibration data of an INT8
    build that was given none (:data:`RANDOM_CALIBRATION` describes it for ``Runner.info``)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape, dtype=np.float32) for _ in range(n)]


def batched(runner: Any) -> Any:
    """A callable for :func:`mclab.models.evaluate` over a fixed-batch :class:`mclab.runtimes.Runner`: any
    (N, C, H, W) tensor is cut into the runner's batch size (the last chunk zero-padded) and the logits joined."""
    import numpy as np

    b = runner.input_shape[0]

    def run(x: Any) -> Any:
        x = np.asarray(x, dtype=np.float32)
        outs = []
        for i in range(0, len(x), b):
            chunk = x[i:i + b]
            n = len(chunk)
            if n < b:
                chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), np.float32)])
            outs.append(runner.run(np.ascontiguousarray(chunk))[:n])
        return np.concatenate(outs)

    return run


def int8_op_counts(runner: Any) -> dict[str, int]:
    """What a runtime really executes: for ONNX Runtime, the op types of the graph after its optimiser
    (``QLinearConv`` = an INT8 convolution); for OpenVINO, ``"<layer> <precision>"`` of the compiled
    model's runtime graph (``"Convolution u8"`` = INT8). Counts per kind."""
    import collections
    import tempfile

    if not isinstance(runner, Runner):
        raise TypeError(f"runner must be a mclab.runtimes.Runner, got {type(runner).__name__}")
    if runner.runtime == "openvino":
        from .openvino import runtime_layers

        cnt: collections.Counter = collections.Counter(
            f"{info['layerType']} {info['runtimePrecision']}" for info in runtime_layers(runner)
            if info["layerType"] not in ("Const", "Input", "Output"))
        return dict(cnt.most_common())
    if runner.runtime == "onnxruntime":
        import onnx

        from .export import op_counts
        from .onnxrt import session

        with tempfile.TemporaryDirectory(prefix="mclab-opt-") as tmp:
            opt = os.path.join(tmp, "optimized.onnx")
            session(runner.file, runner.threads, optimized_path=opt)
            return op_counts(onnx.load(opt))
    raise ValueError(f"runner.runtime={runner.runtime!r}; int8_op_counts reads 'onnxruntime' or 'openvino'")
