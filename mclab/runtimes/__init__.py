"""One small interface over inference runtimes: ``load(model, runtime)`` -> :class:`Runner`.

A :class:`Runner` takes a NumPy batch and returns a NumPy array; it knows its input shape and
the precision it actually runs at. Each runtime lives in its own module and imports its
framework only when used; the registry maps names to builders. Introduced in notebook 01
(``mclab bench``); notebooks 09–12 add runtimes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["Runner", "RUNTIMES", "load", "available"]


@dataclass
class Runner:
    """A model ready to run on one runtime."""

    model: str                       # torchvision name or file path
    runtime: str
    input_shape: tuple[int, ...]     # (B, C, H, W) with the batch requested
    precision: str                   # what the runtime actually computes in
    threads: int | None
    run: Callable[[Any], Any]        # numpy batch -> numpy output
    file: str | None = None          # the model file it reads, if any

    def example_input(self, seed: int = 0):
        import numpy as np

        return np.random.default_rng(seed).standard_normal(self.input_shape, dtype=np.float32)


def _torch(model: str, **kw: Any) -> Runner:
    from .torch_eager import build

    return build(model, **kw)


def _onnxruntime(model: str, **kw: Any) -> Runner:
    from .onnxrt import build

    return build(model, **kw)


# name -> (builder, python module whose import makes it available)
RUNTIMES: dict[str, tuple[Callable[..., Runner], str]] = {
    "torch": (_torch, "torch"),
    "onnxruntime": (_onnxruntime, "onnxruntime"),
}


def available(runtime: str) -> tuple[bool, str]:
    """(True, version) when ``runtime`` imports here, else (False, the reason)."""
    import importlib

    if runtime not in RUNTIMES:
        return False, f"unknown runtime; known: {sorted(RUNTIMES)}"
    try:
        mod = importlib.import_module(RUNTIMES[runtime][1])
    except ImportError as e:
        return False, f"{RUNTIMES[runtime][1]} is not installed ({e})"
    return True, getattr(mod, "__version__", "?")


def load(model: str, runtime: str = "torch", *, batch: int = 1, threads: int | None = None,
         input_shape: tuple[int, ...] | None = None) -> Runner:
    """Build a :class:`Runner` for ``model`` (a torchvision name, or an ``.onnx`` path for
    onnxruntime). ``input_shape`` (C, H, W …, without batch) overrides the default."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r} is unknown; available runtimes: {sorted(RUNTIMES)}")
    ok, why = available(runtime)
    if not ok:
        raise ValueError(f"runtime={runtime!r} is not available here: {why}")
    if batch < 1:
        raise ValueError(f"batch={batch} must be >= 1")
    if threads is not None and threads < 1:
        raise ValueError(f"threads={threads} must be >= 1")
    if input_shape is not None and (not input_shape or any(int(d) < 1 for d in input_shape)):
        raise ValueError(f"input_shape={input_shape} must be positive sizes without the batch, e.g. 3,224,224")
    if model.endswith(".onnx") and runtime == "torch":
        raise ValueError(f"model={model!r} is an ONNX file; use --runtime onnxruntime")
    if model.endswith(".onnx") and not Path(model).is_file():
        raise ValueError(f"model file {model!r} does not exist or is not readable")
    return RUNTIMES[runtime][0](model, batch=batch, threads=threads, input_shape=input_shape)
