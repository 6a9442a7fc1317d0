"""Reliability: is the answer the same every time, always a number, and does it survive a stress run?

- ``stability``: output spread over repeated runs of one input (the source material's target: std < 0.01).
- ``determinism``: do outputs change with the thread count or the random seed?
- ``scan_nonfinite``: NaN/Inf in the outputs and in every module's activations.
- ``saturation``: how many values an integer grid clips.
- ``stress``: many inferences on random and awkward inputs, counting errors and slow outliers, with an
  upper confidence bound on the error rate (the source material's target: < 0.01%).
- ``drift``: one input through every variant, max error and top-1 agreement against a reference.

Introduced in notebook 15.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import torch

__all__ = [
    # results
    "StabilityResult", "NonFiniteReport", "StressResult",
    # verbs
    "stability", "determinism", "scan_nonfinite", "saturation", "stress", "drift", "error_rate_upper",
    # data
    "TARGETS",
]

TARGETS = {"output_std": 0.01, "error_rate": 1e-4}  # the source material's stability and error-rate targets


def _np(out: Any) -> np.ndarray:
    if hasattr(out, "detach"):
        out = out.detach().float().cpu().numpy()
    return np.asarray(out, dtype=np.float64)


def _call(fn: Callable[..., Any], *args: Any, what: str) -> Any:
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    try:
        return fn(*args)
    except Exception as e:
        raise RuntimeError(f"fn raised during {what}: {type(e).__name__}: {e}") from e


# ----------------------------------------------------------------------------- stability and determinism


@dataclass
class StabilityResult:
    runs: int
    output_std: float          # mean over output elements of the std across runs
    max_abs_diff: float        # largest difference of any run from the first
    identical: bool            # every run bit-for-bit equal to the first
    target_std: float = TARGETS["output_std"]

    @property
    def passed(self) -> bool:
        return self.output_std < self.target_std

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def stability(fn: Callable[..., Any], *args: Any, runs: int = 100) -> StabilityResult:
    """Run ``fn(*args)`` ``runs`` times and measure how much the output moves (the source's std test)."""
    if runs < 2:
        raise ValueError(f"runs={runs} must be >= 2")
    outs = np.stack([_np(_call(fn, *args, what="the stability test")) for _ in range(runs)])
    return StabilityResult(runs, float(outs.std(axis=0).mean()), float(np.abs(outs - outs[0]).max()),
                           bool((outs == outs[0]).all()))


def determinism(make_output: Callable[[int | None, int | None], Any],
                settings: Sequence[tuple[int | None, int | None]]) -> list[dict[str, Any]]:
    """Outputs under several (threads, seed) settings compared with the first setting.

    ``make_output(threads, seed)`` must build its output under that setting (the kit sets
    ``torch.set_num_threads`` and ``torch.manual_seed`` before calling it; ``None`` leaves them alone).
    Returns one row per setting: max absolute difference from the first, and bit-for-bit equality.
    """
    import torch

    if len(settings) < 2:
        raise ValueError(f"settings needs at least two (threads, seed) pairs, got {len(settings)}")
    before = torch.get_num_threads()
    rows, first = [], None
    try:
        for threads, seed in settings:
            if threads is not None:
                if threads < 1:
                    raise ValueError(f"threads={threads} must be >= 1")
                torch.set_num_threads(threads)
            if seed is not None:
                torch.manual_seed(seed)
            out = _np(_call(make_output, threads, seed, what="the determinism test"))
            first = out if first is None else first
            rows.append({"threads": threads, "seed": seed, "max_abs_diff": float(np.abs(out - first).max()),
                         "identical": bool((out == first).all())})
    finally:
        torch.set_num_threads(before)
    return rows


# ----------------------------------------------------------------------------- numerical health


@dataclass
class NonFiniteReport:
    """NaN/Inf counts in a forward pass: per module that produced any, and in the output."""

    output_nan: int
    output_inf: int
    modules: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> {"nan", "inf"} of bad modules
    first_bad_module: str | None = None
    max_abs: float = 0.0                 # largest finite |activation| of any leaf module (FP16 tops out at 65,504)
    max_abs_module: str | None = None

    @property
    def healthy(self) -> bool:
        return self.output_nan == 0 and self.output_inf == 0 and not self.modules

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "healthy": self.healthy}


def scan_nonfinite(model: "torch.nn.Module", *inputs: "torch.Tensor") -> NonFiniteReport:
    """One forward pass with hooks on every leaf module; names the first module whose output went bad."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    bad: dict[str, dict[str, int]] = {}
    order: list[str] = []
    peak: list = [0.0, None]

    def hook(name):
        def check(_m, _i, out):
            t = out[0] if isinstance(out, (tuple, list)) else out
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
                if nan or inf:
                    bad[name] = {"nan": nan, "inf": inf}
                    order.append(name)
                finite = t[torch.isfinite(t)]
                if finite.numel() and float(finite.abs().max()) > peak[0]:
                    peak[:] = [float(finite.abs().max()), name]
        return check

    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    try:
        with torch.no_grad():
            out = _call(model, *inputs, what="the NaN/Inf scan")
    finally:
        for h in handles:
            h.remove()
    o = out[0] if isinstance(out, (tuple, list)) else out
    return NonFiniteReport(int(torch.isnan(o).sum()), int(torch.isinf(o).sum()), bad, order[0] if order else None,
                           peak[0], peak[1])


def saturation(x: Any, scale: float, zero_point: int = 0, bits: int = 8, signed: bool = True) -> dict[str, float]:
    """How many values of ``x`` an integer grid (scale, zero point, bits) clips at its ends.

    Returns counts below and above the range and the clipped fraction; use it after INT8 calibration
    to see what the chosen range throws away.
    """
    if not 2 <= bits <= 16:
        raise ValueError(f"bits={bits} must be between 2 and 16")
    if not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"scale={scale!r} must be > 0")
    qmin, qmax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    if not qmin <= zero_point <= qmax:
        raise ValueError(f"zero_point={zero_point} is outside the integer range [{qmin}, {qmax}]")
    q = np.round(_np(x) / scale) + zero_point
    low, high = int((q < qmin).sum()), int((q > qmax).sum())
    return {"below": low, "above": high, "fraction": (low + high) / max(q.size, 1), "qmin": qmin, "qmax": qmax}


# ----------------------------------------------------------------------------- stress


def error_rate_upper(errors: int, n: int, level: float = 0.95) -> float:
    """One-sided upper confidence bound of an error rate (exact binomial; 3/n for zero errors at 95%)."""
    if n < 1 or not 0 <= errors <= n:
        raise ValueError(f"need 0 <= errors <= n and n >= 1, got errors={errors}, n={n}")
    if errors == n:
        return 1.0

    def cdf(p: float) -> float:  # P(X <= errors) for X ~ Binomial(n, p)
        logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p)
                + (n - i) * math.log1p(-p) for i in range(errors + 1)]
        top = max(logs)
        return math.exp(top) * sum(math.exp(v - top) for v in logs)

    lo, hi = 0.0, 1.0
    for _ in range(80):  # bisection: the p at which seeing <= errors has probability 1 - level
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 1 - level else (lo, mid)
    return hi


@dataclass
class StressResult:
    inferences: int                     # items processed (a batch of 8 counts 8)
    calls: int
    errors: int                         # calls that raised
    nonfinite: int                      # items whose output held NaN/Inf
    slow_outliers: int                  # calls slower than slow_factor × median per-item time
    by_kind: dict[str, dict[str, int]]  # input kind -> {"calls", "items", "errors", "nonfinite"}
    error_messages: list[str]
    wall_s: float
    error_rate: float                   # (errors' items + nonfinite) / inferences
    error_rate_upper95: float
    target: float = TARGETS["error_rate"]

    @property
    def observed_ok(self) -> bool:
        """The observed error rate is below the target."""
        return self.error_rate < self.target

    @property
    def proven_ok(self) -> bool:
        """The 95% upper bound is below the target too (zero errors need >= 3 / target inferences)."""
        return self.error_rate_upper95 < self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "observed_ok": self.observed_ok, "proven_ok": self.proven_ok}

    def __str__(self) -> str:
        return (f"{self.inferences} inferences in {self.calls} calls, {self.wall_s:.1f} s: {self.errors} errors, "
                f"{self.nonfinite} non-finite outputs, {self.slow_outliers} slow outliers; error rate "
                f"{self.error_rate:.2g} (95% upper bound {self.error_rate_upper95:.2g}, target < {self.target:.0e})")


def stress(fn: Callable[[Any], Any], make_input: Callable[[str, int, np.random.Generator], Any], n: int, *,
           kinds: Sequence[str] = ("random", "zeros", "extremes"), batch_sizes: Sequence[int] = (1, 3, 8, 32),
           slow_factor: float = 10.0, seed: int = 0) -> StressResult:
    """At least ``n`` inferences through ``fn``, cycling input kinds and odd batch sizes.

    ``make_input(kind, batch, rng)`` builds one batch. A call that raises counts all its items as errors
    (the message is kept); an output row with NaN/Inf counts as a non-finite item.
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    if not kinds or not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"kinds={kinds} must be non-empty and batch_sizes={batch_sizes} positive")
    if slow_factor <= 1:
        raise ValueError(f"slow_factor={slow_factor} must be > 1")
    rng = np.random.default_rng(seed)
    by_kind = {k: {"calls": 0, "items": 0, "errors": 0, "nonfinite": 0} for k in kinds}
    per_item_ms, messages = [], []
    items = calls = err_items = nonfinite = 0
    t0 = time.perf_counter()
    while items < n:
        kind, b = kinds[calls % len(kinds)], batch_sizes[(calls // len(kinds)) % len(batch_sizes)]
        x = make_input(kind, b, rng)
        start = time.perf_counter()
        try:
            out = _np(fn(x)).reshape(b, -1)
            bad = int((~np.isfinite(out)).any(axis=1).sum())
        except Exception as e:  # counted, not hidden: the message is kept for the report
            by_kind[kind]["errors"] += b
            err_items += b
            if len(messages) < 10:
                messages.append(f"{kind} batch {b}: {type(e).__name__}: {str(e)[:120]}")
            bad = 0
        per_item_ms.append((time.perf_counter() - start) * 1e3 / b)
        nonfinite += bad
        by_kind[kind]["nonfinite"] += bad
        by_kind[kind]["calls"] += 1
        by_kind[kind]["items"] += b
        items += b
        calls += 1
    med = float(np.median(per_item_ms))
    slow = int(sum(t > slow_factor * med for t in per_item_ms))
    failures = err_items + nonfinite
    return StressResult(items, calls, err_items, nonfinite, slow, by_kind, messages, time.perf_counter() - t0,
                        failures / items, error_rate_upper(min(failures, items), items))


# ----------------------------------------------------------------------------- drift


def drift(variants: Mapping[str, Callable[[Any], Any]], x: Any, reference: str) -> "pd.DataFrame":
    """The same input through every variant: max absolute error and top-1 agreement vs ``reference``."""
    import pandas as pd

    if reference not in variants:
        raise ValueError(f"reference={reference!r} is not one of the variants {list(variants)}")
    outs = {name: _np(_call(fn, x, what=f"variant {name!r}")) for name, fn in variants.items()}
    ref = outs[reference]
    rows = []
    for name, out in outs.items():
        if out.shape != ref.shape:
            raise ValueError(f"variant {name!r} returned shape {out.shape}, the reference {ref.shape}")
        flat, rflat = out.reshape(len(out), -1), ref.reshape(len(ref), -1)
        rows.append({"variant": name, "max_abs_err": float(np.abs(out - ref).max()),
                     "mean_abs_err": float(np.abs(out - ref).mean()),
                     "top1_agreement": float((flat.argmax(1) == rflat.argmax(1)).mean()),
                     "nonfinite": int((~np.isfinite(out)).sum())})
    return pd.DataFrame(rows).set_index("variant")
