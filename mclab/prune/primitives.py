"""Pruning's primitives: argument checks, which layers can be pruned, magnitude masks and channel scores.

Pure functions on tensors and modules, shared by :mod:`mclab.prune.masks` (unstructured), :mod:`mclab.prune.channels`
(structured) and :mod:`mclab.prune.schedule` (scans and schedules). The masks and kept channels agree with
``torch.nn.utils.prune`` (``l1_unstructured``, ``global_unstructured``, ``ln_structured``). Introduced in notebook 06.
"""
from __future__ import annotations

import difflib
import numbers
from typing import Any, Iterable

import torch
from torch import nn

__all__ = [
    "prunable_layers", "magnitude_mask", "global_magnitude_masks", "magnitude_threshold", "channel_scores",
    "channels_to_keep",
]

_SCOPES = ("layer", "global")


# ----------------------------------------------------------------------------- validation


def _check_amount(value: Any, name: str = "amount") -> float:
    """A sparsity in [0, 1): the share of weights (or channels) removed."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1) (the share removed), got {type(value).__name__} {value!r}")
    v = float(value)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name}={value!r} is outside [0, 1): it is the share of weights removed "
                         f"(0 keeps everything; 1 would remove everything)")
    return v


def _check_layers(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"layers must be None, a layer name or a list of layer names, got {value!r}")
    if not value:
        raise ValueError("layers=[] names no layer; pass None for every prunable layer")
    return tuple(value)


def _check_int(value: Any, name: str, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < lo:
        raise ValueError(f"{name}={value} must be >= {lo}")


def _check_choice(value: Any, name: str, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}; allowed: {allowed}")


def _check_model(model: Any) -> None:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _config(model: Any, config: Any, cls: type, *, unmasked: bool = False) -> Any:
    """Check ``model`` and ``config`` (``None`` = ``cls()``) at a verb's boundary; ``unmasked``: refuse a model
    that still carries pruning masks. Returns the config."""
    _check_model(model)
    cfg = cls() if config is None else config
    if not isinstance(cfg, cls):
        raise TypeError(f"config must be a{'n' if cls.__name__[0] in 'AEIOU' else ''} {cls.__name__}, "
                        f"got {type(cfg).__name__}")
    if unmasked and any(_is_masked(m) for m in model.modules()):
        raise ValueError("model carries unstructured pruning masks; call prune.make_permanent_(model) first")
    return cfg


def _unknown_layer(name: str, candidates: Iterable[str], what: str = "prunable layer") -> ValueError:
    cands = list(candidates)
    close = difflib.get_close_matches(name, cands, n=5, cutoff=0.5) or cands[:8]
    return ValueError(f"layer {name!r} is not a {what} of this model; close names: {close}")


def _is_masked(module: torch.nn.Module) -> bool:
    return hasattr(module, "weight_mask") and hasattr(module, "weight_orig")


# ----------------------------------------------------------------------------- primitives


_PRUNABLE = (nn.Conv2d, nn.Linear)


def prunable_layers(model: torch.nn.Module, layers: Iterable[str] | None = None) -> dict[str, torch.nn.Module]:
    """Name -> module for every Conv2d and Linear of ``model`` (or the named ones, checked), in model order."""
    _check_model(model)
    found = {n: m for n, m in model.named_modules() if n and isinstance(m, _PRUNABLE)}
    if layers is None:
        return found
    every = dict(model.named_modules())
    out = {}
    for name in layers:
        if name not in every:
            raise _unknown_layer(name, found or every)
        if name not in found:
            raise ValueError(f"layer {name!r} is a {type(every[name]).__name__}; prunable: Conv2d, Linear "
                             f"(e.g. {list(found)[:4]})")
        out[name] = found[name]
    return out


def _k(amount: float, n: int) -> int:
    """How many of ``n`` elements ``amount`` removes — rounded as torch.nn.utils.prune rounds it."""
    return round(amount * n)


def magnitude_mask(weight: torch.Tensor, amount: float) -> torch.Tensor:
    """A 0/1 mask (weight's shape and dtype) that zeroes the ``round(amount × numel)`` smallest |weights|.

    The same selection as ``torch.nn.utils.prune.l1_unstructured`` (ties included: both take ``torch.topk``)."""
    amount = _check_amount(amount)
    mask = torch.ones_like(weight)
    k = _k(amount, weight.numel())
    if k:
        idx = torch.topk(weight.detach().abs().reshape(-1), k, largest=False).indices
        mask.view(-1)[idx] = 0
    return mask


def global_magnitude_masks(weights: dict[str, torch.Tensor], amount: float) -> dict[str, torch.Tensor]:
    """One magnitude threshold over all ``weights`` together: the ``round(amount × total)`` smallest |w| anywhere
    become 0. Returns name -> mask, as ``torch.nn.utils.prune.global_unstructured`` with L1Unstructured."""
    if not weights:
        raise ValueError("weights is empty: nothing to prune")
    flat = torch.cat([w.detach().reshape(-1) for w in weights.values()])
    mask = magnitude_mask(flat, amount)
    out, i = {}, 0
    for name, w in weights.items():
        out[name] = mask[i:i + w.numel()].reshape(w.shape).to(w.dtype)
        i += w.numel()
    return out


def magnitude_threshold(weight: torch.Tensor, amount: float) -> float:
    """The largest |w| that :func:`magnitude_mask` at ``amount`` sets to zero: the ``k``-th smallest |w| with
    ``k = round(amount × numel)``; every smaller one goes too. 0.0 when ``amount`` removes no weight. For one
    global threshold over several layers, pass their weights concatenated. Drawn by the sparsity slider of
    notebook 06."""
    amount = _check_amount(amount)
    k = _k(amount, weight.numel())
    return float(weight.detach().abs().reshape(-1).kthvalue(k).values) if k else 0.0


def channel_scores(weight: torch.Tensor, norm: int = 1) -> torch.Tensor:
    """The L``norm`` norm of each output channel (row) of a Conv2d or Linear ``weight``: shape (out_channels,)."""
    _check_choice(norm, "norm", (1, 2))
    return weight.detach().reshape(weight.shape[0], -1).norm(p=norm, dim=1)


def channels_to_keep(weight: torch.Tensor, amount: float, norm: int = 1) -> list[int]:
    """Sorted indices of the output channels kept when ``round(amount × out_channels)`` of the weakest go
    (at least one channel stays); the channels ``torch.nn.utils.prune.ln_structured(dim=0)`` keeps."""
    amount = _check_amount(amount)
    n = weight.shape[0]
    keep = max(1, n - _k(amount, n))
    return sorted(torch.topk(channel_scores(weight, norm), keep, largest=True).indices.tolist())
