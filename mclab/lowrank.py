"""Low-rank factorisation: replace one weight matrix by the product of two thinner ones.

A Linear layer's weight ``W`` (m outputs × n inputs) is split by its singular value decomposition
``W = U·diag(σ)·Vᵀ``; keeping the ``r`` largest singular values gives ``W ≈ A·B`` with ``A = U_r·√σ_r``
(m × r) and ``B = √σ_r·V_rᵀ`` (r × n), i.e. two Linear layers n → r → m. A Conv2d is factorised through its
matrix view (``out × in·kh·kw``): a k×k convolution with ``r`` output channels (same stride, padding and
dilation) followed by a 1×1 convolution to the original outputs, which carries the bias.

Two closed forms frame every choice of ``r``:

- **Break-even rank.** The pair stores ``r·(m + n)`` weights instead of ``m·n`` (and does as many MACs per
  output position), so it is smaller only when ``r < m·n / (m + n)`` — :func:`break_even_rank`.
- **Eckart–Young.** No rank-``r`` matrix is closer to ``W`` in the Frobenius norm than the truncated SVD,
  and its error is exactly ``sqrt(Σ_{i>r} σ_i²)`` — :func:`discarded_error`.

Primitives (:func:`matrix_view`, :func:`singular_values`, :func:`rank_for_energy`, :func:`factorize_layer`)
sit under the verb :func:`factorize_` (in place, by layer name), plus :func:`spectra` for plots and
:func:`rank_sweep` for the rank slider. Fine-tuning afterwards is :func:`mclab.models.train`.
Introduced in notebook 08.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

from . import bench, flops, models

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    # configuration and results
    "LowRankConfig", "LayerFactorization", "FactorizedLayer", "LowRankReport", "RankSweep",
    # primitives
    "matrix_view", "singular_values", "break_even_rank", "rank_for_energy", "discarded_error", "factorize_layer",
    "factorizable_layers",
    # verbs
    "factorize_", "spectra", "rank_sweep",
]


# ----------------------------------------------------------------------------- configuration and results


@dataclass(frozen=True)
class LowRankConfig:
    """Which layers to factorise and how far. Give exactly one of ``rank`` or ``energy``.

    ``rank`` keeps that many singular values in every listed layer (1 … min(m, n) of each layer);
    ``energy`` keeps, per layer, the fewest singular values whose squares sum to at least that share of
    ``Σσ²`` (the squared Frobenius norm), so each layer gets the rank its own spectrum needs.
    """

    layers: tuple[str, ...]            # module names as model.named_modules() spells them ("fc", "layer4.1.conv2")
    rank: int | None = None
    energy: float | None = None        # share of Σσ² to keep, in (0, 1]

    def __post_init__(self) -> None:
        layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers or not all(isinstance(n, str) and n for n in layers):
            raise ValueError(f"layers={self.layers!r} must be one or more non-empty module names")
        if (self.rank is None) == (self.energy is None):
            raise ValueError(f"give exactly one of rank or energy; got rank={self.rank!r}, energy={self.energy!r}")
        if self.rank is not None:
            _check_rank(self.rank)
        if self.energy is not None:
            _check_energy(self.energy)


@dataclass
class LayerFactorization:
    """One layer before and after: shape of its matrix view (m × n), kept rank, sizes and errors.

    ``error_fro`` is ‖W − A·B‖_F measured on the factors as stored (FP32); ``error_closed_form`` is
    Eckart–Young's ``sqrt(Σ discarded σ²)``; ``rel_error`` = error_fro / ‖W‖_F. ``params_*`` count weights
    and bias; the MACs per output position scale the same way (``r·(m + n)`` vs ``m·n``).
    """

    name: str
    kind: str                      # "Linear" or "Conv2d kxk"
    m: int                         # outputs (rows of the matrix view)
    n: int                         # inputs × kernel area (columns)
    rank: int
    full_rank: int                 # min(m, n)
    break_even: float              # m·n / (m + n)
    energy_kept: float             # Σ_{i≤r} σ² / Σσ²
    params_before: int
    params_after: int
    error_fro: float
    error_closed_form: float
    rel_error: float

    @property
    def smaller(self) -> bool:
        return self.params_after < self.params_before

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "smaller": self.smaller}


@dataclass
class FactorizedLayer:
    """What :func:`factorize_layer` returns: the two-layer replacement and its :class:`LayerFactorization`."""

    module: nn.Sequential          # (first, second): n → r → m, ready to put in the layer's place
    report: LayerFactorization

    def as_dict(self) -> dict[str, Any]:
        return self.report.as_dict()


@dataclass
class LowRankReport:
    """What :func:`factorize_` did, one :class:`LayerFactorization` per layer, and the model's totals."""

    layers: list[LayerFactorization]
    params_before: int             # whole model
    params_after: int

    def as_dict(self) -> dict[str, Any]:
        return {"layers": [f.as_dict() for f in self.layers], "params_before": self.params_before,
                "params_after": self.params_after}

    def table(self) -> "Any":
        """The per-layer rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([f.as_dict() for f in self.layers])


@dataclass
class RankSweep:
    """One layer factorised at each of ``ranks`` (the rank slider's data), measured row by row.

    Each row: rank, rel_error, energy_kept, params (whole model), macs (whole model), p50_ms (latency of
    one batch-1 inference), accuracy (0–1, or None without data), and after fine-tuning where run.
    """

    layer: str
    m: int
    n: int
    break_even: float
    singular_values: list[float]
    rows: list[dict[str, Any]]
    dense: dict[str, Any]          # the same columns for the unfactorised model

    def row(self, rank: int) -> dict[str, Any]:
        for r in self.rows:
            if r["rank"] == rank:
                return r
        raise ValueError(f"rank={rank} was not swept; swept ranks: {[r['rank'] for r in self.rows]}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> "Any":
        import pandas as pd

        return pd.DataFrame([{**self.dense, "rank": "dense"}, *self.rows])


# ----------------------------------------------------------------------------- primitives


def _check_rank(rank: Any, full: int | None = None, name: str = "") -> None:
    where = f" for layer {name!r}" if name else ""
    if not isinstance(rank, int) or isinstance(rank, bool):
        raise ValueError(f"rank={rank!r}{where} must be an int")
    if rank < 1 or (full is not None and rank > full):
        allowed = f"1 to {full} (min(m, n) of the layer)" if full is not None else ">= 1"
        raise ValueError(f"rank={rank}{where} is outside the allowed range {allowed}")


def _check_energy(energy: Any) -> None:
    if isinstance(energy, bool) or not isinstance(energy, (int, float)) or not 0 < energy <= 1:
        raise ValueError(f"energy={energy!r} must be a share of Σσ² in (0, 1]")


def _check_layer(layer: Any, name: str = "layer") -> None:
    if isinstance(layer, torch.nn.Linear):
        return
    if isinstance(layer, torch.nn.Conv2d):
        if layer.groups != 1:
            raise TypeError(f"{name} is a grouped Conv2d (groups={layer.groups}); only groups=1 has one matrix view")
        return
    raise TypeError(f"{name} is a {type(layer).__name__}; low-rank factorisation takes nn.Linear or nn.Conv2d")


def matrix_view(layer: torch.nn.Module) -> torch.Tensor:
    """The weight as a matrix: Linear (m, n) as it is; Conv2d (out, in, kh, kw) → (out, in·kh·kw)."""
    _check_layer(layer)
    w = layer.weight.detach()
    return w.reshape(w.shape[0], -1)  # (m, n)


def singular_values(layer: torch.nn.Module) -> "np.ndarray":
    """Singular values of the layer's matrix view, largest first (float64 numpy array)."""
    return torch.linalg.svdvals(matrix_view(layer).double()).numpy()


def break_even_rank(m: int, n: int) -> float:
    """``m·n / (m + n)``: the factorised pair (``r·(m + n)`` weights) is smaller only for ``r`` below this."""
    if m < 1 or n < 1:
        raise ValueError(f"m={m} and n={n} must be >= 1")
    return m * n / (m + n)


def rank_for_energy(s: Sequence[float], energy: float) -> int:
    """Fewest leading singular values of ``s`` (sorted, largest first) whose squares keep ≥ ``energy`` of Σσ²."""
    import numpy as np

    _check_energy(energy)
    s2 = np.asarray(s, dtype=np.float64) ** 2
    if s2.size == 0 or s2.sum() == 0:
        return 1
    share = np.cumsum(s2) / s2.sum()
    return int(min(np.searchsorted(share, energy - 1e-12) + 1, s2.size))


def discarded_error(s: Sequence[float], rank: int) -> float:
    """Eckart–Young: the Frobenius error of the best rank-``rank`` approximation, ``sqrt(Σ_{i>rank} σ_i²)``."""
    import numpy as np

    s = np.asarray(s, dtype=np.float64)
    _check_rank(rank, s.size)
    return float(np.sqrt(np.sum(s[rank:] ** 2)))


def factorize_layer(layer: torch.nn.Module, *, rank: int | None = None, energy: float | None = None,
                    name: str = "layer") -> FactorizedLayer:
    """Split ``layer`` (nn.Linear or nn.Conv2d with groups=1) into two layers by truncated SVD.

    Linear(n → m) becomes Linear(n → r, no bias) → Linear(r → m, bias); Conv2d(in → out, k×k) becomes
    Conv2d(in → r, k×k, same stride/padding/dilation, no bias) → Conv2d(r → out, 1×1, bias). The SVD runs
    in float64 and the factors are balanced (√σ on each side). Returns a :class:`FactorizedLayer`: the new
    ``nn.Sequential`` (same dtype, device and train/eval mode) and its :class:`LayerFactorization`.
    """
    _check_layer(layer, name)
    if (rank is None) == (energy is None):
        raise ValueError(f"give exactly one of rank or energy; got rank={rank!r}, energy={energy!r}")
    w = matrix_view(layer)
    m, n = w.shape
    U, S, Vh = torch.linalg.svd(w.double(), full_matrices=False)  # (m, k), (k,), (k, n)
    s = S.numpy()
    if energy is not None:
        rank = rank_for_energy(s, energy)
    _check_rank(rank, min(m, n), name)
    root = S[:rank].sqrt()
    A = (U[:, :rank] * root).to(w.dtype)                # (m, r)
    B = (root[:, None] * Vh[:rank]).to(w.dtype)         # (r, n)
    bias = layer.bias
    kw = {"device": w.device, "dtype": w.dtype}
    if isinstance(layer, nn.Linear):
        first, second = nn.Linear(n, rank, bias=False, **kw), nn.Linear(rank, m, bias=bias is not None, **kw)
        first.weight.data.copy_(B)
        second.weight.data.copy_(A)
        kind = "Linear"
    else:
        kh, kwid = layer.kernel_size
        first = nn.Conv2d(layer.in_channels, rank, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                          dilation=layer.dilation, padding_mode=layer.padding_mode, bias=False, **kw)
        second = nn.Conv2d(rank, m, 1, bias=bias is not None, **kw)
        first.weight.data.copy_(B.reshape(rank, layer.in_channels, kh, kwid))
        second.weight.data.copy_(A.reshape(m, rank, 1, 1))
        kind = f"Conv2d {kh}x{kwid}"
    if bias is not None:
        second.bias.data.copy_(bias.detach())
    pair = nn.Sequential(first, second).train(layer.training)
    err = float(torch.linalg.matrix_norm(w.double() - A.double() @ B.double()))
    norm = float(torch.linalg.matrix_norm(w.double()))
    s2 = s ** 2
    info = LayerFactorization(
        name=name, kind=kind, m=m, n=n, rank=rank, full_rank=min(m, n), break_even=break_even_rank(m, n),
        energy_kept=float(s2[:rank].sum() / s2.sum()) if s2.sum() > 0 else 1.0,
        params_before=sum(p.numel() for p in layer.parameters()),
        params_after=sum(p.numel() for p in pair.parameters()),
        error_fro=err, error_closed_form=discarded_error(s, rank), rel_error=err / norm if norm > 0 else 0.0)
    return FactorizedLayer(pair, info)


def factorizable_layers(model: torch.nn.Module) -> list[str]:
    """Names of the model's nn.Linear and groups=1 nn.Conv2d modules, in model order."""
    return [n for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) or (isinstance(m, torch.nn.Conv2d) and m.groups == 1)]


def _lookup(model: torch.nn.Module, name: str) -> torch.nn.Module:
    modules = dict(model.named_modules())
    if name not in modules or not name:
        import difflib

        names = factorizable_layers(model)
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.4) or names[:8]
        raise ValueError(f"layer {name!r} does not exist in {type(model).__name__}; close names: {close}")
    return modules[name]


def _set(model: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


# ----------------------------------------------------------------------------- verbs


def factorize_(model: torch.nn.Module, config: LowRankConfig) -> LowRankReport:
    """Replace each layer named in ``config.layers`` by its two-layer factorisation, in place.

    All names are checked before anything changes (a misspelt name raises ``ValueError`` with close names;
    a layer that is not Linear/Conv2d raises ``TypeError``; a rank outside 1 … min(m, n) raises
    ``ValueError``). Returns a :class:`LowRankReport`. Fine-tune afterwards with :func:`mclab.models.train`.
    """
    if not isinstance(config, LowRankConfig):
        raise TypeError(f"config must be a LowRankConfig, got {type(config).__name__}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    layers = {name: _lookup(model, name) for name in config.layers}
    for name, layer in layers.items():
        _check_layer(layer, f"layer {name!r}")
        if config.rank is not None:
            _check_rank(config.rank, min(matrix_view(layer).shape), name)
    before = sum(p.numel() for p in model.parameters())
    infos = []
    for name, layer in layers.items():
        factorized = factorize_layer(layer, rank=config.rank, energy=config.energy, name=name)
        _set(model, name, factorized.module)
        infos.append(factorized.report)
    return LowRankReport(infos, before, sum(p.numel() for p in model.parameters()))


def spectra(model: torch.nn.Module, layers: Sequence[str] | None = None) -> dict[str, "np.ndarray"]:
    """Singular values (largest first) of each named layer's matrix view; all factorisable layers by default."""
    names = factorizable_layers(model) if layers is None else list(layers)
    out = {}
    for name in names:
        layer = _lookup(model, name)
        _check_layer(layer, f"layer {name!r}")
        out[name] = singular_values(layer)
    return out


def rank_sweep(model: torch.nn.Module, layer: str, ranks: Sequence[int], *, data: Any = None,
               example_inputs: torch.Tensor | None = None, latency_iters: int = 30,
               finetune: models.TrainConfig | None = None, train_data: Any = None) -> RankSweep:
    """Factorise ``layer`` of a copy of ``model`` at each rank and measure it: relative error, kept energy,
    parameters and MACs of the whole model (:func:`mclab.flops.count`), P50 latency of one call on
    ``example_inputs`` (:func:`mclab.bench.measure`, ``latency_iters`` timed calls; skipped when None) and
    accuracy on ``data`` (:func:`mclab.models.evaluate`; skipped when None). With ``finetune`` (a
    :class:`mclab.models.TrainConfig`) each factorised copy is then trained by :func:`mclab.models.train`
    (on ``train_data`` if given) and ``accuracy_finetuned`` added. Returns a :class:`RankSweep`.
    """
    import copy

    target = _lookup(model, layer)
    _check_layer(target, f"layer {layer!r}")
    m, n = matrix_view(target).shape
    ranks = sorted(set(ranks))
    if not ranks:
        raise ValueError("ranks is empty; give at least one rank")
    for r in ranks:
        _check_rank(r, min(m, n), layer)
    if finetune is not None and not isinstance(finetune, models.TrainConfig):
        raise TypeError(f"finetune must be a mclab.models.TrainConfig or None, got {type(finetune).__name__}")
    if latency_iters < 1:
        raise ValueError(f"latency_iters={latency_iters} must be >= 1")
    cfg = bench.BenchConfig(warmup=3, min_iters=latency_iters, max_iters=latency_iters, min_time_s=0)

    def measure(mod: torch.nn.Module) -> dict[str, Any]:
        mod.eval()
        row: dict[str, Any] = {"params": sum(p.numel() for p in mod.parameters()), "macs": None, "p50_ms": None,
                               "accuracy": None}
        if example_inputs is not None:
            row["macs"] = flops.count(mod, example_inputs).macs
            row["p50_ms"] = bench.measure(bench.inference_fn(mod), example_inputs, config=cfg).p50_ms
        if data is not None:
            row["accuracy"] = models.evaluate(mod, data).accuracy
        return row

    dense = {"rel_error": 0.0, "energy_kept": 1.0, **measure(model)}
    rows = []
    for r in ranks:
        copy_ = copy.deepcopy(model)
        info = factorize_(copy_, LowRankConfig((layer,), rank=r)).layers[0]
        row = {"rank": r, "rel_error": info.rel_error, "energy_kept": info.energy_kept,
               "layer_params": info.params_after, **measure(copy_)}
        if finetune is not None:
            models.train(copy_, finetune, data=train_data)
            row["accuracy_finetuned"] = models.evaluate(copy_, data).accuracy if data is not None else None
        rows.append(row)
    return RankSweep(layer, m, n, break_even_rank(m, n), singular_values(target).tolist(), rows, dense)
