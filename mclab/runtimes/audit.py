"""Are the kit's defaults the fast ones on this machine? ``audit_defaults(model, threads=2)`` -> :class:`DefaultsAudit`.

A default is a promise: what a learner gets without asking should be the fast, correct setting here. For each
runtime of the registry and each precision it offers, the audit builds the kit's default runner and one runner
per value of each setting the plug-in declares in its ``KNOBS`` (one setting changed from the default at a time;
then the two best changes together when two settings each helped in a short probe), checks every variant's
outputs against the default's on the same inputs, and times them all interleaved (:func:`mclab.bench.compare_many`).

A variant whose outputs move by more than FP32 rounding (``tol``, relative to the largest output) is left out of
"best", with the reason in the row; so is one that fails to build (its message) or one that is far slower than the
default in a short probe (not worth timing further). ``met``: the default runs at >= ``threshold`` (0.9) of
the best variant's speed, i.e. ``ratio >= threshold`` where ``ratio`` is the median over the interleaved rounds of
best time / default time — or the best is not clearly faster (the 95 % CI of its speed-up over the default, from
the same per-round ratios, reaches 1). A runtime that is not available here is a
row "skipped: <why>". The audit asks the registry and the plug-ins' ``KNOBS`` only; it names no runtime.
``benchmarks/defaults.py`` runs it on ResNet-18; notebook 11 shows it for the mobile runtimes.
"""
from __future__ import annotations

import gc
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .base import RUNTIMES, available, build_options, load, model_label, plugin

__all__ = ["Variant", "AuditRow", "DefaultsAudit", "knobs_of", "settings_label", "audit_defaults"]


@dataclass
class Variant:
    """One runner of an audit row: the default (``settings == {}``) or the default with ``settings`` changed."""

    settings: dict[str, Any]          # knob -> value changed from the default ({} = the kit's default)
    status: str                       # "ok", "excluded: <why>", "failed: <why>", "not timed: <why>"
    p50_ms: float | None = None       # median latency over the interleaved rounds, ms
    ratio: float | None = None        # its time / the default's: median of the per-round ratios (1 for the default)
    probe_ms: float | None = None     # median of the short probe before the rounds, ms
    max_abs_diff: float | None = None  # max |variant - default| over the check inputs
    build_s: float | None = None

    @property
    def label(self) -> str:
        return settings_label(self.settings)


def settings_label(settings: dict[str, Any]) -> str:
    """``{"level": "basic"}`` -> "level=basic"; ``{}`` -> "default"."""
    return "+".join(f"{k}={v}" for k, v in settings.items()) or "default"


@dataclass
class AuditRow:
    """One runtime at one requested precision: the default's time against the best variant's."""

    runtime: str
    precision: str                    # the precision asked for
    status: str                       # "ok", "skipped: <why>", "failed: <why>"
    computes_in: str | None = None    # what the default runner computes in (Runner.precision)
    default_ms: float | None = None   # P50 of the default, ms
    best_ms: float | None = None      # P50 of the fastest eligible runner (the default itself if none is faster)
    best: dict[str, Any] = field(default_factory=dict)  # its settings ({} = the default is the best)
    # best time / default time, the median of the per-round ratios: the default's speed as a fraction of the best
    # (<= 1). The statistic speedup_ci is the interval of (1 / ratio lies inside it); best_ms / default_ms, two P50s
    # pooled over all rounds, can differ from it when the machine's speed drifts between rounds.
    ratio: float | None = None
    speedup_ci: tuple[float, float] | None = None  # 95 % CI of 1 / ratio: default time / best time, per round
    met: bool | None = None           # ratio >= threshold, or the best not clearly faster (speedup_ci reaches 1)
    reason: str = ""                  # variants left out of "best" and why (numerics, failures)
    variants: list[Variant] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def verdict(self) -> str:
        return self.status if not self.ok else ("met" if self.met else "MISSED")


@dataclass
class DefaultsAudit:
    """Every (runtime, precision) row and how they were measured."""

    model: str
    rows: list[AuditRow]
    manifest: dict[str, Any]

    def row(self, runtime: str, precision: str = "fp32") -> AuditRow:
        for r in self.rows:
            if r.runtime == runtime and r.precision == precision:
                return r
        raise KeyError(f"no row for {runtime}:{precision}; rows: {[f'{r.runtime}:{r.precision}' for r in self.rows]}")

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "rows": [{**asdict(r), "verdict": r.verdict} for r in self.rows],
                "manifest": self.manifest}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{"runtime": r.runtime, "precision": r.precision, "computes in": r.computes_in,
                              "default ms": r.default_ms, "best ms": r.best_ms,
                              "best settings": settings_label(r.best) if r.ok else None, "ratio": r.ratio,
                              "verdict": r.verdict, "reason": r.reason} for r in self.rows])

    def __str__(self) -> str:
        m = self.manifest
        lines = [f"{self.model}: batch {m['batch']}, threads {m['threads']}, {m['rounds']} interleaved rounds x "
                 f"{m['calls_per_round']} calls; met = default >= {m['threshold']:.0%} of the best speed",
                 f"{'runtime':<14}{'prec':<6}{'default ms':>11}{'best ms':>9}  {'best settings':<42}{'ratio':>6}  "
                 f"{'verdict':<7} reason"]
        for r in self.rows:
            if not r.ok:
                lines.append(f"{r.runtime:<14}{r.precision:<6}{r.status}")
                continue
            lines.append(f"{r.runtime:<14}{r.precision:<6}{r.default_ms:11.2f}{r.best_ms:9.2f}  "
                         f"{settings_label(r.best):<42}{r.ratio:6.2f}  {r.verdict:<7} {r.reason}")
        return "\n".join(lines)


def knobs_of(runtime: str) -> dict[str, tuple]:
    """The plug-in's ``KNOBS`` (setting -> values, the default first), checked against what its ``build`` takes;
    ``{}`` for a plug-in that declares none."""
    knobs = dict(getattr(plugin(runtime), "KNOBS", {}) or {})
    _check_knobs(runtime, knobs)
    return knobs


def _check_knobs(runtime: str, knobs: dict[str, Any]) -> None:
    takes = build_options(runtime)
    for name, values in knobs.items():
        if name not in takes:
            raise ValueError(f"knob {name!r} is not a build option of runtime={runtime!r}; its build takes "
                             f"{list(takes) or 'none'}")
        if not isinstance(values, tuple) or not values:
            raise ValueError(f"knob {name!r} of runtime={runtime!r} has values {values!r}; give a non-empty tuple, "
                             f"the default first")


def _targets(targets: Any) -> list[tuple[str, str]]:
    """"runtime" (every precision it offers) or "runtime:precision" -> (runtime, precision) pairs."""
    if targets is None:
        targets = tuple(RUNTIMES)
    if isinstance(targets, str) or not targets:
        raise ValueError(f"targets={targets!r}; pass a tuple like ('onnxruntime', 'openvino:bf16') or None")
    pairs: list[tuple[str, str]] = []
    for t in targets:
        runtime, _, precision = str(t).partition(":")
        if runtime not in RUNTIMES:
            raise ValueError(f"target {t!r}: runtime {runtime!r} is unknown; available runtimes: {sorted(RUNTIMES)}")
        offered = RUNTIMES[runtime].precisions
        if precision and precision not in offered:
            raise ValueError(f"target {t!r}: runtime {runtime!r} takes precisions {list(offered)}")
        pairs += [(runtime, p) for p in ((precision,) if precision else offered)]
    return list(dict.fromkeys(pairs))


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:100]


def _median_ms(fn: Any, x: Any, calls: int) -> float:
    import numpy as np

    ts = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn(x)
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts))


def _audit_one(model: Any, runtime: str, precision: str, knobs: dict[str, tuple], *, threads: int,
               input_shape: Any, batch: int, rounds: int, calls_per_round: int, warmup: int, tol: float,
               threshold: float, slow: float, probe_calls: int, n_check: int) -> AuditRow:
    import numpy as np

    from .. import bench

    row = AuditRow(runtime, precision, "ok")

    def build(settings: dict[str, Any]) -> tuple[Any, Variant]:
        v = Variant(dict(settings), "ok")
        t0 = time.perf_counter()
        try:
            r = load(model, runtime, batch=batch, threads=threads, input_shape=input_shape, precision=precision,
                     **settings)
        except ValueError as e:  # the plug-in refuses this setting at this precision
            v.status = f"failed: {_first_line(e)}"
            return None, v
        except (RuntimeError, ImportError, OSError) as e:  # the framework cannot build it (kept, never hidden)
            v.status = f"failed: {type(e).__name__}: {_first_line(e)}"
            return None, v
        v.build_s = time.perf_counter() - t0
        return r, v

    default, dv = build({})
    if default is None:
        row.status = dv.status
        return row
    row.computes_in = default.precision
    inputs = [default.example_input(k) for k in range(n_check)]
    refs = [default.run(x) for x in inputs]
    scale = max(1.0, max(float(np.max(np.abs(r))) for r in refs))
    x = inputs[0]
    dv.max_abs_diff = 0.0
    dv.probe_ms = _median_ms(default.run, x, probe_calls)

    def check(r: Any, v: Variant) -> bool:
        """Outputs within rounding of the default's, and not far slower in the probe; sets v.status."""
        try:
            outs = [r.run(xi) for xi in inputs]
        except (RuntimeError, ValueError) as e:
            v.status = f"failed: {type(e).__name__}: {_first_line(e)}"
            return False
        v.max_abs_diff = float(max(np.max(np.abs(np.asarray(o, np.float64) - ref))
                                   for o, ref in zip(outs, refs, strict=True)))
        v.probe_ms = _median_ms(r.run, x, probe_calls)
        if v.probe_ms > slow * dv.probe_ms:
            v.status = (f"not timed: {v.probe_ms / dv.probe_ms:.0f}x slower than the default in "
                        f"{probe_calls} probe calls")
        elif v.max_abs_diff > tol * scale:
            v.status = f"excluded: changes outputs by {v.max_abs_diff:.1e} (> {tol:.0e} x {scale:.3g})"
        return v.status == "ok" or v.status.startswith("excluded")

    live: dict[str, tuple[Any, Variant]] = {"default": (default, dv)}
    row.variants.append(dv)
    for name, values in knobs.items():
        for value in values[1:]:
            r, v = build({name: value})
            row.variants.append(v)
            if r is not None and check(r, v):
                live[v.label] = (r, v)
    # the two settings that helped most in the probe, together (one more runner)
    gains = {}
    for _, v in live.values():
        if v.status == "ok" and len(v.settings) == 1 and v.probe_ms < dv.probe_ms:
            (k, val), = v.settings.items()
            if k not in gains or v.probe_ms < gains[k][1]:
                gains[k] = (val, v.probe_ms)
    if len(gains) >= 2:
        top = sorted(gains, key=lambda k: gains[k][1])[:2]
        r, v = build({k: gains[k][0] for k in top})
        row.variants.append(v)
        if r is not None and check(r, v):
            live[v.label] = (r, v)

    if len(live) >= 2:
        res = bench.compare_many({lab: (r.run, (x,)) for lab, (r, _) in live.items()}, rounds=rounds,
                                 calls_per_round=calls_per_round, warmup=warmup)
        first = next(iter(res.values()))
        dv.p50_ms = first.a.p50_ms
        for lab, ab in res.items():
            live[lab][1].p50_ms, live[lab][1].ratio = ab.b.p50_ms, ab.ratio
    else:
        dv.p50_ms = bench.measure(default.run, x, config=bench.BenchConfig(
            warmup=warmup, min_iters=rounds * calls_per_round, max_iters=rounds * calls_per_round, min_time_s=0,
            n_boot=1)).p50_ms
        res = {}
    dv.ratio = 1.0
    # "best" and its ratio come from the per-round ratios, the statistic whose CI is reported: a P50 pooled over the
    # rounds mixes a drifting machine's fast and slow rounds and can disagree with every round's ratio
    eligible = [v for _, v in live.values() if v.status == "ok"]
    best = min(eligible, key=lambda v: v.ratio)
    row.default_ms, row.best_ms, row.best = dv.p50_ms, best.p50_ms, dict(best.settings)
    row.ratio = best.ratio
    notes = []
    row.met = row.ratio >= threshold
    if best is not dv:
        lo, hi = res[best.label].speedup_ci
        row.speedup_ci = (float(lo), float(hi))
        if not row.met and lo <= 1:  # a point estimate below the bar whose 95 % CI still holds "no faster"
            row.met = True
            notes.append(f"{best.label} not clearly faster (95 % CI of the speed-up {lo:.2f}-{hi:.2f}x)")
    notes += [f"{v.label} {v.status}" for v in row.variants if v.status != "ok"]
    faster_out = [v for _, v in live.values() if v.status.startswith("excluded") and v.ratio < best.ratio]
    if faster_out:
        v = min(faster_out, key=lambda v: v.ratio)
        notes.insert(0, f"{v.label} is {best.ratio / v.ratio:.2f}x faster than the best but changes outputs "
                        f"({v.max_abs_diff:.1e})")
        notes = [n for n in notes if not n.startswith(v.label + " excluded")]
    kept = getattr(plugin(runtime), "KEPT_DEFAULTS", {}) or {}
    changed = [k for k, v in row.best.items() if v != knobs.get(k, (v,))[0]]
    if not row.met and changed and all(k in kept for k in changed):  # a slower default the plug-in keeps on purpose
        notes.insert(0, "default kept: " + "; ".join(kept[k] for k in changed))
    if not knobs:
        notes.append("no KNOBS declared by the plug-in")
    row.reason = "; ".join(notes)
    live.clear()
    del default
    gc.collect()
    return row


def audit_defaults(model: Any, targets: Any = None, *, threads: int | None = None,
                   input_shape: tuple[int, ...] | None = None, batch: int = 1, rounds: int = 5,
                   calls_per_round: int = 5, warmup: int = 2, knobs: dict[str, dict[str, tuple]] | None = None,
                   tol: float = 1e-4, threshold: float = 0.9, slow: float = 10.0, probe_calls: int = 3,
                   n_check: int = 2) -> DefaultsAudit:
    """Audit the kit's defaults on ``model`` (a torchvision name, or a torch module with ``input_shape``).

    ``targets``: "runtime" (every precision its :class:`.base.Spec` offers) or "runtime:precision"; None: every
    registered runtime. ``knobs`` replaces a plug-in's ``KNOBS`` for the runtimes it names (``{"torch-compile":
    {"freezing": (True, False)}}``: a shorter sweep); a name its ``build`` does not take is a ``ValueError``.
    Every runner of a row is timed in the same ``rounds`` x ``calls_per_round`` interleaved rounds, after ``warmup``
    untimed calls each. A variant is left out of "best" when its outputs differ from the default's by more than
    ``tol`` x max(1, max |default output|), when it fails to build, or when its probe is ``slow`` times the
    default's. Returns a :class:`DefaultsAudit`; its rows hold ms (P50), ``ratio`` = best / default time (the median of
    the per-round ratios, the statistic its CI is of) and
    ``met`` = ratio >= ``threshold``, or the best is not clearly faster (the 95 % CI of its speed-up over the default,
    from the per-round ratios, reaches 1: noise is no verdict; the reason says so). Introduced in notebook 11
    (``benchmarks/defaults.py`` for every runtime)."""
    if not isinstance(model, str) and input_shape is None:
        raise ValueError("input_shape is required when model is a torch.nn.Module, e.g. (3, 224, 224)")
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for name, v in (("threads", threads), ("batch", batch), ("calls_per_round", calls_per_round),
                    ("probe_calls", probe_calls), ("n_check", n_check)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r} must be an integer >= 1")
    if rounds < 2:
        raise ValueError(f"rounds={rounds} must be >= 2 to interleave")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold={threshold} must be in (0, 1]: the share of the best speed a default must reach")
    pairs = _targets(targets)
    for runtime, override in (knobs or {}).items():
        if runtime not in RUNTIMES:
            raise ValueError(f"knobs names runtime {runtime!r}; known: {sorted(RUNTIMES)}")
        _check_knobs(runtime, dict(override))
    rows = []
    start = time.perf_counter()
    for runtime, precision in pairs:
        ok, why = available(runtime)
        if not ok:
            rows.append(AuditRow(runtime, precision, f"skipped: {why}"))
            continue
        sweep = dict(knobs[runtime]) if knobs and runtime in knobs else knobs_of(runtime)
        rows.append(_audit_one(model, runtime, precision, sweep, threads=threads, input_shape=input_shape,
                               batch=batch, rounds=rounds, calls_per_round=calls_per_round, warmup=warmup, tol=tol,
                               threshold=threshold, slow=slow, probe_calls=probe_calls, n_check=n_check))
    manifest = {"model": model_label(model), "input_shape": list(input_shape) if input_shape else None,
                "batch": batch, "threads": threads, "rounds": rounds, "calls_per_round": calls_per_round,
                "warmup": warmup, "threshold": threshold, "tol": tol, "slow": slow, "probe_calls": probe_calls,
                "input": "numpy float32, standard normal, seeds 0..n_check-1; the same for every runner of a row",
                "order": "interleaved, rotated each round (mclab.bench.compare_many)",
                "knobs": {rt: {k: list(v) for k, v in (knobs[rt] if knobs and rt in knobs else knobs_of(rt)).items()}
                          for rt in dict.fromkeys(rt for rt, _ in pairs)},
                "wall_s": time.perf_counter() - start}
    return DefaultsAudit(model_label(model), rows, manifest)
