"""Unstructured pruning: zero the smallest weights, keep the shapes, price the zeros.

Magnitude pruning keeps a model's shapes and sets its smallest weights to zero, as masks that stay in place while
the model is fine-tuned (PyTorch's ``weight_orig × weight_mask`` reparametrisation) and are then folded in for good:
:func:`prune_` (layer-wise or one global threshold), :func:`make_permanent_`, :func:`sparsity` (a
:class:`SparsityReport` per layer and overall). A dense kernel multiplies the zeros all the same, so the model is not
faster; :func:`storage` prices the sparse formats (bitmask, CSR) that could skip them and :func:`nonzero_macs` counts
the work such a kernel would do. Introduced in notebook 06.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.nn.utils import prune as tprune

from .primitives import (
    _SCOPES,
    _check_amount,
    _check_choice,
    _check_int,
    _check_layers,
    _check_model,
    _config,
    _is_masked,
    global_magnitude_masks,
    magnitude_mask,
    prunable_layers,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PruneConfig", "SparsityReport", "StorageReport", "prune_", "make_permanent_", "sparsity", "storage",
           "nonzero_macs"]


@dataclass(frozen=True)
class PruneConfig:
    """Unstructured magnitude pruning: which weights become zero."""

    amount: float = 0.5                   # the sparsity each layer (or the model, for "global") ends with, [0, 1)
    scope: str = "layer"                  # "layer": every layer loses `amount`; "global": one threshold over all
                                          # chosen layers, so layers with many small weights lose more
    layers: tuple[str, ...] | None = None  # module names; None = every Conv2d and Linear
    permanent: bool = False               # True: fold the masks in at once (no fine-tuning with masks planned)

    def __post_init__(self) -> None:
        _check_amount(self.amount)
        _check_choice(self.scope, "scope", _SCOPES)
        object.__setattr__(self, "layers", _check_layers(self.layers))
        if not isinstance(self.permanent, bool):
            raise TypeError(f"permanent must be a bool, got {type(self.permanent).__name__}")


@dataclass
class SparsityReport:
    """Zeros per prunable layer (Conv2d / Linear weights) and overall; fractions are 0–1."""

    layers: list[dict[str, Any]]          # name, type, params, zeros, sparsity
    prunable_params: int                  # elements of every Conv2d / Linear weight
    prunable_zeros: int
    total_params: int                     # every parameter of the model (biases, norms included)
    total_zeros: int

    @property
    def sparsity(self) -> float:
        """Share of zeros in the prunable weights."""
        return self.prunable_zeros / max(self.prunable_params, 1)

    @property
    def overall_sparsity(self) -> float:
        """Share of zeros among all parameters."""
        return self.total_zeros / max(self.total_params, 1)

    @property
    def nonzero_params(self) -> int:
        return self.total_params - self.total_zeros

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sparsity": self.sparsity, "overall_sparsity": self.overall_sparsity,
                "nonzero_params": self.nonzero_params}

    def to_frame(self) -> "pd.DataFrame":
        """One row per prunable layer plus a total row."""
        import pandas as pd

        total = {"name": "(all prunable weights)", "type": "", "params": self.prunable_params,
                 "zeros": self.prunable_zeros, "sparsity": self.sparsity}
        return pd.DataFrame([*self.layers, total]).set_index("name")

    def __str__(self) -> str:
        return (f"sparsity {100 * self.sparsity:.1f} % of {self.prunable_params:,} prunable weights "
                f"({100 * self.overall_sparsity:.1f} % of all {self.total_params:,} parameters)")


def sparsity(model: torch.nn.Module) -> SparsityReport:
    """Count zeros in ``model``'s weights (masked or permanent alike). Returns a :class:`SparsityReport`."""
    _check_model(model)
    rows = []
    for name, m in prunable_layers(model).items():
        w = m.weight
        z = int((w == 0).sum())
        rows.append({"name": name, "type": type(m).__name__, "params": w.numel(), "zeros": z,
                     "sparsity": z / max(w.numel(), 1)})
    total = zeros = 0
    for m in model.modules():
        for pname, p in m.named_parameters(recurse=False):
            eff = getattr(m, pname[:-len("_orig")]) if pname.endswith("_orig") else p  # a masked weight counts as used
            total += eff.numel()
            zeros += int((eff == 0).sum())
    return SparsityReport(rows, sum(r["params"] for r in rows), sum(r["zeros"] for r in rows), total, zeros)


def prune_(model: torch.nn.Module, config: PruneConfig | None = None) -> SparsityReport:
    """Zero the smallest-magnitude weights of ``model``'s Conv2d / Linear layers, in place.

    The masks are attached with ``torch.nn.utils.prune.custom_from_mask``, so fine-tuning (``mclab.models.train``)
    keeps pruned weights at zero; ``config.permanent`` (or :func:`make_permanent_` later) folds them in.
    ``amount`` is the sparsity a layer *ends* with; weights pruned before stay pruned. Returns a
    :class:`SparsityReport`."""
    cfg = _config(model, config, PruneConfig)
    targets = prunable_layers(model, cfg.layers)
    if not targets:
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to prune")
    old: dict[str, torch.Tensor] = {}
    for name, m in targets.items():
        if _is_masked(m):  # fold the previous mask, remember it: pruned weights never come back
            old[name] = m.weight_mask.detach().clone()
            tprune.remove(m, "weight")
    weights = {n: m.weight for n, m in targets.items()}
    if cfg.scope == "global":
        masks = global_magnitude_masks(weights, cfg.amount)
    else:
        masks = {n: magnitude_mask(w, cfg.amount) for n, w in weights.items()}
    for name, m in targets.items():
        mask = masks[name] * old[name] if name in old else masks[name]
        tprune.custom_from_mask(m, "weight", mask)
        if cfg.permanent:
            tprune.remove(m, "weight")
    return sparsity(model)


def make_permanent_(model: torch.nn.Module) -> int:
    """Fold every pruning mask into its weight (``weight = weight_orig × weight_mask``), in place, leaving
    plain parameters with zeros and no forward hooks. Returns how many layers were folded."""
    _check_model(model)
    n = 0
    for m in model.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, tprune.BasePruningMethod):
                tprune.remove(m, hook._tensor_name)
                n += 1
    return n


@dataclass
class StorageReport:
    """Bytes to store weights dense, as a bitmask plus non-zero values, and as CSR (row pointers, column
    indices, values), per layer and in total. ``value_bytes``/``index_bytes`` are per element."""

    layers: list[dict[str, Any]]          # name, shape, numel, nnz, density, dense/bitmask/csr bytes
    value_bytes: int
    index_bytes: int

    def _sum(self, key: str) -> int:
        return int(sum(r[key] for r in self.layers))

    dense_bytes = property(lambda self: self._sum("dense_bytes"))
    bitmask_bytes = property(lambda self: self._sum("bitmask_bytes"))
    csr_bytes = property(lambda self: self._sum("csr_bytes"))
    numel = property(lambda self: self._sum("numel"))
    nnz = property(lambda self: self._sum("nnz"))

    @property
    def density(self) -> float:
        return self.nnz / max(self.numel, 1)

    @property
    def bitmask_break_even(self) -> float:
        """Density below which a bitmask beats dense: 1 − 1 / (8 × value_bytes) (bit per element + values)."""
        return 1 - 1 / (8 * self.value_bytes)

    @property
    def csr_break_even(self) -> float:
        """Density below which CSR beats dense (ignoring row pointers): value / (value + index bytes)."""
        return self.value_bytes / (self.value_bytes + self.index_bytes)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dense_bytes": self.dense_bytes, "bitmask_bytes": self.bitmask_bytes,
                "csr_bytes": self.csr_bytes, "density": self.density,
                "bitmask_break_even": self.bitmask_break_even, "csr_break_even": self.csr_break_even}

    def to_frame(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame(self.layers).set_index("name")


def _storage_row(name: str, w: torch.Tensor, value_bytes: int, index_bytes: int) -> dict[str, Any]:
    rows = w.shape[0] if w.dim() >= 2 else 1       # CSR of the matrix view (out, in × kH × kW)
    numel, nnz = w.numel(), int((w != 0).sum())
    return {"name": name, "shape": tuple(w.shape), "numel": numel, "nnz": nnz, "density": nnz / max(numel, 1),
            "dense_bytes": numel * value_bytes,
            "bitmask_bytes": math.ceil(numel / 8) + nnz * value_bytes,
            "csr_bytes": nnz * (value_bytes + index_bytes) + (rows + 1) * index_bytes}


def storage(model_or_weight: Any, *, value_bytes: int = 4, index_bytes: int = 4) -> StorageReport:
    """Storage cost of the zeros: dense vs bitmask vs CSR, in bytes, for one weight tensor or for every
    Conv2d / Linear weight of a model. ``value_bytes`` 4 = FP32 values; ``index_bytes`` 4 = int32 indices
    (PyTorch's own CSR tensors use int64: pass 8). Returns a :class:`StorageReport`."""
    _check_int(value_bytes, "value_bytes", 1)
    _check_int(index_bytes, "index_bytes", 1)
    if isinstance(model_or_weight, torch.Tensor):
        items = {"weight": model_or_weight.detach()}
    elif isinstance(model_or_weight, torch.nn.Module):
        items = {n: m.weight.detach() for n, m in prunable_layers(model_or_weight).items()}
    else:
        raise TypeError(f"model_or_weight must be a torch.nn.Module or a Tensor, got {type(model_or_weight).__name__}")
    rows = [_storage_row(n, w, value_bytes, index_bytes) for n, w in items.items()]
    return StorageReport(rows, value_bytes, index_bytes)


def nonzero_macs(model: torch.nn.Module, example_inputs: Any) -> int:
    """MACs whose weight is not zero: each Conv2d / Linear layer's MACs (``mclab.flops.count``) times the share
    of its weights that are non-zero — what a kernel that skipped every zero would execute. A dense kernel
    executes ``flops.count(...).macs`` however many weights are zero."""
    from .. import flops

    rep = flops.count(model, example_inputs)
    density = {r["name"]: 1 - r["sparsity"] for r in sparsity(model).layers}
    return int(round(sum(row["macs"] * density.get(row["name"], 1.0) for row in rep.layers)))
