"""Mixed precision: how many bits each layer's weights get under a size budget.

:func:`bit_sensitivity` measures how far the outputs move (KL divergence from the float model's, per layer, at
8/6/4/3/2-bit weights fake-quantised by :func:`mclab.quant.quantize_weights_`); :func:`allocate_bits` solves the
allocation exactly as a small integer program by dynamic programming (the widths with the least summed divergence
that fit a size budget: HAQ's goal without its reinforcement learner); :func:`uniform_bits` is the baseline and
:func:`apply_bits_` replays an :class:`Allocation` on a model. Introduced in notebook 19.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .api import WeightOnlyConfig, quantizable_layers, quantize_weights_

__all__ = ["BIT_CHOICES", "Sensitivity", "bit_sensitivity", "Allocation", "uniform_bits", "allocate_bits",
           "apply_bits_"]

BIT_CHOICES = (8, 6, 4, 3, 2)


def _log_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return F.log_softmax(model(x), dim=1)


def _kl(ref: torch.Tensor, model: nn.Module, x: torch.Tensor) -> float:
    """Mean KL(float model ‖ model) over the batch, in nats: how far the outputs moved (>= 0, no label noise)."""
    return float(F.kl_div(_log_probs(model, x), ref, log_target=True, reduction="batchmean"))


@dataclass
class Sensitivity:
    """Per layer and bit width: how far the outputs move — the mean KL divergence (nats) of the model's softmax
    from the float model's on the data — when only that layer's weights are fake-quantised, and the layer's weight
    bytes at that width (integers + one float32 scale per channel)."""

    kl: dict[str, dict[int, float]]
    weight_bytes: dict[str, dict[int, int]]
    kinds: dict[str, str]                  # "first", "last", "depthwise", "pointwise", "conv", "linear"
    params: dict[str, int]

    def to_frame(self):
        import pandas as pd

        rows = [{"layer": n, "kind": self.kinds[n], "params": self.params[n],
                 **{f"KL {b}b": d[b] for b in sorted(d, reverse=True)}} for n, d in self.kl.items()]
        return pd.DataFrame(rows).set_index("layer")

    def as_dict(self) -> dict[str, Any]:
        return {"kl": {n: {str(b): v for b, v in d.items()} for n, d in self.kl.items()},
                "kinds": self.kinds, "params": self.params}


def _kind(name: str, mod: nn.Module, first: str, last: str) -> str:
    if name == first:
        return "first"
    if name == last:
        return "last"
    if isinstance(mod, nn.Conv2d):
        if mod.groups > 1 and mod.groups == mod.in_channels:
            return "depthwise"
        return "pointwise" if mod.kernel_size == (1, 1) else "conv"
    return "linear"


def _check_bits_list(bits: Any) -> tuple[int, ...]:
    if not isinstance(bits, (tuple, list)) or not bits or not all(
            isinstance(b, int) and not isinstance(b, bool) and 2 <= b <= 16 for b in bits):
        raise ValueError(f"bits={bits!r} must be a non-empty tuple of ints in 2..16")
    return tuple(sorted(set(bits), reverse=True))


def bit_sensitivity(model: nn.Module, data: Any, bits: Sequence[int] = BIT_CHOICES) -> Sensitivity:
    """Quantise one Conv2d/Linear layer at a time to each width in ``bits`` (symmetric, per output channel, with
    :func:`mclab.quant.quantize_weights_`; the weights are restored after each), the rest in float, and record how
    far the outputs move on ``data`` (a dataset with an ``x`` tensor, e.g. the validation digits) as a KL divergence
    from the float model's. The divergence, unlike a loss difference, is never negative and needs no labels, so
    small effects are not lost in noise. Returns a :class:`Sensitivity`."""
    bits = _check_bits_list(bits)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(getattr(data, "x", None), torch.Tensor):
        raise TypeError(f"data must have an x tensor (a mclab.data.DigitsDataset), got {type(data).__name__}")
    model = model.eval()
    layers = quantizable_layers(model)
    names = list(layers)
    ref = _log_probs(model, data.x)
    kl: dict[str, dict[int, float]] = {}
    nbytes: dict[str, dict[int, int]] = {}
    for name, mod in layers.items():
        keep = mod.weight.detach().clone()
        kl[name], nbytes[name] = {}, {}
        for b in bits:
            report = quantize_weights_(mod, WeightOnlyConfig(bits=b))
            kl[name][b] = _kl(ref, model, data.x)
            nbytes[name][b] = report.weight_bytes
            with torch.no_grad():
                mod.weight.copy_(keep)
    kinds = {n: _kind(n, m, names[0], names[-1]) for n, m in layers.items()}
    return Sensitivity(kl, nbytes, kinds, {n: m.weight.numel() for n, m in layers.items()})


@dataclass
class Allocation:
    """Bits per layer and the weight bytes they take (integers + scales)."""

    bits: dict[str, int]
    weight_bytes: int
    budget_bytes: int
    predicted_kl: float                    # sum of the per-layer KL divergences (the allocator's additive model)

    @property
    def mean_bits(self) -> float:
        return float(np.mean(list(self.bits.values())))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean_bits": self.mean_bits}


def uniform_bits(sens: Sensitivity, bits: int) -> Allocation:
    """Every layer at ``bits`` (one of the widths ``sens`` measured)."""
    if not all(bits in d for d in sens.kl.values()):
        raise ValueError(f"bits={bits!r} was not measured; measured: {sorted(next(iter(sens.kl.values())))}")
    size = sum(d[bits] for d in sens.weight_bytes.values())
    return Allocation(dict.fromkeys(sens.kl, bits), size, size,
                      sum(d[bits] for d in sens.kl.values()))


def allocate_bits(sens: Sensitivity, budget_bytes: int, *, resolution: int = 20_000) -> Allocation:
    """Mixed-precision allocation as a small integer program: choose one measured width per layer so that the
    summed divergence (each layer's own: the sensitivity scan's additive model) is smallest while the weights fit
    ``budget_bytes``. Solved exactly by dynamic programming over bytes (a multiple-choice knapsack; sizes are
    rounded up to ``budget_bytes / resolution`` so it stays fast and never overshoots). Returns an
    :class:`Allocation`, or raises ValueError when even the narrowest widths do not fit."""
    if not isinstance(sens, Sensitivity):
        raise TypeError(f"sens must be a Sensitivity, got {type(sens).__name__}")
    if not isinstance(budget_bytes, (int, np.integer)) or isinstance(budget_bytes, bool) or budget_bytes < 1:
        raise ValueError(f"budget_bytes={budget_bytes!r} must be a positive int")
    names = list(sens.kl)
    floor = sum(min(sens.weight_bytes[n].values()) for n in names)
    if floor > budget_bytes:
        raise ValueError(f"budget_bytes={budget_bytes} is below the narrowest allocation's {floor} bytes")
    unit = max(1, math.ceil(budget_bytes / resolution))
    cap = int(budget_bytes) // unit
    best = np.zeros(cap + 1)                       # best[c]: least loss of the layers so far within c units
    choices = []
    for n in names:
        widths = sorted(sens.kl[n], reverse=True)
        new = np.full(cap + 1, np.inf)
        arg = np.zeros(cap + 1, dtype=np.int64)
        for j, b in enumerate(widths):
            w = math.ceil(sens.weight_bytes[n][b] / unit)
            if w > cap:
                continue
            cand = np.full(cap + 1, np.inf)
            cand[w:] = best[:cap + 1 - w] + max(sens.kl[n][b], 0.0)
            better = cand < new
            new[better], arg[better] = cand[better], j
        best = new
        choices.append((widths, arg))
    c = int(np.argmin(best))                        # the least loss at any size within the budget ...
    c = int(np.flatnonzero(best <= best[c] + 1e-12)[0])   # ... at the smallest size that reaches it
    bits = {}
    for n, (widths, arg) in zip(reversed(names), reversed(choices), strict=True):
        b = widths[arg[c]]
        bits[n] = b
        c -= math.ceil(sens.weight_bytes[n][b] / unit)
    bits = {n: bits[n] for n in names}
    size = sum(sens.weight_bytes[n][b] for n, b in bits.items())
    return Allocation(bits, size, int(budget_bytes), sum(sens.kl[n][b] for n, b in bits.items()))


def apply_bits_(model: nn.Module, allocation: Allocation) -> nn.Module:
    """Fake-quantise each layer of ``model`` in place at its allocated width (symmetric, per channel, with
    :func:`mclab.quant.quantize_weights_`). Returns the model."""
    layers = quantizable_layers(model)
    unknown = sorted(set(allocation.bits) - set(layers))
    if unknown:
        raise ValueError(f"allocation names layers {unknown[:3]} that the model does not have")
    for name, b in allocation.bits.items():
        quantize_weights_(layers[name], WeightOnlyConfig(bits=b))
    return model
