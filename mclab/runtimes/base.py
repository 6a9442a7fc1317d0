"""The runtime interface: :class:`Runner`, the plug-in registry :data:`RUNTIMES`, :func:`load`, the one model
resolver every runtime builds from (:func:`resolve`), and small helpers over a runner (:func:`batched`,
:func:`int8_op_counts`).

A :class:`Runner` takes a NumPy batch and returns a NumPy array; it knows its input shape, the
precision that was requested and the one the runtime actually computes in, its thread count and
the model file it read.

**A runtime is a plug-in**: one module (``mclab/runtimes/<module>.py``) plus one :class:`Spec` line in
:data:`RUNTIMES` — the only place a runtime is named. The registry (:func:`plugin`) is what ``load``,
``mclab doctor``, ``compare_runtimes``, ``mclab bench``, :func:`mclab.runtimes.profile.profile` and
:func:`int8_op_counts` ask; nothing outside the plug-in branches on its name. A plug-in module provides

    build(model, *, batch, threads, input_shape, precision) -> Runner      # required
    available() -> tuple[bool, str]     # checks beyond "the package imports" (e.g. a GPU)
    import_framework() -> module        # how to import its framework (tflite: after Triton)
    probe() -> dict                     # for ``mclab doctor``, run in a fresh interpreter: version, devices, details
    check_file(path) -> None            # ValueError naming the file unless it is this runtime's format, whole
    profile(runner, x, runs, warmup) -> Profile   # per-operator time from the runtime's own profiler
    op_counts(runner) -> dict[str, int] # what the runtime really executes (node types / layer precisions)
    kernels(runner) -> dict[str, int]   # the convolution kernels that ran, e.g. oneDNN's ("brgconv_avx512_I8": 17)

and its own INT8 builder (ONNX Runtime's QDQ ``quantize_static``, OpenVINO's ``quantize_nncf``, ExecuTorch's
``build_pte``, torch.compile's ``quantize_pt2e``). Every function but ``build`` is optional; the module imports
its framework only inside its functions. Introduced in notebook 01 (``mclab bench``).
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
    # asking the registry
    "plugin", "provides", "build_options", "runtimes_for_file", "model_suffixes",
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
        """Bytes of the model file(s) this runner reads, the sidecars its :class:`Spec` names included (an OpenVINO
        ``.xml`` or NCNN ``.param`` counts its ``.bin``)."""
        if not self.file or not os.path.isfile(self.file):
            return None
        sidecars = RUNTIMES[self.runtime].sidecars if self.runtime in RUNTIMES else ()
        extra = [Path(self.file).with_suffix(s) for s in sidecars]
        return os.path.getsize(self.file) + sum(os.path.getsize(e) for e in extra if e.is_file())

    def as_dict(self) -> dict[str, Any]:
        keep = ("model", "runtime", "input_shape", "precision", "requested", "threads", "file", "input_dtype")
        return {**{k: getattr(self, k) for k in keep}, "size_bytes": self.size_bytes, "info": self.info}


@dataclass(frozen=True)
class Spec:
    """One runtime's line in the registry: its plug-in module, the package it needs, what it takes and reads."""

    module: str                      # the plug-in module, dotted ("mclab.runtimes.onnxrt"): build() and the rest
    requires: str                    # python package whose import makes the runtime usable
    precisions: tuple[str, ...]      # requestable precisions ("default" is always allowed)
    suffixes: tuple[str, ...] = ()   # model files it reads, e.g. (".onnx",); its check_file() vets them
    sidecars: tuple[str, ...] = ()   # files beside a model file that belong to it (OpenVINO's .bin)
    dynamic: bool = False            # build(..., dynamic=True) keeps a file's dynamic dims (load(dynamic=True))
    install: str = ""                # how to get it, for `mclab doctor` when it is missing


_P = "mclab.runtimes."
# One line per runtime. Names are what `mclab bench --runtime`, `mclab doctor` and compare_runtimes use.
RUNTIMES: dict[str, Spec] = {
    "torch": Spec(_P + "torch_eager", "torch", ("fp32", "bf16"),
                  install="pip install -c constraints.txt torch torchvision"),
    "onnxruntime": Spec(_P + "onnxrt", "onnxruntime", ("fp32", "int8"), (".onnx",), dynamic=True,
                        install="pip install -c constraints.txt onnxruntime"),
    "openvino": Spec(_P + "openvino", "openvino", ("fp32", "bf16", "fp16", "int8"), (".xml", ".onnx"), (".bin",),
                     dynamic=True, install="pip install -c constraints.txt openvino"),
    "torch-compile": Spec(_P + "torch_compile", "torch", ("fp32", "bf16", "int8"),
                          install="pip install -c constraints.txt torch (and a C++ compiler for Inductor)"),
    "tflite": Spec(_P + "tflite", "tensorflow", ("fp32", "fp16", "int8"), (".tflite",),
                   install="pip install -c constraints.txt tensorflow"),
    "ncnn": Spec(_P + "ncnn", "ncnn", ("fp32", "fp16", "bf16"), (".param",), (".bin",),
                 install="pip install -c constraints.txt ncnn pnnx"),
    "tensorrt": Spec(_P + "tensorrt", "tensorrt", ("fp32", "fp16", "int8"), (".engine",),
                     install="needs an NVIDIA GPU and `pip install tensorrt`"),
    "executorch": Spec(_P + "executorch", "executorch", ("fp32", "int8"), (".pte",),
                       install="pip install -c constraints.txt executorch"),
}


def _spec(runtime: str) -> Spec:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r} is unknown; available runtimes: {sorted(RUNTIMES)}")
    return RUNTIMES[runtime]


def plugin(runtime: str) -> Any:
    """The plug-in module of ``runtime`` (imports no framework: plug-ins import theirs inside functions)."""
    return importlib.import_module(_spec(runtime).module)


def provides(runtime: str, function: str) -> bool:
    """Whether the plug-in of ``runtime`` provides ``function`` ("profile", "op_counts", "probe", …)."""
    return callable(getattr(plugin(runtime), function, None))


def build_options(runtime: str) -> tuple[str, ...]:
    """The runtime-specific settings the plug-in's ``build`` takes beyond the common ones (``load(..., **options)``),
    e.g. ``("level",)`` for ONNX Runtime's graph optimisation level."""
    import inspect

    common = {"model", "batch", "threads", "input_shape", "precision", "dynamic"}
    params = inspect.signature(plugin(runtime).build).parameters.values()
    return tuple(p.name for p in params if p.name not in common and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def model_suffixes() -> tuple[str, ...]:
    """Every model-file suffix a registered runtime reads, e.g. (".onnx", ".xml", …)."""
    return tuple(dict.fromkeys(s for spec in RUNTIMES.values() for s in spec.suffixes))


def runtimes_for_file(path: str | os.PathLike) -> list[str]:
    """The registered runtimes that read a model file named like ``path``, in registry order (the first is the
    file's own format: ``.onnx`` -> onnxruntime, ``.xml`` -> openvino)."""
    name = os.fspath(path)
    rank = {k: next((i for i, s in enumerate(v.suffixes) if name.endswith(s)), None) for k, v in RUNTIMES.items()}
    return sorted((k for k, i in rank.items() if i is not None), key=lambda k: rank[k])


def precisions(runtime: str) -> tuple[str, ...]:
    """The precisions ``runtime`` accepts (besides "default")."""
    return _spec(runtime).precisions


def available(runtime: str) -> tuple[bool, str]:
    """(True, version) when ``runtime`` can run here, else (False, the reason)."""
    if runtime not in RUNTIMES:
        return False, f"unknown runtime; known: {sorted(RUNTIMES)}"
    spec, impl = RUNTIMES[runtime], plugin(runtime)
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


def load(model: Any, runtime: str = "torch", *, batch: int = 1, threads: int | None = None,
         input_shape: tuple[int, ...] | None = None, precision: str = "fp32", dynamic: bool = False,
         **options: Any) -> Runner:
    """Build a :class:`Runner` for ``model`` on ``runtime`` at ``precision``.

    ``model`` is a torchvision name (``"resnet18"``, random weights), a model file the runtime reads
    (``.onnx``; OpenVINO also ``.xml``), or a ``torch.nn.Module`` (then ``input_shape`` is required).
    ``input_shape`` (C, H, W …, without batch) overrides the default. ``precision="default"`` lets the
    runtime choose; ``Runner.precision`` always says what it actually computes in.

    ``dynamic=True`` (a model file on a runtime whose :class:`Spec` says ``dynamic``: ONNX Runtime, OpenVINO) keeps
    the file's dynamic dims, batch included: ``Runner.input_shape`` holds -1 there and ``run`` takes any size in
    them (an OCR detector sized to each image, recognition crops batched by width; notebook 18). INT8 then needs
    a file already quantised on real inputs (a QDQ file from :func:`.onnxrt.quantize_static`, or an NNCF IR
    reshaped to dynamic as :func:`mclab.ocr.quantize_models` writes), since calibration needs sizes.

    ``options`` go to the plug-in's ``build`` as they are: the settings only that runtime has (ONNX Runtime's graph
    optimisation ``level``, :func:`.onnxrt.build`); one its ``build`` does not take is a ``ValueError`` naming
    those it does (:func:`build_options`).
    """
    spec = _spec(runtime)
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is unknown; allowed: {list(PRECISIONS)}")
    if precision != "default" and precision not in spec.precisions:
        raise ValueError(f"precision={precision!r} is not supported by runtime={runtime!r}; "
                         f"it takes {list(spec.precisions)} or 'default'")
    if not isinstance(dynamic, bool):
        raise TypeError(f"dynamic={dynamic!r} must be True or False")
    if dynamic:
        takes = sorted(k for k, v in RUNTIMES.items() if v.dynamic)
        if not spec.dynamic:
            raise ValueError(f"dynamic=True: runtime={runtime!r} runs fixed shapes; runtimes with dynamic shapes: "
                             f"{takes}")
        if not (isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(spec.suffixes)):
            raise ValueError(f"dynamic=True needs a model file ({', '.join(spec.suffixes)}) whose dims are dynamic; "
                             f"got {model!r}")
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
    if isinstance(model, str) and model.endswith(model_suffixes()):
        if not model.endswith(spec.suffixes):
            raise ValueError(f"model={model!r} is a model file that runtime={runtime!r} does not read "
                             f"({', '.join(spec.suffixes) or 'it runs torchvision names and torch modules'}); "
                             f"runtimes that read it: {runtimes_for_file(model)}")
        if not Path(model).is_file():
            raise ValueError(f"model file {model!r} does not exist or is not readable")
        check_file = getattr(plugin(runtime), "check_file", None)
        if check_file is not None:  # a corrupt file is a ValueError here, before the runtime's loader sees it
            check_file(model)
    elif not isinstance(model, str) and not hasattr(model, "forward"):
        raise TypeError(f"model has type {type(model).__name__}; pass a torchvision name, a model file path "
                        f"or a torch.nn.Module")
    elif not isinstance(model, str) and input_shape is None:
        raise ValueError("input_shape is required when model is a torch.nn.Module, e.g. (3, 224, 224)")
    settings = build_options(runtime)
    unknown = sorted(set(options) - set(settings))
    if unknown:
        raise ValueError(f"options {unknown} are not settings of runtime={runtime!r}; its build takes "
                         f"{list(settings) or 'none'}")
    runner = plugin(runtime).build(model, batch=batch, threads=threads,
                                   input_shape=tuple(int(d) for d in input_shape) if input_shape else None,
                                   precision=precision, **({"dynamic": True} if dynamic else {}), **options)
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
    """What a runtime really executes, counted per kind, as its plug-in's ``op_counts`` reads it back: for ONNX
    Runtime the op types of the graph after its optimiser (``QLinearConv`` = an INT8 convolution); for OpenVINO
    ``"<layer> <precision>"`` of the compiled model's runtime graph (``"Convolution u8"`` = INT8)."""
    if not isinstance(runner, Runner):
        raise TypeError(f"runner must be a mclab.runtimes.Runner, got {type(runner).__name__}")
    if not provides(runner.runtime, "op_counts"):
        readable = [k for k in RUNTIMES if provides(k, "op_counts")]
        raise ValueError(f"runner.runtime={runner.runtime!r} cannot read back its executed ops; "
                         f"int8_op_counts reads {readable}")
    return plugin(runner.runtime).op_counts(runner)
