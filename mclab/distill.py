"""Knowledge distillation: a small student trained on a large teacher's softened outputs.

Response-based distillation (Hinton, Vinyals & Dean 2015) divides both models' logits by a temperature
``T`` so that the teacher's small probabilities for the *wrong* classes — which digits look alike, its
"dark knowledge" — become large enough to learn from, and mixes two terms::

    loss = alpha · T² · KL(softmax(t / T) ‖ softmax(s / T))  +  (1 − alpha) · CE(s, y)

The ``T²`` keeps the soft term's gradients on the same scale as the hard term's whatever ``T`` is
(the gradient of the softened KL shrinks as 1/T²). Feature-based distillation (FitNets, Romero et al.
2015) adds a term that pulls an intermediate student feature map, through a learned 1×1 projection, towards
the teacher's.

Primitives (:func:`soften`, :func:`target_distribution`, :func:`soft_label_stats`, :func:`distillation_loss`)
sit under the verbs :func:`distill_` (train one student in place; the teacher stays frozen and is checked
unchanged) and :func:`compare` (teacher vs student from scratch vs distilled student over several seeds, paired by
seed: :func:`mclab.stats.paired_t_interval`). Training is :func:`mclab.models.train` with a distillation ``loss_fn``.
Introduced in notebook 07.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from .data import DigitsDataset, digits
from .models import TrainConfig, TrainResult, evaluate, train
from .stats import TInterval, paired_t_interval

__all__ = [
    # configuration and results
    "DistillConfig", "FeatureConfig", "DistillResult", "SoftLabelStats", "SeedComparison",
    # primitives
    "soften", "target_distribution", "soft_label_stats", "distillation_loss", "feature_loss",
    "training_subset",
    # verbs
    "distill_", "compare",
]


# ----------------------------------------------------------------------------- configuration and results


def _check_temperature(temperature: Any) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0 \
            or not math.isfinite(temperature):
        raise ValueError(f"temperature={temperature!r} must be a finite number > 0 (1 = plain softmax; 2-8 is usual)")


def _check_alpha(alpha: Any) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha={alpha!r} must be in [0, 1] (0 = hard labels only, 1 = teacher only)")


@dataclass(frozen=True)
class FeatureConfig:
    """Feature-based distillation: match ``student_layer``'s output (through a learned 1×1 conv, or a
    linear map for 2-D features) to ``teacher_layer``'s, by mean squared error weighted by ``weight``.
    Spatial sizes are matched by adaptive average pooling of the larger map."""

    student_layer: str            # module name in the student, e.g. "6" for small_cnn's second ReLU
    teacher_layer: str            # module name in the teacher, e.g. "layer2"
    weight: float = 1.0           # multiplies the feature MSE before it joins the response loss

    def __post_init__(self) -> None:
        for name in ("student_layer", "teacher_layer"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name}={getattr(self, name)!r} must be a module name")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or not self.weight >= 0:
            raise ValueError(f"weight={self.weight!r} must be a number >= 0")


@dataclass(frozen=True)
class DistillConfig:
    """How to distil: temperature, the soft/hard mix, how to train the student, optional feature term."""

    temperature: float = 4.0          # > 0; higher spreads the teacher's probability over the wrong classes
    alpha: float = 0.9                # weight of the soft (teacher) term in [0, 1]; 1 - alpha on the hard labels
    train: TrainConfig = field(default_factory=TrainConfig)  # the student's optimiser, epochs, augmentation, seed
    features: FeatureConfig | None = None  # optional feature-based term
    n_per_class: int | None = None    # train on the first n training digits of each class (limited data)

    def __post_init__(self) -> None:
        _check_temperature(self.temperature)
        _check_alpha(self.alpha)
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        if self.features is not None and not isinstance(self.features, FeatureConfig):
            raise TypeError(f"features must be a FeatureConfig or None, got {type(self.features).__name__}")
        if self.n_per_class is not None and (not isinstance(self.n_per_class, int) or isinstance(self.n_per_class, bool)
                                             or self.n_per_class < 1):
            raise ValueError(f"n_per_class={self.n_per_class!r} must be an int >= 1 or None (all training digits)")

    def as_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "alpha": self.alpha, "train": self.train.key(),
                "features": asdict(self.features) if self.features else None, "n_per_class": self.n_per_class}


@dataclass
class DistillResult:
    """What :func:`distill_` did: the student's :class:`~mclab.models.TrainResult`, the configuration, and
    the frozen-teacher check (``teacher_unchanged`` is asserted True before this is returned)."""

    config: DistillConfig
    train: TrainResult
    teacher_unchanged: bool
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"config": self.config.as_dict(), "train": self.train.as_dict(),
                "teacher_unchanged": self.teacher_unchanged, "seconds": self.seconds}


@dataclass
class SoftLabelStats:
    """How much a teacher's soft labels at one temperature say beyond the hard label, means over N examples."""

    temperature: float
    entropy_nats: float               # of softmax(t / T); ln(classes) is uniform, 0 a one-hot
    top_prob: float                   # probability of the most likely class
    dark_mass: float                  # probability on the wrong classes: the "dark knowledge"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SeedComparison:
    """Teacher vs student from scratch vs distilled student, one accuracy (0–1) per seed and model.

    ``gain`` is the paired (same seed = same initial weights, batch order and augmentation) difference
    distilled − scratch with its t-interval; ``verdict`` says in words whether it is significant.
    """

    seeds: list[int]
    teacher_accuracy: float
    scratch: list[float]
    distilled: list[float]
    gain: TInterval
    config: DistillConfig
    n_eval: int
    seconds: float

    @staticmethod
    def _spread(x: Sequence[float]) -> tuple[float, float]:
        import numpy as np

        a = np.asarray(x, dtype=float)
        return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0

    @property
    def verdict(self) -> str:
        g, pct = self.gain, f"{round(100 * self.gain.level)}%"
        span = (f"{100 * g.mean:+.2f} points ({pct} CI {100 * g.low:+.2f} to {100 * g.high:+.2f}, {g.n} seeds, "
                f"p = {g.p_value:.3f})")
        if not g.significant:
            return f"not significant: distilled − scratch = {span}; the interval includes 0"
        better = "better" if g.mean > 0 else "worse"
        return f"significant: distilled − scratch = {span}; the distilled student is {better}"

    def table(self) -> "Any":
        """Mean and standard deviation over seeds per model, as a pandas DataFrame (accuracy in %)."""
        import pandas as pd

        rows = [("teacher", self.teacher_accuracy, 0.0, 1)]
        for name, acc in (("student from scratch", self.scratch), ("distilled student", self.distilled)):
            mean, sd = self._spread(acc)
            rows.append((name, mean, sd, len(acc)))
        return pd.DataFrame([{"model": n, "accuracy mean [%]": 100 * m, "std over seeds [points]": 100 * s, "runs": k}
                             for n, m, s, k in rows]).set_index("model")

    def as_dict(self) -> dict[str, Any]:
        return {"seeds": self.seeds, "teacher_accuracy": self.teacher_accuracy, "scratch": self.scratch,
                "distilled": self.distilled, "gain": self.gain.as_dict(), "verdict": self.verdict,
                "config": self.config.as_dict(), "n_eval": self.n_eval, "seconds": self.seconds}


# ----------------------------------------------------------------------------- primitives


def soften(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(logits / T)`` over the last axis: the teacher's soft labels at temperature ``T``."""
    _check_temperature(temperature)
    return (logits / temperature).softmax(-1)


def _check_logits_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"teacher_logits {tuple(logits.shape)} must be (N, classes) and labels "
                         f"{tuple(labels.shape)} must be (N,)")


def target_distribution(teacher_logits: torch.Tensor, labels: torch.Tensor, *, temperature: float,
                        alpha: float) -> torch.Tensor:
    """What the distillation loss pulls each example's prediction towards: ``alpha · softmax(t / T) + (1 − alpha)
    · one-hot(y)``, shape (N, classes) like ``teacher_logits``; ``labels`` is (N,). Each row sums to 1. Drawn by
    the soft-label sliders of notebook 07."""
    _check_alpha(alpha)
    _check_logits_labels(teacher_logits, labels)
    p = soften(teacher_logits.detach().float(), temperature)
    return alpha * p + (1 - alpha) * F.one_hot(labels, p.shape[1]).to(p.dtype)


def soft_label_stats(teacher_logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> SoftLabelStats:
    """Mean entropy (nats), top probability and probability on the wrong classes of ``softmax(t / T)`` over the
    N examples of ``teacher_logits`` (N, classes) with true ``labels`` (N,). Returns a :class:`SoftLabelStats`;
    notebook 07 plots them against the temperature."""
    _check_logits_labels(teacher_logits, labels)
    p = soften(teacher_logits.detach().float(), temperature)
    entropy = float(-(p * p.clamp_min(1e-12).log()).sum(1).mean())
    wrong = 1 - p.gather(1, labels[:, None]).squeeze(1)
    return SoftLabelStats(float(temperature), entropy, float(p.max(1).values.mean()), float(wrong.mean()))


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
                      temperature: float, alpha: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """``alpha · T² · KL(p_t ‖ p_s) + (1 − alpha) · CE(s, y)`` with ``p = softmax(logits / T)``; the KL is
    summed over classes and averaged over the batch (``KLDivLoss(reduction="batchmean")``). Returns a scalar
    tensor in nats. ``alpha = 0`` is plain cross-entropy; the teacher's logits get no gradient."""
    _check_temperature(temperature)
    _check_alpha(alpha)
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} must both be (batch, classes)")
    t = teacher_logits.detach()
    soft = F.kl_div(F.log_softmax(student_logits / temperature, -1), F.log_softmax(t / temperature, -1),
                    reduction="batchmean", log_target=True) * temperature ** 2
    hard = F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    return alpha * soft + (1 - alpha) * hard


def feature_loss(student_feature: torch.Tensor, teacher_feature: torch.Tensor,
                 projection: torch.nn.Module) -> torch.Tensor:
    """Mean squared error between ``projection(student_feature)`` and the teacher's feature; 4-D maps of
    different sizes are pooled to the smaller one. Returns a scalar tensor."""
    s = projection(student_feature)
    t = teacher_feature.detach()
    if s.dim() == 4 and t.dim() == 4 and s.shape[-2:] != t.shape[-2:]:
        hw = (min(s.shape[-2], t.shape[-2]), min(s.shape[-1], t.shape[-1]))
        s, t = F.adaptive_avg_pool2d(s, hw), F.adaptive_avg_pool2d(t, hw)
    if s.shape != t.shape:
        raise ValueError(f"projected student feature {tuple(s.shape)} does not match the teacher's {tuple(t.shape)}")
    return F.mse_loss(s, t)


# ----------------------------------------------------------------------------- verbs


def _module(model: torch.nn.Module, name: str, role: str) -> torch.nn.Module:
    modules = dict(model.named_modules())
    if not name or name not in modules:
        import difflib

        names = [n for n in modules if n]
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.4) or names[:8]
        raise ValueError(f"{role} layer {name!r} does not exist in {type(model).__name__}; close names: {close}")
    return modules[name]


def training_subset(n_per_class: int | None, size: int = 32) -> Any:
    """The first ``n_per_class`` training digits of each class (every one for None, or where a class has
    fewer) as a :class:`mclab.data.DigitsDataset` at ``size`` pixels: the limited-data setting of notebook 07."""
    ds = digits("train", size=size)
    if n_per_class is None:
        return ds
    idx = torch.cat([torch.nonzero(ds.y == c).flatten()[:n_per_class] for c in range(10)])
    return DigitsDataset(ds.x[idx], ds.y[idx], "train", size)


def distill_(student: torch.nn.Module, teacher: torch.nn.Module, config: DistillConfig | None = None) -> DistillResult:
    """Train ``student`` in place on ``teacher``'s softened outputs plus the hard labels
    (:func:`distillation_loss`, through :func:`mclab.models.train` with ``config.train``).

    The teacher runs in eval mode without gradients on exactly the (augmented) batch the student sees; its
    parameters and buffers are compared before and after, and an ``AssertionError`` is raised if anything
    changed. With ``config.features`` a 1×1 projection is trained alongside the student (and discarded).
    Returns a :class:`DistillResult`.
    """
    cfg = config or DistillConfig()
    if not isinstance(cfg, DistillConfig):
        raise TypeError(f"config must be a DistillConfig, got {type(cfg).__name__}")
    for role, m in (("student", student), ("teacher", teacher)):
        if not isinstance(m, torch.nn.Module):
            raise TypeError(f"{role} must be a torch.nn.Module, got {type(m).__name__}")
    before = {k: v.detach().clone() for k, v in teacher.state_dict().items()}
    was_training, grads = teacher.training, [p.requires_grad for p in teacher.parameters()]
    teacher.eval()
    teacher.requires_grad_(False)
    T, alpha, smooth = cfg.temperature, cfg.alpha, cfg.train.label_smoothing
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    model: torch.nn.Module = student
    if cfg.features is not None:
        f = cfg.features
        s_layer, t_layer = _module(student, f.student_layer, "student"), _module(teacher, f.teacher_layer, "teacher")
        hooks += [s_layer.register_forward_hook(lambda m, i, o: captured.__setitem__("s", o)),
                  t_layer.register_forward_hook(lambda m, i, o: captured.__setitem__("t", o))]
        x0 = training_subset(cfg.n_per_class, cfg.train.size).x[:2]
        with torch.no_grad():
            student.eval()(x0)
            teacher(x0)
        cs, ct = captured["s"].shape[1], captured["t"].shape[1]
        conv = captured["s"].dim() == 4
        proj = torch.nn.Conv2d(cs, ct, 1, bias=False) if conv else torch.nn.Linear(cs, ct, bias=False)
        model = _WithProjection(student, proj)

    def loss_fn(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = m(x)
        with torch.no_grad():
            t = teacher(x)
        loss = distillation_loss(s, t, y, temperature=T, alpha=alpha, label_smoothing=smooth)
        if cfg.features is not None:
            loss = loss + cfg.features.weight * feature_loss(captured["s"], captured["t"], m.projection)
        return loss

    t0 = time.perf_counter()
    try:
        result = train(model, cfg.train, loss_fn=loss_fn, data=training_subset(cfg.n_per_class, cfg.train.size))
    finally:
        for h in hooks:
            h.remove()
        teacher.train(was_training)
        for p, g in zip(teacher.parameters(), grads, strict=True):
            p.requires_grad_(g)
    after = teacher.state_dict()
    unchanged = all(torch.equal(before[k], after[k]) for k in before)
    assert unchanged, "the teacher's parameters or buffers changed during distillation; it must stay frozen"
    student.eval()
    return DistillResult(cfg, result, unchanged, time.perf_counter() - t0)


class _WithProjection(torch.nn.Module):
    """The student and its feature projection in one module, so one optimiser trains both; forward is the student's."""

    def __init__(self, student: torch.nn.Module, projection: torch.nn.Module) -> None:
        super().__init__()
        self.student, self.projection = student, projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)


def compare(make_student: Callable[[int], torch.nn.Module], teacher: torch.nn.Module,
            config: DistillConfig | None = None, *, seeds: Sequence[int] = (0, 1, 2), data: Any = None,
            level: float = 0.95, progress: bool = True) -> SeedComparison:
    """Train ``make_student(seed)`` twice per seed — from scratch (cross-entropy, ``config.train``) and
    distilled from ``teacher`` (:func:`distill_`) — on the same training digits, and evaluate both and the
    teacher on ``data`` (default: the augmented test split, ``digits("test_aug")``). The seed fixes the
    initial weights, batch order and augmentation, so the two runs of a seed differ only in the loss and the
    differences are paired. Returns a :class:`SeedComparison` with the paired t-interval of the gain.
    """
    from tqdm.auto import tqdm

    cfg = config or DistillConfig()
    if not isinstance(cfg, DistillConfig):
        raise TypeError(f"config must be a DistillConfig, got {type(cfg).__name__}")
    seeds = list(seeds)
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds} must be at least 2 distinct seeds (3 or more for a useful interval)")
    if not callable(make_student):
        raise TypeError("make_student must be a callable taking a seed and returning a fresh student")
    data = data if data is not None else digits("test_aug", size=cfg.train.size)
    t0 = time.perf_counter()
    subset = training_subset(cfg.n_per_class, cfg.train.size)
    scratch, distilled = [], []
    quiet = replace(cfg.train, progress=False)
    for seed in tqdm(seeds, desc="seeds (scratch + distilled)", disable=not progress, leave=False):
        tc = replace(quiet, seed=seed)
        s = make_student(seed)
        train(s, tc, data=subset)
        scratch.append(evaluate(s, data).accuracy)
        d = make_student(seed)
        distill_(d, teacher, replace(cfg, train=tc))
        distilled.append(evaluate(d, data).accuracy)
    teacher_acc = evaluate(teacher, data).accuracy
    return SeedComparison(seeds, teacher_acc, scratch, distilled, paired_t_interval(scratch, distilled, level), cfg,
                          len(data), time.perf_counter() - t0)
