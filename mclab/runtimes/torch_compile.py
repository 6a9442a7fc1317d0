"""``torch.compile``: PyTorch's graph compiler (TorchDynamo captures the graph, Inductor generates fused
C++/OpenMP kernels on CPU, Triton on GPU), FP32 or BF16 autocast.

:func:`compile_module` compiles and runs once, timing that first call (the compile), and returns a
:class:`Compiled`: the compiled callable with its :class:`CompileReport`; ``build(...)`` is the registry entry
(``load(model, "torch-compile")``). Introduced in notebook 12.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from ..bench import sync_fn
from .base import Runner, resolve

__all__ = ["MODES", "CompileReport", "Compiled", "compile_module", "build"]

# torch.compile modes. "reduce-overhead" adds CUDA graphs (GPU only); "max-autotune-no-cudagraphs" tries
# several kernel configurations per operator (long compiles).
MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class CompileReport:
    """What compiling cost: the first call (graph capture + code generation + the run), in seconds."""

    mode: str
    backend: str
    dynamic: bool | None
    compile_s: float            # wall time of the first call, which compiles
    graphs: int | None          # graphs Dynamo captured (> 1: graph breaks)
    graph_breaks: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Compiled:
    """A compiled module, callable as ``compiled(x)``, and what compiling it cost."""

    fn: Callable[[Any], Any]    # fn(tensor) -> tensor under inference_mode (and bf16 autocast when asked)
    report: CompileReport

    def __call__(self, x: Any) -> Any:
        return self.fn(x)

    def as_dict(self) -> dict[str, Any]:
        return self.report.as_dict()


def compile_module(module: Any, example: Any, *, mode: str = "default", backend: str = "inductor",
                   dynamic: bool | None = None, bf16: bool = False) -> Compiled:
    """``torch.compile(module)`` and run it once on ``example`` (a tensor) to trigger compilation.

    Returns a :class:`Compiled`: calling it (``compiled(tensor) -> tensor``) runs under ``inference_mode`` (and
    bf16 autocast when ``bf16``); ``compiled.report.compile_s`` is the first call's wall time.
    ``torch._dynamo.reset()`` runs first so a cached compile from an earlier call does not hide the cost.
    """
    import torch

    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is unknown; allowed: {list(MODES)}")
    if mode == "reduce-overhead" and example.device.type != "cuda":
        raise ValueError("mode='reduce-overhead' uses CUDA graphs and needs a CUDA input; use 'default' on CPU")
    torch._dynamo.reset()
    with contextlib.suppress(ImportError, AttributeError):  # reset() keeps Dynamo's counters: clear them so
        from torch._dynamo.utils import counters  # graphs and breaks below are this compile's own

        counters.clear()
    compiled = torch.compile(module.eval(), mode=mode, backend=backend, dynamic=dynamic)
    dev = example.device.type

    def fn(x: Any) -> Any:
        amp = torch.autocast(dev, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.inference_mode(), amp:
            return compiled(x)

    t0 = time.perf_counter()
    try:
        fn(example)
    except Exception as e:  # Dynamo/Inductor raise their own types; re-raised with the first line
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise ValueError(f"torch.compile failed for {type(module).__name__}: {first}") from None
    sync = sync_fn(example.device)
    if sync:
        sync()
    seconds = time.perf_counter() - t0
    graphs = breaks = None
    with contextlib.suppress(ImportError, AttributeError):  # counters are internal; report None if they move
        from torch._dynamo.utils import counters

        graphs = int(counters["stats"]["unique_graphs"])
        breaks = int(sum(counters["graph_break"].values()))
    return Compiled(fn, CompileReport(mode, backend, dynamic, seconds, graphs, breaks))


def build(model: Any, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None,
          precision: str = "fp32") -> Runner:
    """Registry entry: compile a torchvision name or a module on CPU at "fp32" or "bf16" (autocast); the
    compile happens here, so ``Runner.info['compile_s']`` is its cost and ``run`` is steady state."""
    import torch

    res = resolve(model, input_shape)
    module, label, rest = res.module, res.label, res.input_shape
    if threads is not None:
        torch.set_num_threads(threads)
    shape = (batch, *rest)
    example = torch.randn(shape)
    try:
        with torch.inference_mode():
            module.eval()(example)
    except RuntimeError as e:
        raise ValueError(f"input shape {rest} does not fit {label}: {str(e).strip().splitlines()[0]}") from None
    bf16 = precision == "bf16"
    compiled = compile_module(module, example, bf16=bf16)

    def run(x: Any) -> Any:
        return compiled(torch.from_numpy(x)).float().numpy()

    return Runner(label, "torch-compile", shape, "bf16" if bf16 else "fp32", threads or torch.get_num_threads(), run,
                  info={"version": torch.__version__, **compiled.as_dict()}, handle=compiled.fn)
