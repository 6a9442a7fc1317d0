"""The kit's plotting style and its recurring figures.

Every figure function takes the unit of what it plots and writes it on the axis
(``latency [ms]``); every one accepts ``ax=`` and returns the Axes, so notebooks can lay
figures out side by side. Introduced in notebook 00.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["use_style", "axis_label", "distribution", "tradeoff", "bars", "triangle", "pareto_front", "roofline"]

# One palette for the whole kit; variants keep their colour from figure to figure.
PALETTE = "colorblind"


def use_style() -> None:
    """Apply the kit's theme (seaborn 'whitegrid', readable sizes); safe to call repeatedly."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    mpl.rcParams.update({
        "figure.figsize": (7.5, 4.2), "figure.dpi": 100, "savefig.dpi": 150,
        "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 10,
        "axes.titleweight": "bold", "figure.autolayout": True,
    })


def axis_label(name: str, unit: str) -> str:
    """``'latency', 'ms'`` -> ``'latency [ms]'``; refuses an empty unit (use '-' for none)."""
    if not unit:
        raise ValueError(f"unit for {name!r} is empty; every axis names its unit ('-' if dimensionless)")
    return f"{name} [{unit}]"


def _ax(ax: "Axes | None") -> "Axes":
    import matplotlib.pyplot as plt

    use_style()
    return ax if ax is not None else plt.subplots()[1]


def distribution(samples: Sequence[float], *, name: str = "latency", unit: str = "ms",
                 percentiles: Iterable[float] = (50, 90, 99), budgets: Mapping[str, float] | None = None,
                 ax: "Axes | None" = None, title: str | None = None) -> "Axes":
    """Histogram of samples with percentile lines (and optional budget lines, e.g. 'real-time': 30)."""
    import numpy as np

    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("samples is empty; pass at least one measurement")
    ax = _ax(ax)
    ax.hist(x, bins=min(60, max(10, x.size // 10)), color="C0", alpha=0.75)
    for i, p in enumerate(percentiles):
        v = float(np.percentile(x, p))
        ax.axvline(v, color=f"C{i + 1}", lw=2, label=f"P{p:g} = {v:.3g} {unit}")
    for label, v in (budgets or {}).items():
        ax.axvline(v, color="0.3", ls="--", lw=1.5, label=f"{label}: {v:g} {unit}")
    ax.set_xlabel(axis_label(name, unit))
    ax.set_ylabel(axis_label("count", "samples"))
    ax.set_title(title or f"{name} distribution (n = {x.size})")
    ax.legend()
    return ax


def pareto_front(xs: Sequence[float], ys: Sequence[float], *, x_better: str = "lower",
                 y_better: str = "higher") -> list[int]:
    """Indices of the points no other point beats on both axes, sorted by x."""
    for arg, v in (("x_better", x_better), ("y_better", y_better)):
        if v not in ("lower", "higher"):
            raise ValueError(f"{arg}={v!r}; allowed: 'lower' or 'higher'")
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys must have equal lengths, got {len(xs)} and {len(ys)}")
    sx = 1 if x_better == "lower" else -1
    sy = 1 if y_better == "lower" else -1
    pts = [(sx * x, sy * y) for x, y in zip(xs, ys, strict=True)]
    front = [i for i, (x, y) in enumerate(pts)
             if not any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for x2, y2 in pts)]
    return sorted(front, key=lambda i: xs[i])


def tradeoff(xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], *, x_name: str, x_unit: str,
             y_name: str, y_unit: str, x_better: str = "lower", y_better: str = "higher",
             ax: "Axes | None" = None, title: str | None = None) -> "Axes":
    """Scatter of variants on two metrics, the Pareto front joined by a line."""
    if not (len(xs) == len(ys) == len(labels)):
        raise ValueError(f"xs, ys and labels must have equal lengths, got {len(xs)}, {len(ys)}, {len(labels)}")
    ax = _ax(ax)
    front = pareto_front(xs, ys, x_better=x_better, y_better=y_better)
    for i, (x, y, lab) in enumerate(zip(xs, ys, labels, strict=True)):
        ax.scatter(x, y, s=70, color=f"C{i % 10}", zorder=3, edgecolor="k" if i in front else "none")
        ax.annotate(lab, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ax.plot([xs[i] for i in front], [ys[i] for i in front], "k--", lw=1, label="Pareto front")
    ax.set_xlabel(axis_label(x_name, x_unit) + f" ({x_better} is better)")
    ax.set_ylabel(axis_label(y_name, y_unit) + f" ({y_better} is better)")
    ax.set_title(title or f"{y_name} vs {x_name}")
    ax.legend()
    return ax


def bars(values: Mapping[str, float], *, name: str, unit: str, baseline: str | None = None,
         ax: "Axes | None" = None, title: str | None = None) -> "Axes":
    """Horizontal bars, one per variant, each annotated with its value (and ratio to ``baseline``)."""
    if not values:
        raise ValueError("values is empty; pass {variant: value}")
    if baseline is not None and baseline not in values:
        raise ValueError(f"baseline={baseline!r} is not one of {list(values)}")
    ax = _ax(ax)
    labels, vals = list(values), [float(v) for v in values.values()]
    ax.barh(labels, vals, color=[f"C{i % 10}" for i in range(len(vals))])
    ax.invert_yaxis()
    for i, v in enumerate(vals):
        text = f" {v:.3g} {unit}"
        if baseline is not None and values[baseline]:
            text += f"  ({v / float(values[baseline]):.2f}×)"
        ax.text(v, i, text, va="center", fontsize=9)
    ax.set_xlim(0, max(vals) * 1.35 if max(vals) > 0 else 1)
    ax.set_xlabel(axis_label(name, unit))
    ax.set_title(title or name)
    return ax


def roofline(peak_gflops: float, bandwidth_gbs: float, intensities: Sequence[float], gflops: Sequence[float],
             labels: Sequence[str], *, ax: "Axes | None" = None, title: str | None = None) -> "Axes":
    """Log-log roofline: the memory slope and compute ceiling, with each point at (FLOP/byte, GFLOP/s)."""
    import numpy as np

    if not (len(intensities) == len(gflops) == len(labels)):
        raise ValueError(f"intensities, gflops and labels must have equal lengths, got "
                         f"{len(intensities)}, {len(gflops)}, {len(labels)}")
    if peak_gflops <= 0 or bandwidth_gbs <= 0:
        raise ValueError(f"peak_gflops={peak_gflops} and bandwidth_gbs={bandwidth_gbs} must be > 0")
    ax = _ax(ax)
    ridge = peak_gflops / bandwidth_gbs
    lo = min([ridge / 100, *[i / 2 for i in intensities]])
    hi = max([ridge * 100, *[i * 2 for i in intensities]])
    xs = np.geomspace(lo, hi, 200)
    ax.loglog(xs, np.minimum(peak_gflops, bandwidth_gbs * xs), "k-", lw=2,
              label=f"roof: {peak_gflops:.0f} GFLOP/s, {bandwidth_gbs:.1f} GB/s")
    ax.axvline(ridge, color="0.5", ls=":", lw=1, label=f"ridge {ridge:.1f} FLOP/byte")
    for i, (x, y, lab) in enumerate(zip(intensities, gflops, labels, strict=True)):
        ax.scatter(x, y, s=60, color=f"C{i % 10}", zorder=3)
        ax.annotate(lab, (x, y), textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.set_xlabel(axis_label("arithmetic intensity", "FLOP/byte"))
    ax.set_ylabel(axis_label("achieved", "GFLOP/s"))
    ax.set_title(title or "Roofline of this machine")
    ax.legend(loc="lower right")
    return ax


def triangle(points: Mapping[str, tuple[float, float, float]] | None = None, *,
             ax: "Axes | None" = None) -> "Axes":
    """The accuracy / latency / resources trade-off triangle.

    ``points`` maps a label to weights (accuracy, low latency, low resources) that are placed
    by barycentric coordinates: a model near a corner is strong on that corner's goal.
    """
    import numpy as np

    ax = _ax(ax)
    corners = np.array([[0.5, np.sqrt(3) / 2], [0.0, 0.0], [1.0, 0.0]])
    names = ["high accuracy", "low latency", "low resources"]  # (Chinese: 高精度 / 低延迟 / 低资源)
    ax.fill(*corners.T, color="C0", alpha=0.08)
    ax.plot(*np.vstack([corners, corners[:1]]).T, color="C0", lw=2)
    offsets = [(0, 10), (-10, -18), (10, -18)]
    for (x, y), n, off in zip(corners, names, offsets, strict=True):
        ax.annotate(n, (x, y), textcoords="offset points", xytext=off, ha="center", fontsize=11, weight="bold")
    for i, (label, w) in enumerate((points or {}).items()):
        wv = np.asarray(w, dtype=float)
        if wv.shape != (3,) or (wv < 0).any() or wv.sum() <= 0:
            raise ValueError(f"points[{label!r}]={w}: need three non-negative weights, not all zero")
        x, y = (wv / wv.sum()) @ corners
        ax.scatter(x, y, s=80, color=f"C{(i + 1) % 10}", zorder=3)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(7, 3), fontsize=9)
    ax.set_aspect("equal")
    ax.set_xlim(-0.25, 1.25)
    ax.set_ylim(-0.25, 1.05)
    ax.axis("off")
    ax.set_title("Pick two: the accuracy / latency / resources triangle")
    return ax
