"""Pruning over time: per-layer sensitivity scans, and iterative prune + fine-tune towards a final sparsity.

:func:`sensitivity` prunes each layer alone to each amount and measures the accuracy drop (unstructured or by
channels); :func:`iterative_prune_` alternates pruning (:func:`mclab.prune.prune_`) and fine-tuning
(``mclab.models.train``) along a linear or cubic schedule. Introduced in notebook 06.
"""
from __future__ import annotations

import numbers
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from .channels import ChannelConfig, plan_channels, prune_channels, recalibrate_bn_
from .masks import PruneConfig, make_permanent_, prune_
from .primitives import (
    _SCOPES,
    _check_amount,
    _check_choice,
    _check_int,
    _check_layers,
    _config,
    magnitude_mask,
    prunable_layers,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SensitivityConfig", "IterativeConfig", "SensitivityResult", "IterativeResult", "sensitivity",
           "iterative_prune_"]

_KINDS = ("unstructured", "channel")
_SCHEDULES = ("linear", "cubic")


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
    from ..models import evaluate

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
    from ..data import DigitsDataset, digits
    from ..models import TrainConfig, evaluate, train

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
