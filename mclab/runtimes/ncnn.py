"""NCNN: a PyTorch model converted with pnnx (TorchScript → ``.ncnn.param`` + ``.ncnn.bin``), run with
ncnn's Python bindings.

Bottom: :func:`export` traces a module and runs the ``pnnx`` converter (failures raise ``ValueError``
with pnnx's own message); :func:`net` loads a ``.param``/``.bin`` pair with the storage/arithmetic
options of a precision (:data:`OPTIONS`) and reads back what ncnn kept. Top: ``build(...)`` for the
runtime registry (``load(model, "ncnn")``). NCNN runs one image per call (a 3-D ``ncnn.Mat``); a batch
is a loop. Its defaults — fp16 weights from pnnx, fp16 storage and arithmetic in ncnn — are what
``precision="default"`` gives; ``"fp32"`` pins everything to float32. Introduced in notebook 11.
"""
from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

from .base import Runner, resolve
from .export import build_folder, remove_with

__all__ = ["KNOBS", "OPTIONS", "INT8_UNAVAILABLE", "export", "net", "build", "available", "probe", "check_file"]

# ncnn.Option flags per precision (the flags not named stay at ncnn's defaults). "fp16_weights" is pnnx's
# fp16= switch: whether the .bin file stores weights as float16.
OPTIONS: dict[str, dict[str, bool]] = {
    "fp32": {"fp16_weights": False, "use_fp16_storage": False, "use_fp16_packed": False,
             "use_fp16_arithmetic": False, "use_bf16_storage": False, "use_bf16_packed": False},
    "fp16": {"fp16_weights": True, "use_fp16_storage": True, "use_fp16_packed": True, "use_fp16_arithmetic": True,
             "use_bf16_storage": False},
    "bf16": {"fp16_weights": False, "use_fp16_storage": False, "use_fp16_packed": False,
             "use_fp16_arithmetic": False, "use_bf16_storage": True, "use_bf16_packed": True},
    "default": {"fp16_weights": True},  # what pnnx and ncnn do when nobody asks
}
INT8_UNAVAILABLE = ("NCNN INT8 needs the ncnn2table and ncnn2int8 tools, which are built from the ncnn source "
                    "tree; the ncnn/pnnx wheels on PyPI do not ship them")
# Settings of :func:`build` that leave the answer the same up to rounding (:func:`mclab.runtimes.audit.audit_defaults`
# sweeps them; the default first): ``packing`` is ncnn.Option ``use_packing_layout`` (channels packed 4/8/16 wide
# for SIMD, ncnn's default). FP16 storage changes the answer: it is a precision, not a knob.
KNOBS: dict[str, tuple] = {"packing": (True, False)}
_FLAGS = ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage", "use_bf16_packed",
          "use_packing_layout", "use_winograd_convolution", "use_sgemm_convolution", "use_int8_inference")


def export(module: Any, example: Any, out_dir: str | os.PathLike, *, name: str = "model",
           fp16_weights: bool = False) -> tuple[str, str]:
    """Trace ``module`` on ``example`` (a torch tensor, batch 1) and convert it with pnnx; returns the
    ``(.ncnn.param, .ncnn.bin)`` paths. ``fp16_weights=True`` is pnnx's default (half-size ``.bin``)."""
    import pnnx
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pt = out / f"{name}.pt"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.trace is deprecated": pnnx reads TorchScript
            torch.jit.trace(module.eval(), example, check_trace=False).save(str(pt))
    except Exception as e:  # tracing raises many types (TracingCheckError, RuntimeError …)
        raise ValueError(f"cannot trace {type(module).__name__} for pnnx: {type(e).__name__}: "
                         f"{str(e).strip().splitlines()[0][:200]}") from None
    shape = ",".join(str(int(d)) for d in example.shape)
    param, binf = out / f"{name}.ncnn.param", out / f"{name}.ncnn.bin"
    cmd = [os.path.join(os.path.dirname(pnnx.__file__), "pnnx"), str(pt), f"inputshape=[{shape}]f32",
           f"ncnnparam={param}", f"ncnnbin={binf}", f"fp16={int(fp16_weights)}",
           f"pnnxparam={out / (name + '.pnnx.param')}", f"pnnxbin={out / (name + '.pnnx.bin')}",
           f"pnnxpy={out / (name + '_pnnx.py')}", f"pnnxonnx={out / (name + '.pnnx.onnx')}",
           f"ncnnpy={out / (name + '_ncnn.py')}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out)
    if proc.returncode != 0 or not param.is_file() or not binf.is_file():
        log = (proc.stderr + proc.stdout).strip().splitlines()
        why = [ln for ln in log if "not supported" in ln or "error" in ln.lower() or "unknown" in ln.lower()]
        raise ValueError(f"pnnx could not convert {type(module).__name__} (exit {proc.returncode}): "
                         f"{(why or log or ['no output'])[-1][:300]}")
    unsupported = [ln.split()[0] for ln in param.read_text().splitlines()[2:] if ln.startswith("pnnx.")]
    if unsupported:
        raise ValueError(f"pnnx left operators NCNN cannot run in {param.name}: {sorted(set(unsupported))}")
    return str(param), str(binf)


def net(param: str, binf: str, *, precision: str = "fp32", threads: int | None = None,
        packing: bool = True) -> tuple[Any, dict[str, Any]]:
    """An ``ncnn.Net`` loaded from ``param``/``binf`` with the options of ``precision`` (:data:`OPTIONS`) and
    ``use_packing_layout=packing``; returns it and the option flags as ncnn holds them after loading (it switches
    off what the CPU lacks)."""
    import ncnn

    if precision not in OPTIONS:
        raise ValueError(f"precision={precision!r} is not an NCNN option set; allowed: {list(OPTIONS)}"
                         + ("; " + INT8_UNAVAILABLE if precision == "int8" else ""))
    n = ncnn.Net()
    for flag, on in OPTIONS[precision].items():
        if flag.startswith("use_"):
            setattr(n.opt, flag, on)
    if not isinstance(packing, bool):
        raise ValueError(f"packing={packing!r} must be True or False")
    n.opt.use_packing_layout = packing
    if threads:
        n.opt.num_threads = threads
    if n.load_param(str(param)) != 0 or n.load_model(str(binf)) != 0:
        raise ValueError(f"cannot load {param} / {binf} as an NCNN model (corrupt or truncated?)")
    if not n.input_names() or not n.output_names():
        raise ValueError(f"{param} declares no input or output blob")
    flags = {f: bool(getattr(n.opt, f)) for f in _FLAGS}
    return n, {**flags, "num_threads": n.opt.num_threads}


def _precision(flags: dict[str, Any]) -> str:
    """What the loaded options compute in: fp16 arithmetic wins, then fp16/bf16 storage, else fp32."""
    if flags["use_fp16_arithmetic"] and flags["use_fp16_storage"]:
        return "fp16"
    if flags["use_fp16_storage"]:
        return "fp32 (fp16 storage)"
    if flags["use_bf16_storage"]:
        return "fp32 (bf16 storage)"
    return "fp32"


def runner_for_files(param: str, binf: str, input_shape: tuple[int, ...], *, precision: str = "fp32",
                     threads: int | None = None, model: str | None = None, packing: bool = True) -> Runner:
    """A :class:`Runner` over an NCNN model; ``input_shape`` is (B, C, H, W); a batch runs image by image."""
    import ncnn
    import numpy as np

    n, flags = net(param, binf, precision=precision, threads=threads, packing=packing)
    i_name, o_name = n.input_names()[0], n.output_names()[0]
    # verify weights fit the declared shape once, with a clear error instead of a crash in a timing loop
    probe = n.create_extractor()
    probe.input(i_name, ncnn.Mat(np.zeros(input_shape[1:], np.float32)).clone())
    if probe.extract(o_name)[0] != 0:
        raise ValueError(f"NCNN model {param} failed on input shape {input_shape[1:]}")

    def run(x: Any) -> Any:
        outs = []
        for img in x:
            ex = n.create_extractor()
            ex.input(i_name, ncnn.Mat(np.ascontiguousarray(img)))
            outs.append(np.array(ex.extract(o_name)[1]))
        return np.stack(outs)

    size = os.path.getsize(binf)
    return Runner(model or str(param), "ncnn", tuple(input_shape), _precision(flags), n.opt.num_threads, run,
                  file=str(param), info={**flags, "bin": str(binf), "bin_bytes": size,
                                         "fp16_weights": OPTIONS[precision].get("fp16_weights")}, handle=n)


def build(model: Any, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None,
          precision: str = "fp32", packing: bool = True) -> Runner:
    """Registry entry: a ``.param`` file (its ``.bin`` beside it) runs as it is; a torchvision name or a
    module is converted with pnnx (fp16 weights only for "fp16" and "default"). ``packing=False`` switches off
    ncnn's packed SIMD layout (``use_packing_layout``, read back in ``Runner.info``)."""
    import torch

    if precision == "int8":
        raise ValueError(f"precision='int8' is not available for NCNN here: {INT8_UNAVAILABLE}")
    if isinstance(model, str) and model.endswith(".param"):
        if input_shape is None:
            raise ValueError("input_shape (C, H, W) is required for an NCNN .param file: it does not store one")
        binf = model[: -len(".param")] + ".bin"
        if not os.path.isfile(binf):
            raise ValueError(f"model file {binf!r} (the weights beside {model}) does not exist")
        return runner_for_files(model, binf, (batch, *input_shape), precision=precision, threads=threads,
                                packing=packing)
    res = resolve(model, input_shape)
    module, label, rest = res.module, res.label, res.input_shape
    example = torch.randn(1, *rest)
    with build_folder("mclab-ncnn-") as tmp:  # TorchScript, pnnx's files, the NCNN pair: ~170 MB for a ResNet-18
        param, binf = export(module, example, tmp, name=os.path.basename(label),
                             fp16_weights=OPTIONS[precision]["fp16_weights"])
        runner = runner_for_files(param, binf, (batch, *rest), precision=precision, threads=threads, model=label,
                                  packing=packing)
    remove_with(runner, tmp)
    return runner


def available() -> tuple[bool, str]:
    """NCNN runs with the ``ncnn`` package; converting PyTorch models also needs ``pnnx``."""
    import importlib.util

    if importlib.util.find_spec("pnnx") is None:
        return False, "pnnx is not installed (pip install pnnx): it converts PyTorch models to NCNN"
    return True, ""


def probe() -> dict[str, Any]:
    """What ``mclab doctor`` shows for NCNN (run in a fresh interpreter): version; pnnx converts to it."""
    import ncnn

    ok, why = available()
    if not ok:
        raise RuntimeError(why)
    return {"version": getattr(ncnn, "__version__", "?"), "devices": ["CPU"],
            "details": {"vulkan_gpus": ncnn.get_gpu_count() if hasattr(ncnn, "get_gpu_count") else 0}}


_PARAM_MAGIC = "7767517"  # the first line of every .param file ncnn writes


def check_file(path: str | os.PathLike) -> None:
    """``ValueError`` naming ``path`` unless it is an NCNN ``.param`` (its magic first line, then layer and blob
    counts, then as many layer lines as it declares) with its ``.bin`` beside it."""
    path = os.fspath(path)
    try:
        lines = Path(path).read_text(encoding="ascii").splitlines()
    except UnicodeDecodeError:
        lines = []
    if not lines or lines[0].strip() != _PARAM_MAGIC:
        raise ValueError(f"model file {path!r} is not an NCNN .param: it does not start with the magic "
                         f"{_PARAM_MAGIC}")
    counts = lines[1].split() if len(lines) > 1 else []
    if len(counts) != 2 or not all(c.isdigit() for c in counts) or len(lines) - 2 < int(counts[0]):
        raise ValueError(f"model file {path!r} is cut short: it declares {counts[0] if counts else '?'} layers "
                         f"and holds {max(0, len(lines) - 2)}")
    binf = path[: -len(".param")] + ".bin"
    if not os.path.isfile(binf):
        raise ValueError(f"model file {binf!r} (the weights beside {path}) does not exist")
