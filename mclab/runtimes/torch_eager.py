"""PyTorch eager mode (the baseline every other runtime is compared with)."""
from __future__ import annotations

from typing import Any

from . import Runner


def build(model: str, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None) -> Runner:
    import numpy as np
    import torch

    from ..models import zoo

    zm = zoo(model)  # raises ValueError naming torchvision's models for an unknown name
    shape = (batch, *(input_shape or zm.input_shape[1:]))
    if threads is not None:
        torch.set_num_threads(threads)
    module = zm.module

    def run(x: Any) -> Any:
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    runner = Runner(model, "torch", tuple(shape), "fp32", threads or torch.get_num_threads(), run)
    try:  # fail here, with the shape named, rather than deep inside a timing loop
        runner.run(runner.example_input())
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(f"input shape {shape[1:]} does not fit {model}: {first}") from None
    return runner
