"""``torch.compile``: PyTorch's graph compiler (TorchDynamo captures the graph, Inductor generates fused
C++/OpenMP kernels on CPU, Triton on GPU), at FP32, BF16 autocast, or INT8 through PT2E quantisation.

:func:`compile_module` compiles and runs once, timing that first call (the compile), and returns a
:class:`Compiled`: the compiled callable with its :class:`CompileReport` (and, when asked, the code Inductor
generated). :func:`quantize_pt2e` is PyTorch's own static INT8 path for x86 (``torch.export`` -> torchao's
``X86InductorQuantizer`` -> calibrate -> ``convert_pt2e``), which Inductor with ``freezing`` lowers to oneDNN
INT8 kernels. ``build(...)`` is the registry entry (``load(model, "torch-compile", precision=...)``).
Introduced in notebook 12.
"""
from __future__ import annotations

import contextlib
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from ..bench import sync_fn
from .base import RANDOM_CALIBRATION, Runner, random_batches, resolve
from .profile import torch_ops as profile  # torch.profiler: self CPU time per op and compiled graph call

__all__ = ["KNOBS", "MODES", "CompileReport", "Compiled", "compile_module", "PT2EInt8", "quantize_pt2e", "int8_kernels",
           "build", "available", "probe", "profile"]

# torch.compile modes. "reduce-overhead" adds CUDA graphs (GPU only); "max-autotune-no-cudagraphs" tries
# several kernel configurations per operator (long compiles).
MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# Settings of :func:`build` that leave the answer the same up to rounding (:func:`mclab.runtimes.audit.audit_defaults`
# sweeps them; the default first): ``freezing`` (weights as constants), ``cpp_wrapper`` (Inductor's C++ wrapper
# instead of a Python one: less per-call overhead, a longer compile; None = on at INT8 only, where
# benchmarks/defaults.py measured ResNet-18 1.07-1.17x faster per call with it and FP32/BF16 showed no gain),
# ``mode`` ("max-autotune-no-cudagraphs" times
# several kernel configurations per operator: minutes of compiling for ResNet-18 on a small CPU).
KNOBS: dict[str, tuple] = {"freezing": (True, False), "cpp_wrapper": (None, False, True),
                           "mode": ("default", "max-autotune-no-cudagraphs")}

# Under non-strict torch.export (its default) one module called twice (torchvision's BasicBlock calls its one
# ReLU twice) becomes one source partition with two outputs, and X86InductorQuantizer's fusion annotation raises
# "Input partition has more than one output node": pytorch/ao#4478 (Linear, fixed by pytorch/ao#4480), Conv2d
# follow-up pytorch/ao#4482. A strict (Dynamo) export gives each call its own partition, so it is tried first.
_REUSED_MODULE_ISSUE = ("X86InductorQuantizer cannot annotate a module that is called more than once under "
                        "non-strict torch.export (pytorch/ao#4478, pytorch/ao#4482)")


@dataclass
class CompileReport:
    """What compiling cost: the first call (graph capture + code generation + the run), in seconds."""

    mode: str
    backend: str
    dynamic: bool | None
    compile_s: float            # wall time of the first call, which compiles
    graphs: int | None          # graphs Dynamo captured (> 1: graph breaks)
    graph_breaks: int | None
    freezing: bool = False      # Inductor treated the weights as constants (folds BN, prepacks oneDNN weights)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Compiled:
    """A compiled module, callable as ``compiled(x)``, and what compiling it cost."""

    fn: Callable[[Any], Any]    # fn(tensor) -> tensor under inference_mode (and bf16 autocast when asked)
    report: CompileReport
    code: list[str] = field(default_factory=list)  # Inductor's generated Python/C++ wrapper(s) when code=True

    def __call__(self, x: Any) -> Any:
        return self.fn(x)

    def as_dict(self) -> dict[str, Any]:
        return self.report.as_dict()


def compile_module(module: Any, example: Any, *, mode: str = "default", backend: str = "inductor",
                   dynamic: bool | None = None, bf16: bool = False, freezing: bool = False,
                   cpp_wrapper: bool = False, code: bool = False) -> Compiled:
    """``torch.compile(module)`` and run it once on ``example`` (a tensor) to trigger compilation.

    Returns a :class:`Compiled`: calling it (``compiled(tensor) -> tensor``) runs under ``inference_mode`` (and
    bf16 autocast when ``bf16``); ``compiled.report.compile_s`` is the first call's wall time.
    ``freezing=True`` sets Inductor's ``freezing`` for this module's compiles (weights become constants: BatchNorm
    folds into the convolution and oneDNN prepacks the weights — what makes PT2E INT8 run INT8 kernels on CPU).
    ``cpp_wrapper=True`` sets Inductor's ``cpp_wrapper`` (the graph is called from generated C++, not Python).
    ``code=True`` keeps the code Inductor generated for the first call in ``compiled.code``.
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
    module.eval()  # (an exported model's eval() returns None)
    if freezing and backend == "inductor":
        # freezing goes into the compile's options as well as the call-time patch below: Dynamo keeps one cache per
        # forward code object and reuses an entry for any torch.compile of equal settings, so without it a frozen
        # and an unfrozen compile of the same module would run whichever graph was compiled last
        import torch._inductor

        extra = {} if mode == "default" else torch._inductor.list_mode_options(mode)
        options = {**extra, "freezing": True}
        compiled = torch.compile(module, backend=backend, dynamic=dynamic, options=options)
    else:
        compiled = torch.compile(module, mode=mode, backend=backend, dynamic=dynamic)
    dev = example.device.type

    def fn(x: Any) -> Any:
        # torch.compile(options={"freezing": True}) left BatchNorm unfolded here (torch 2.14): patch the config
        amp = torch.autocast(dev, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        patch = {**({"freezing": True} if freezing else {}), **({"cpp_wrapper": True} if cpp_wrapper else {})}
        frz = torch._inductor.config.patch(**patch) if patch else contextlib.nullcontext()
        with torch.inference_mode(), amp, frz:
            return compiled(x)

    sources: list[str] = []
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():  # Inductor's INT8 lowering copies zero points with torch.tensor(tensor)
            warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning)
            if code:
                from torch._inductor.utils import run_and_get_code

                _, sources = run_and_get_code(fn, example)
            else:
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
    return Compiled(fn, CompileReport(mode, backend, dynamic, seconds, graphs, breaks, freezing), list(sources))


@dataclass
class PT2EInt8:
    """A module quantised by PT2E: ``module`` (a GraphModule with quantize/dequantize ops around each
    quantisable operator, for Inductor to fuse into INT8 kernels) and how it was made."""

    module: Any
    export: str                 # "strict" or "non-strict" torch.export
    calibration: dict[str, Any]
    seconds: float              # export + prepare + calibrate + convert

    def as_dict(self) -> dict[str, Any]:
        return {"quantizer": "X86InductorQuantizer (static, per-channel INT8 weights, UINT8 activations)",
                "export": self.export, "calibration": self.calibration, "quantize_s": self.seconds}


def quantize_pt2e(module: Any, example: Any, *, calibration: Iterable[Any] | None = None,
                  seed: int = 0, batches: int = RANDOM_CALIBRATION["batches"]) -> PT2EInt8:
    """Static INT8 with PyTorch's PT2E flow for x86: ``torch.export`` the module on ``example``, annotate it with
    torchao's ``X86InductorQuantizer`` (default config), insert observers (``prepare_pt2e``), run the calibration
    batches (``calibration``, tensors of ``example``'s shape; default ``batches`` random N(0, 1) tensors from
    ``seed``), and ``convert_pt2e``. Compile the result with ``compile_module(..., freezing=True)``.

    The export is strict (Dynamo) first: non-strict export merges every call of a reused module into one
    partition, which the quantizer rejects (pytorch/ao#4478, #4482). A module neither export can capture, or
    that the quantizer rejects, raises a ``ValueError`` that says which step failed and why."""
    import torch
    from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    t0 = time.perf_counter()
    module = module.eval()
    if calibration is None:
        cal = [torch.from_numpy(b) for b in random_batches(tuple(example.shape), batches, seed)]
        info: dict[str, Any] = {"data": f"random N(0, 1), seed {seed}", "batches": batches}
    else:
        cal = [torch.as_tensor(b) for b in calibration]
        if not cal:
            raise ValueError("calibration is empty; pass at least one batch or None for random batches")
        bad = [tuple(b.shape) for b in cal if tuple(b.shape) != tuple(example.shape)]
        if bad:  # the export is static: every batch has the example's shape, batch size included
            raise ValueError(f"calibration batch of shape {bad[0]} does not fit the exported shape "
                             f"{tuple(example.shape)}; pass batches shaped like the example")
        info = {"data": "given", "batches": len(cal)}
    info["images"] = int(sum(b.shape[0] for b in cal))
    errors = []
    for strict in (True, False):
        try:
            graph = torch.export.export(module, (example,), strict=strict).module()
        except Exception as e:  # noqa: BLE001 - any capture failure: try the other export, then report both
            errors.append(f"{'strict' if strict else 'non-strict'} torch.export: {_first_line(e)}")
            continue
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
        try:
            prepared = prepare_pt2e(graph, quantizer)
        except ValueError as e:
            why = _REUSED_MODULE_ISSUE if "more than one output node" in str(e) else "X86InductorQuantizer"
            errors.append(f"prepare_pt2e after {'strict' if strict else 'non-strict'} export: {_first_line(e)} "
                          f"[{why}]")
            continue
        with torch.no_grad():
            for b in cal:
                prepared(b)
        converted = move_exported_model_to_eval(convert_pt2e(prepared))
        allow_exported_model_train_eval(converted)  # so .eval() (compile_module) works: a no-op from here
        return PT2EInt8(converted, "strict" if strict else "non-strict", info, time.perf_counter() - t0)
    raise ValueError(f"PT2E INT8 failed for {type(module).__name__}: " + "; ".join(errors))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


# oneDNN INT8 operators Inductor calls once freezing has fused quantize -> op -> dequantize: from a Python wrapper
# (torch.ops.onednn.qconv_pointwise.tensor) or a C++ one (cpp_wrapper: aoti_torch_cpu__qconv_pointwise_tensor)
_INT8_OPS = re.compile(r"torch\.ops\.onednn\.(q\w+)|aoti_torch_cpu__(q(?:conv|linear)\w*?_pointwise)")


def int8_kernels(code: Iterable[str]) -> dict[str, int]:
    """Count the oneDNN INT8 calls (``torch.ops.onednn.qconv_pointwise``, ``qlinear_pointwise`` …, or their C++
    shims under ``cpp_wrapper``) in Inductor's generated code
    (``Compiled.code``): zero means the INT8 graph ran as dequantize + FP32 operators."""
    out: dict[str, int] = {}
    for src in code:
        for py, cpp in _INT8_OPS.findall(src):
            op = py or cpp
            out[op] = out.get(op, 0) + 1
    return out


def build(model: Any, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None,
          precision: str = "fp32", freezing: bool = True, cpp_wrapper: bool | None = None,
          mode: str = "default") -> Runner:
    """Registry entry: compile a torchvision name or a module on CPU at "fp32", "bf16" (autocast) or "int8"
    (:func:`quantize_pt2e` on 8 random N(0, 1) batches, seed 0); the compile happens here, so
    ``Runner.info['compile_s']`` is its cost and ``run`` is steady state. At INT8, ``Runner.info`` also says
    the export, the calibration and ``int8_kernels`` (oneDNN INT8 calls in the generated code).

    ``freezing`` (default True: compiled for inference, as PyTorch's CPU inference guidance recommends) makes the
    weights constants, so Inductor folds BatchNorm into the convolutions and oneDNN prepacks their weights; without
    it the weights are graph inputs and a compiled ResNet can run slower than eager (notebook 12 measures both:
    ``runtimes.load(model, "torch-compile", freezing=False)``). ``Runner.info["freezing"]`` says which ran. INT8
    always freezes: it is what lowers PT2E's quantize -> op -> dequantize to oneDNN INT8 kernels, so
    ``freezing=False`` with it is a ``ValueError``. ``cpp_wrapper`` (None: on at INT8, off otherwise —
    see :data:`KNOBS`) and ``mode`` (:data:`MODES`) go to :func:`compile_module`; ``Runner.info`` holds both.
    :data:`KNOBS` lists the settings
    ``benchmarks/defaults.py`` sweeps against these defaults."""
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
    if cpp_wrapper is None:
        cpp_wrapper = precision == "int8"
    for name, value in (("freezing", freezing), ("cpp_wrapper", cpp_wrapper)):
        if not isinstance(value, bool):
            raise ValueError(f"{name}={value!r} must be True or False")
    info: dict[str, Any] = {"version": torch.__version__, "cpp_wrapper": cpp_wrapper}
    if precision == "int8" and not freezing:
        raise ValueError("freezing=False with precision='int8': INT8 always freezes (it is what lowers PT2E's "
                         "quantize -> op -> dequantize to oneDNN INT8 kernels)")
    if precision == "int8":
        import torchao

        q = quantize_pt2e(module, example)
        compiled = compile_module(q.module, example, mode=mode, freezing=True, cpp_wrapper=cpp_wrapper, code=True)
        info.update({"torchao": torchao.__version__, **q.as_dict(), "int8_kernels": int8_kernels(compiled.code)})
        actual = "int8"
    else:
        compiled = compile_module(module, example, mode=mode, bf16=precision == "bf16", freezing=freezing,
                                  cpp_wrapper=cpp_wrapper)
        actual = "bf16" if precision == "bf16" else "fp32"

    def run(x: Any) -> Any:
        return compiled(torch.from_numpy(x)).float().numpy()

    return Runner(label, "torch-compile", shape, actual, threads or torch.get_num_threads(), run,
                  info={**info, **compiled.as_dict()}, handle=compiled.fn)


def _compiler() -> str | None:
    """The C++ compiler Inductor builds CPU kernels with (``$CXX``, g++ or c++), or None."""
    import os
    import shutil

    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


def available() -> tuple[bool, str]:
    """(True, "") where Inductor can build CPU kernels: it needs a C++ compiler."""
    cxx = _compiler()
    return (True, "") if cxx else (False, "no C++ compiler found (g++, c++ or $CXX): Inductor cannot build CPU "
                                          "kernels; install one, e.g. `apt-get install g++`")


def probe() -> dict[str, Any]:
    """What ``mclab doctor`` shows for torch.compile (run in a fresh interpreter): the compiler Inductor uses."""
    import torch

    ok, why = available()
    if not ok:
        raise RuntimeError(why)
    return {"version": torch.__version__, "devices": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []),
            "details": {"compiler_for_inductor": _compiler(), "backend": "inductor"}}
