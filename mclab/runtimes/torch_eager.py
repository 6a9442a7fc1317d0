"""PyTorch eager mode (the baseline every other runtime is compared with), FP32 or BF16 autocast.

The baseline is PyTorch as its users call it: ``model(x)`` on a contiguous NCHW tensor. The NHWC memory format
(``channels_last=True``) is faster on oneDNN CPUs (measured on ResNet-18, 224x224, 2 threads, AVX-512: 1.22x at
FP32), and the defaults audit (``benchmarks/defaults.py``) shows it; the default stays NCHW so that every speed-up in
the kit is measured against the plain PyTorch a learner runs (:data:`KEPT_DEFAULTS`)."""
from __future__ import annotations

from typing import Any

from .base import Runner, resolve
from .profile import torch_ops as profile  # torch.profiler: self CPU time per aten op

__all__ = ["KNOBS", "KEPT_DEFAULTS", "build", "probe", "profile"]

# Settings that leave the answer the same up to rounding (:func:`mclab.runtimes.audit.audit_defaults` sweeps
# them; the default first). ``channels_last``: the NHWC memory format for the weights and each input.
KNOBS: dict[str, tuple] = {"channels_last": (False, True)}
# Defaults kept on purpose where the audit finds a faster value, and why (the audit prints the reason in its row)
KEPT_DEFAULTS: dict[str, str] = {
    "channels_last": "the eager runtime is the kit's reference, PyTorch as users call it (model(x) on NCHW): every "
                     "speed-up is measured against it; NHWC is the faster layout here",
}


def build(model: Any, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None,
          precision: str = "fp32", channels_last: bool = False) -> Runner:
    """A :class:`Runner` on PyTorch eager. ``model``: a torchvision name (random weights) or a module.
    ``precision="bf16"`` runs under CPU autocast to bfloat16 and returns FP32 outputs. ``channels_last=True``
    runs a copy of the module and each 4-D input in the NHWC memory format (oneDNN's native layout; same outputs up
    to rounding, faster convolutions: :data:`KNOBS`); the default keeps PyTorch's NCHW (:data:`KEPT_DEFAULTS`).
    ``Runner.info["channels_last"]`` says which ran."""
    import contextlib
    import copy

    import torch

    res = resolve(model, input_shape)
    module, label = res.module.eval(), res.label
    shape = (batch, *res.input_shape)
    if threads is not None:
        torch.set_num_threads(threads)
    bf16 = precision == "bf16"
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last={channels_last!r} must be True or False")
    channels_last = channels_last and len(shape) == 4  # NHWC is a 4-D format
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        module = copy.deepcopy(module).to(memory_format=fmt)  # the caller's module keeps its layout

    def run(x: Any) -> Any:
        amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.inference_mode(), amp:
            return module(torch.from_numpy(x).contiguous(memory_format=fmt)).float().contiguous().numpy()

    runner = Runner(label, "torch", tuple(shape), "bf16" if bf16 else "fp32", threads or torch.get_num_threads(), run,
                    info={"version": torch.__version__, "channels_last": channels_last}, handle=module)
    try:  # fail here, with the shape named, rather than deep inside a timing loop
        runner.run(runner.example_input())
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(f"input shape {shape[1:]} does not fit {label}: {first}") from None
    return runner


def probe() -> dict[str, Any]:
    """What ``mclab doctor`` shows for PyTorch (run in a fresh interpreter): version, devices, CPU capability."""
    import torch

    devices = ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    return {"version": torch.__version__, "devices": devices,
            "details": {"cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
                        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                        "mkldnn": torch.backends.mkldnn.is_available(), "num_threads": torch.get_num_threads()}}
