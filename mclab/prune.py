"""Pruning: zero the smallest weights (unstructured), or remove whole channels (structured).

Unstructured magnitude pruning keeps a model's shapes and sets its smallest weights to zero, as masks that stay
in place while the model is fine-tuned (PyTorch's ``weight_orig × weight_mask`` reparametrisation) and are then
folded in for good: :func:`prune_` (layer-wise or one global threshold), :func:`make_permanent_`,
:func:`sparsity` (a :class:`SparsityReport` per layer and overall). A dense kernel multiplies the zeros all the
same, so the model is not faster; :func:`storage` prices the sparse formats (bitmask, CSR) that could skip them.

Structured pruning removes output channels *physically*: :func:`plan_channels` ranks every prunable
layer's output channels by the L1 (or L2) norm of their weights and returns a serialisable
:class:`ChannelPlan`; :func:`apply_channels_` replays it, rebuilding the layer, the BatchNorm after it and the
next layer's input channels as smaller dense layers; :func:`prune_channels` does both on a copy. Only channels
that nothing else reads can go: in a ResNet the block outputs feed the residual additions, so the safe and
standard choice is the *inner* convolution of each block (``conv1 → bn1 → conv2`` in a BasicBlock; ``conv1`` and
``conv2`` in a Bottleneck). Chains inside an ``nn.Sequential`` (Conv → [BN, activation, pooling] → Conv, or
→ Flatten → Linear, and Linear → Linear) are found too.

:func:`sensitivity` scans accuracy against sparsity layer by layer; :func:`iterative_prune_` alternates pruning
and fine-tuning (``mclab.models.train``) towards a final sparsity. Masks and channel choices agree with
``torch.nn.utils.prune`` (``l1_unstructured``, ``global_unstructured``, ``ln_structured``); the tests check it.
Introduced in notebook 06.
"""
from __future__ import annotations

import copy
import difflib
import math
import numbers
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterable

import torch
from torch import nn
from torch.nn.utils import prune as tprune

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    # configuration
    "PruneConfig", "ChannelConfig", "SensitivityConfig", "IterativeConfig",
    # results
    "SparsityReport", "ChannelGroup", "ChannelPlan", "SensitivityResult", "IterativeResult", "StorageReport",
    # primitives
    "magnitude_mask", "global_magnitude_masks", "magnitude_threshold", "channel_scores", "channels_to_keep",
    "prunable_layers", "find_channel_groups",
    # unstructured verbs
    "prune_", "make_permanent_", "sparsity", "storage", "nonzero_macs",
    # structured verbs
    "plan_channels", "apply_channels_", "prune_channels", "recalibrate_bn_",
    # schedules and scans
    "sensitivity", "iterative_prune_",
]

_SCOPES = ("layer", "global")
_KINDS = ("unstructured", "channel")
_SCHEDULES = ("linear", "cubic")


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


# ----------------------------------------------------------------------------- configuration


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


@dataclass(frozen=True)
class ChannelConfig:
    """Structured pruning: how many output channels each prunable layer loses, and how they are ranked."""

    amount: float = 0.5                   # share of output channels removed from each prunable layer, [0, 1)
    norm: int = 1                         # rank channels by the L1 (1) or L2 (2) norm of their weights
    layers: tuple[str, ...] | None = None  # producer layers to prune; None = every safe one (find_channel_groups)

    def __post_init__(self) -> None:
        _check_amount(self.amount)
        _check_choice(self.norm, "norm", (1, 2))
        object.__setattr__(self, "layers", _check_layers(self.layers))


@dataclass(frozen=True)
class SensitivityConfig:
    """A per-layer sensitivity scan: each layer alone is pruned to each amount and the model evaluated."""

    amounts: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)  # sparsities tried per layer
    kind: str = "unstructured"            # "unstructured" (zero weights) or "channel" (remove output channels)
    layers: tuple[str, ...] | None = None  # None = every prunable layer (channel: every safe producer)
    norm: int = 1                         # channel ranking norm (kind="channel")

    def __post_init__(self) -> None:
        if isinstance(self.amounts, (str, bytes)) or not isinstance(self.amounts, (list, tuple)) or not self.amounts:
            raise TypeError(f"amounts must be a non-empty list of sparsities in [0, 1), got {self.amounts!r}")
        object.__setattr__(self, "amounts", tuple(_check_amount(a, "amounts[]") for a in self.amounts))
        _check_choice(self.kind, "kind", _KINDS)
        _check_choice(self.norm, "norm", (1, 2))
        object.__setattr__(self, "layers", _check_layers(self.layers))


@dataclass(frozen=True)
class IterativeConfig:
    """Prune a little, fine-tune, repeat: ``steps`` rounds towards ``final_amount`` sparsity."""

    final_amount: float = 0.8             # sparsity after the last step, [0, 1)
    steps: int = 4                        # prune/fine-tune rounds
    schedule: str = "cubic"               # "cubic" (Zhu & Gupta 2017: prune fast early, gently late) or "linear"
    scope: str = "global"                 # as PruneConfig.scope
    layers: tuple[str, ...] | None = None  # as PruneConfig.layers
    epochs: int = 1                       # fine-tuning epochs after each pruning step
    train_images: int | None = None       # fine-tune on the first n training digits only (None: all 1,078)
    lr: float = 1e-3                      # peak fine-tuning learning rate (a third of training's: the weights are
                                          # close to their trained values)
    size: int = 32                        # input pixels the model was trained at (mclab.models.TrainConfig.size)
    seed: int = 0                         # batch order of the fine-tuning (step i uses seed + i)
    progress: bool = False                # tqdm bars during fine-tuning

    def __post_init__(self) -> None:
        _check_amount(self.final_amount, "final_amount")
        _check_int(self.steps, "steps", 1)
        _check_int(self.epochs, "epochs", 0)
        if self.train_images is not None:
            _check_int(self.train_images, "train_images", 1)
        _check_choice(self.schedule, "schedule", _SCHEDULES)
        _check_choice(self.scope, "scope", _SCOPES)
        object.__setattr__(self, "layers", _check_layers(self.layers))
        if isinstance(self.lr, bool) or not isinstance(self.lr, numbers.Real) or not self.lr > 0:
            raise ValueError(f"lr={self.lr!r} must be a number > 0")

    def targets(self) -> list[float]:
        """The sparsity reached after each step."""
        n, s = self.steps, self.final_amount
        if self.schedule == "linear":
            return [s * (i + 1) / n for i in range(n)]
        return [s * (1 - (1 - (i + 1) / n) ** 3) for i in range(n)]


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


# ----------------------------------------------------------------------------- unstructured


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


def _is_masked(module: torch.nn.Module) -> bool:
    return hasattr(module, "weight_mask") and hasattr(module, "weight_orig")


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
    from . import flops

    rep = flops.count(model, example_inputs)
    density = {r["name"]: 1 - r["sparsity"] for r in sparsity(model).layers}
    return int(round(sum(row["macs"] * density.get(row["name"], 1.0) for row in rep.layers)))


# ----------------------------------------------------------------------------- structured


@dataclass(frozen=True)
class ChannelGroup:
    """Output channels of ``producer`` that only ``bn`` (optional) and ``consumer`` read: removable together.
    ``per_channel`` is how many consumer inputs each producer channel feeds (H × W after a Flatten, else 1)."""

    producer: str
    bn: str | None
    consumer: str
    per_channel: int = 1


_PASS_THROUGH_NAMES = ("ReLU", "ReLU6", "LeakyReLU", "GELU", "SiLU", "Hardswish", "Hardsigmoid", "Tanh", "Sigmoid",
                       "ELU", "Mish", "Dropout", "Dropout2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
                       "AdaptiveMaxPool2d", "Identity")


def _pass_through() -> tuple[type, ...]:
    return tuple(getattr(nn, n) for n in _PASS_THROUGH_NAMES)


def _blocks() -> dict[type, list[tuple[str, str, str]]]:
    """torchvision's residual blocks and their safe (producer, bn, consumer) chains."""
    from torchvision.models import resnet

    return {resnet.BasicBlock: [("conv1", "bn1", "conv2")],
            resnet.Bottleneck: [("conv1", "bn1", "conv2"), ("conv2", "bn2", "conv3")]}


def _plain(m: torch.nn.Module) -> bool:
    """A Conv2d without groups, or a Linear: its channels can be sliced freely."""
    return isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)


def _sequential_groups(prefix: str, seq: torch.nn.Sequential) -> list[ChannelGroup]:
    kids = list(seq.named_children())
    passing, out = _pass_through(), []
    for i, (pname, prod) in enumerate(kids):
        if not _plain(prod):
            continue
        bn, flat = None, False
        for cname, child in kids[i + 1:]:
            bn_type = nn.BatchNorm2d if isinstance(prod, nn.Conv2d) else nn.BatchNorm1d
            if isinstance(child, bn_type) and bn is None and not flat and child.num_features == prod.weight.shape[0]:
                bn = cname
            elif isinstance(child, nn.Flatten) and isinstance(prod, nn.Conv2d) and not flat:
                flat = True
            elif isinstance(child, passing):
                continue
            elif _plain(child):
                n_out = prod.weight.shape[0]
                conv_to_conv = isinstance(child, nn.Conv2d) and isinstance(prod, nn.Conv2d) and not flat
                to_linear = isinstance(child, nn.Linear) and (flat or isinstance(prod, nn.Linear))
                if conv_to_conv and child.in_channels == n_out:
                    out.append(ChannelGroup(prefix + pname, bn and prefix + bn, prefix + cname, 1))
                elif to_linear and child.in_features % n_out == 0:
                    per_channel = child.in_features // n_out
                    out.append(ChannelGroup(prefix + pname, bn and prefix + bn, prefix + cname, per_channel))
                break
            else:
                break  # anything else may mix channels (or feed a residual): stop
    return out


def find_channel_groups(model: torch.nn.Module) -> list[ChannelGroup]:
    """Every chain whose middle channels can be removed safely: the inner convolutions of torchvision's
    BasicBlock / Bottleneck, and producer → consumer chains inside an ``nn.Sequential``. Block outputs that
    feed a residual addition, and a model's last layer, are never producers (the output shape is kept)."""
    _check_model(model)
    blocks = _blocks()
    groups: list[ChannelGroup] = []
    for name, m in model.named_modules():
        prefix = f"{name}." if name else ""
        chains = next((c for t, c in blocks.items() if isinstance(m, t)), None)
        if chains is not None:
            for p, b, c in chains:
                if _plain(getattr(m, p)) and _plain(getattr(m, c)):
                    groups.append(ChannelGroup(prefix + p, prefix + b, prefix + c, 1))
        elif isinstance(m, nn.Sequential):
            groups += _sequential_groups(prefix, m)
    return groups


@dataclass
class ChannelPlan:
    """Which output channels each producer keeps (sorted indices): a serialisable result to replay with
    :func:`apply_channels_`."""

    amount: float
    norm: int
    groups: list[ChannelGroup]
    keep: dict[str, list[int]]            # producer name -> kept output channels
    channels: dict[str, int]              # producer name -> output channels before pruning

    @property
    def removed(self) -> int:
        return sum(self.channels[g.producer] - len(self.keep[g.producer]) for g in self.groups)

    def as_dict(self) -> dict[str, Any]:
        return {"amount": self.amount, "norm": self.norm, "groups": [asdict(g) for g in self.groups],
                "keep": self.keep, "channels": self.channels}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ChannelPlan":
        return cls(d["amount"], d["norm"], [ChannelGroup(**g) for g in d["groups"]],
                   {k: list(v) for k, v in d["keep"].items()}, dict(d["channels"]))

    def to_frame(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame([{"producer": g.producer, "bn": g.bn, "consumer": g.consumer,
                              "channels before": self.channels[g.producer],
                              "channels after": len(self.keep[g.producer])}
                             for g in self.groups]).set_index("producer")


def plan_channels(model: torch.nn.Module, config: ChannelConfig | None = None) -> ChannelPlan:
    """Rank every safe producer's output channels by weight norm and choose the ones to keep (nothing is
    changed). ``config.layers`` restricts the producers (each must be one :func:`find_channel_groups` finds).
    Returns a :class:`ChannelPlan`."""
    cfg = _config(model, config, ChannelConfig, unmasked=True)
    groups = find_channel_groups(model)
    by_name = {g.producer: g for g in groups}
    if cfg.layers is not None:
        for name in cfg.layers:
            if name not in by_name:
                every = dict(model.named_modules())
                if name in every:
                    raise ValueError(f"layer {name!r} exists but its output channels cannot be removed safely "
                                     f"(they feed a residual addition, the model output or a layer that mixes "
                                     f"channels); removable: {list(by_name)[:6]}...")
                raise _unknown_layer(name, by_name, "channel-prunable layer")
        groups = [by_name[n] for n in cfg.layers]
    if not groups:
        raise ValueError(f"found no channels of {type(model).__name__} that can be removed safely")
    mods = dict(model.named_modules())
    keep = {g.producer: channels_to_keep(mods[g.producer].weight, cfg.amount, cfg.norm) for g in groups}
    channels = {g.producer: mods[g.producer].weight.shape[0] for g in groups}
    return ChannelPlan(cfg.amount, cfg.norm, groups, keep, channels)


def _set(model: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def _sliced(m: torch.nn.Module, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None) -> torch.nn.Module:
    """A copy of Conv2d / Linear ``m`` with only the given output and input channels (None = all)."""
    w = m.weight.detach()
    if out_idx is not None:
        w = w.index_select(0, out_idx)
    if in_idx is not None:
        w = w.index_select(1, in_idx)
    bias = m.bias.detach() if m.bias is not None else None
    if bias is not None and out_idx is not None:
        bias = bias.index_select(0, out_idx)
    kw = {"device": w.device, "dtype": w.dtype}
    if isinstance(m, nn.Conv2d):
        new = nn.Conv2d(w.shape[1], w.shape[0], m.kernel_size, m.stride, m.padding, m.dilation, 1,
                        bias is not None, m.padding_mode, **kw)
    else:
        new = nn.Linear(w.shape[1], w.shape[0], bias is not None, **kw)
    with torch.no_grad():
        new.weight.copy_(w)
        if bias is not None:
            new.bias.copy_(bias)
    new.train(m.training)
    new.weight.requires_grad_(m.weight.requires_grad)
    return new


def _sliced_bn(bn: torch.nn.Module, idx: torch.Tensor) -> torch.nn.Module:
    new = type(bn)(len(idx), eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                   track_running_stats=bn.track_running_stats, device=idx.device)
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight.detach()[idx])
            new.bias.copy_(bn.bias.detach()[idx])
        if bn.track_running_stats:
            new.running_mean.copy_(bn.running_mean[idx])
            new.running_var.copy_(bn.running_var[idx])
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    new.train(bn.training)
    return new


def apply_channels_(model: torch.nn.Module, plan: ChannelPlan) -> torch.nn.Module:
    """Replay ``plan`` on ``model`` in place: each producer, its BatchNorm and its consumer are replaced by
    smaller dense layers holding only the kept channels. Returns ``model``."""
    _check_model(model)
    if not isinstance(plan, ChannelPlan):
        raise TypeError(f"plan must be a ChannelPlan (from plan_channels), got {type(plan).__name__}")
    for g in plan.groups:
        mods = dict(model.named_modules())  # afresh: a consumer may be the next group's producer
        for name in (g.producer, g.bn, g.consumer):
            if name is not None and name not in mods:
                raise _unknown_layer(name, mods, "layer")
        prod = mods[g.producer]
        if prod.weight.shape[0] != plan.channels[g.producer]:
            raise ValueError(f"plan expects {plan.channels[g.producer]} output channels in {g.producer!r}, "
                             f"the model has {prod.weight.shape[0]} (was it pruned already?)")
        idx = torch.tensor(plan.keep[g.producer], dtype=torch.long, device=prod.weight.device)
        in_idx = (idx[:, None] * g.per_channel + torch.arange(g.per_channel, device=idx.device)).reshape(-1)
        _set(model, g.producer, _sliced(prod, idx, None))
        if g.bn is not None:
            _set(model, g.bn, _sliced_bn(mods[g.bn], idx))
        _set(model, g.consumer, _sliced(mods[g.consumer], None, in_idx))
    return model


def prune_channels(model: torch.nn.Module, config: ChannelConfig | None = None) -> torch.nn.Module:
    """A smaller dense copy of ``model`` without the weakest output channels of every safe layer
    (:func:`plan_channels` then :func:`apply_channels_`; ``model`` itself is untouched). Output shape, ONNX
    export and ``mclab.flops.count`` work on it as on any model."""
    plan = plan_channels(model, config)
    return apply_channels_(copy.deepcopy(model), plan)


def recalibrate_bn_(model: torch.nn.Module, data: Any, *, max_images: int | None = None, batch_size: int = 128,
                    augment: float = 0.0, seed: int = 0) -> int:
    """Re-estimate every BatchNorm's running mean and variance from ``data`` (a dataset of (x, y) pairs such
    as ``mclab.data.digits("train")``, or a list of input batches), in place, without gradients.

    Removing channels changes what every later BatchNorm sees, so its stored statistics go stale and accuracy
    can collapse although the remaining weights are fine; one forward pass over training images (no labels, no
    training) puts the statistics right. Uses at most ``max_images`` images. ``augment`` distorts them first
    (``mclab.data.augment`` at that strength, seeded by ``seed``): a model trained on augmented batches holds
    the statistics of augmented images, so pass its ``TrainConfig.augment``. Returns how many BatchNorm layers
    were recalibrated."""
    _check_model(model)
    if max_images is not None:
        _check_int(max_images, "max_images", 1)
    _check_int(batch_size, "batch_size", 1)
    if isinstance(data, (list, tuple)) and data and all(isinstance(b, torch.Tensor) for b in data):
        batches = list(data)
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        x = data.x if hasattr(data, "x") else torch.stack([data[i][0] for i in range(len(data))])
        batches = list(x.split(batch_size))
    else:
        raise TypeError(f"data must be a dataset of (x, y) pairs or a list of input batches, got {type(data).__name__}")
    if augment:
        from .data import augment as distort

        g = torch.Generator().manual_seed(seed)
        batches = [distort(b, generator=g, strength=augment) for b in batches]
    if max_images is not None:
        kept, n = [], 0
        for b in batches:
            if n >= max_images:
                break
            kept.append(b[:max_images - n])
            n += len(kept[-1])
        batches = kept
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns or not batches:
        return 0
    momenta = [bn.momentum for bn in bns]
    was_training = model.training
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all batches, not an exponential one
    model.train()
    try:
        with torch.no_grad():
            for b in batches:
                model(b)
    finally:
        for bn, mom in zip(bns, momenta, strict=True):
            bn.momentum = mom
        model.train(was_training)
    return len(bns)


# ----------------------------------------------------------------------------- scans and schedules


@dataclass
class SensitivityResult:
    """Accuracy (0–1) with each layer pruned alone to each amount; ``baseline`` is the unpruned accuracy."""

    kind: str
    baseline: float
    n: int                                # evaluation examples
    rows: list[dict[str, Any]]            # layer, amount, accuracy, drop_points, params
    seconds: float

    def to_frame(self) -> "pd.DataFrame":
        """Layers × amounts table of the accuracy drop in percentage points."""
        import pandas as pd

        df = pd.DataFrame(self.rows)
        return df.pivot(index="layer", columns="amount", values="drop_points").loc[list(dict.fromkeys(df["layer"]))]

    def max_amount(self, max_drop_points: float) -> dict[str, float]:
        """Per layer, the largest amount tried whose drop stays within ``max_drop_points`` (0.0 if none)."""
        out: dict[str, float] = {}
        for r in self.rows:
            ok = r["drop_points"] <= max_drop_points
            out[r["layer"]] = max(out.get(r["layer"], 0.0), r["amount"] if ok else 0.0)
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _restrict(model: torch.nn.Module, cfg: SensitivityConfig) -> list[str]:
    if cfg.kind == "unstructured":
        return list(prunable_layers(model, cfg.layers))
    return [g.producer for g in plan_channels(model, ChannelConfig(0.0, cfg.norm, cfg.layers)).groups]


def sensitivity(model: torch.nn.Module, data: Any, config: SensitivityConfig | None = None, *,
                bn_data: Any = None) -> SensitivityResult:
    """Prune each layer *alone* to each of ``config.amounts`` and evaluate on ``data`` (``mclab.models.evaluate``);
    the model is restored after each try. Layers whose accuracy falls fast deserve a smaller share. For
    ``kind="channel"``, ``bn_data`` (training images) recalibrates BatchNorm after each removal
    (:func:`recalibrate_bn_`). Returns a :class:`SensitivityResult`."""
    from .models import evaluate

    cfg = _config(model, config, SensitivityConfig, unmasked=True)
    t0 = time.perf_counter()
    base = evaluate(model, data)
    mods = dict(model.named_modules())
    rows = []
    for name in _restrict(model, cfg):
        for a in cfg.amounts:
            if cfg.kind == "unstructured":
                w = mods[name].weight
                saved = w.detach().clone()
                with torch.no_grad():
                    w.mul_(magnitude_mask(w, a))
                try:
                    acc = evaluate(model, data).accuracy
                finally:
                    with torch.no_grad():
                        w.copy_(saved)
            else:
                smaller = prune_channels(model, ChannelConfig(a, cfg.norm, (name,)))
                if bn_data is not None:
                    recalibrate_bn_(smaller, bn_data)
                acc = evaluate(smaller, data).accuracy
            rows.append({"layer": name, "amount": a, "accuracy": acc, "drop_points": 100 * (base.accuracy - acc),
                         "params": mods[name].weight.numel()})
    return SensitivityResult(cfg.kind, base.accuracy, base.n, rows, time.perf_counter() - t0)


@dataclass
class IterativeResult:
    """One row per prune/fine-tune step: target and reached sparsity, accuracy (0–1) right after pruning and
    after fine-tuning, fine-tuning seconds; ``baseline`` is the accuracy before any pruning."""

    config: IterativeConfig
    baseline: float
    steps: list[dict[str, Any]]
    seconds: float

    @property
    def final_accuracy(self) -> float:
        return self.steps[-1]["accuracy_finetuned"]

    def to_frame(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame(self.steps).set_index("step")

    def as_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "baseline": self.baseline, "steps": self.steps, "seconds": self.seconds}


def iterative_prune_(model: torch.nn.Module, data: Any, config: IterativeConfig | None = None) -> IterativeResult:
    """Prune ``model`` in place in ``config.steps`` rounds towards ``config.final_amount`` sparsity, fine-tuning
    on the digits' training split after each (``mclab.models.train``, masks held) and evaluating on ``data``
    before and after; the masks are folded in at the end. Returns an :class:`IterativeResult`."""
    from .data import DigitsDataset, digits
    from .models import TrainConfig, evaluate, train

    cfg = _config(model, config, IterativeConfig)
    t0 = time.perf_counter()
    subset = None
    if cfg.train_images is not None:
        full = digits("train", size=cfg.size)
        subset = DigitsDataset(full.x[:cfg.train_images], full.y[:cfg.train_images], "train", cfg.size)
    base = evaluate(model, data).accuracy
    steps = []
    for i, target in enumerate(cfg.targets()):
        rep = prune_(model, PruneConfig(target, cfg.scope, cfg.layers))
        pruned = evaluate(model, data).accuracy
        secs = 0.0
        if cfg.epochs:
            secs = train(model, TrainConfig(epochs=cfg.epochs, lr=cfg.lr, size=cfg.size, seed=cfg.seed + i,
                                            progress=cfg.progress), data=subset).seconds
        steps.append({"step": i + 1, "target": target, "sparsity": rep.sparsity, "accuracy_pruned": pruned,
                      "accuracy_finetuned": evaluate(model, data).accuracy, "train_s": secs})
    make_permanent_(model)
    return IterativeResult(cfg, base, steps, time.perf_counter() - t0)
