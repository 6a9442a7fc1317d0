"""PyTorch eager mode (the baseline every other runtime is compared with), FP32 or BF16 autocast."""
from __future__ import annotations

from typing import Any

from .base import Runner, resolve

__all__ = ["build"]


def build(model: Any, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None,
          precision: str = "fp32") -> Runner:
    """A :class:`Runner` on PyTorch eager. ``model``: a torchvision name (random weights) or a module.
    ``precision="bf16"`` runs under CPU autocast to bfloat16 and returns FP32 outputs."""
    import contextlib

    import torch

    res = resolve(model, input_shape)
    module, label = res.module.eval(), res.label
    shape = (batch, *res.input_shape)
    if threads is not None:
        torch.set_num_threads(threads)
    bf16 = precision == "bf16"

    def run(x: Any) -> Any:
        amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.inference_mode(), amp:
            return module(torch.from_numpy(x)).float().numpy()

    runner = Runner(label, "torch", tuple(shape), "bf16" if bf16 else "fp32", threads or torch.get_num_threads(), run,
                    info={"version": torch.__version__}, handle=module)
    try:  # fail here, with the shape named, rather than deep inside a timing loop
        runner.run(runner.example_input())
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(f"input shape {shape[1:]} does not fit {label}: {first}") from None
    return runner
