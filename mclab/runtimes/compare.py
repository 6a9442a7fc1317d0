"""The same model on every runtime, in one fair table: ``compare_runtimes(model, CompareConfig())``.

Every runner gets the same input, batch and thread count; the timing interleaves runtimes round by
round (rotating who goes first) so a drifting machine moves all of them alike; every output is
compared with the PyTorch FP32 reference (max absolute error, top-1 agreement). A runtime that is
missing, or cannot take a precision, stays in the table as "skipped: <reason>". Introduced in
notebook 09; ``mclab compare MODEL`` prints it.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .base import PRECISIONS, RUNTIMES, available, load, model_label

__all__ = ["CompareConfig", "RuntimeRow", "RuntimeComparison", "compare_runtimes", "parse_target"]

REFERENCE = ("torch", "fp32")


def parse_target(target: str) -> tuple[str, str]:
    """``"openvino:bf16"`` -> ("openvino", "bf16"); a bare runtime name means FP32."""
    runtime, _, precision = target.partition(":")
    precision = precision or "fp32"
    if runtime not in RUNTIMES:
        raise ValueError(f"target={target!r}: runtime {runtime!r} is unknown; available runtimes: {sorted(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"target={target!r}: precision {precision!r} is unknown; allowed: {list(PRECISIONS)}")
    return runtime, precision


@dataclass
class CompareConfig:
    """What to compare and how long to time it."""

    targets: tuple[str, ...] | None = None  # "runtime" or "runtime:precision"; None: every registered runtime, FP32
    batch: int = 1
    threads: int | None = None      # the same for every runtime; None: all usable cores
    input_shape: tuple[int, ...] | None = None  # (C, H, W) without batch; None: the model's own
    rounds: int = 10                # interleaved rounds; each runtime is timed once per round
    calls_per_round: int = 10       # timed calls per runtime per round
    warmup: int = 5                 # untimed calls per runtime before the first round
    n_check: int = 4                # random input batches for max-abs-error and top-1 agreement
    seed: int = 0

    def __post_init__(self) -> None:
        if self.targets is not None:
            self.targets = tuple(self.targets)
            if not self.targets:
                raise ValueError("targets=() is empty; pass runtimes like ('onnxruntime', 'openvino:bf16') or None")
            for t in self.targets:
                parse_target(t)
        if self.threads is None:
            self.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        for name in ("batch", "threads", "rounds", "calls_per_round", "n_check"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.rounds < 2:
            raise ValueError(f"rounds={self.rounds} must be >= 2 to interleave")
        if self.warmup < 0:
            raise ValueError(f"warmup={self.warmup} must be >= 0")

    def pairs(self) -> list[tuple[str, str]]:
        """(runtime, precision) pairs to run, the PyTorch FP32 reference first."""
        pairs = [parse_target(t) for t in self.targets] if self.targets else [(r, "fp32") for r in RUNTIMES]
        return [REFERENCE] + [p for p in dict.fromkeys(pairs) if p != REFERENCE]


@dataclass
class RuntimeRow:
    """One runtime at one precision. Times in ms; errors vs the PyTorch FP32 reference."""

    runtime: str
    requested: str
    status: str                       # "ok", "skipped: <reason>" or "failed: <reason>"
    precision: str | None = None      # what the runtime actually computed in
    threads: int | None = None
    batch: int | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    throughput_per_s: float | None = None  # derived: batch / mean latency
    speedup: float | None = None      # median over rounds of reference P50 / this P50 (>1: faster)
    speedup_range: tuple[float, float] | None = None  # min and max of the per-round ratios
    max_abs_err: float | None = None
    top1_agreement: float | None = None  # fraction of items whose argmax matches the reference
    size_bytes: int | None = None     # model file(s) the runtime read
    build_s: float | None = None      # seconds to build/convert/compile
    samples: int = 0
    flags: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        return f"{self.runtime}:{self.requested}"


@dataclass
class RuntimeComparison:
    """The table, the fairness manifest, and warnings about anything that was not equal."""

    model: str
    rows: list[RuntimeRow]
    manifest: dict[str, Any]
    warnings: list[str]

    def row(self, runtime: str, precision: str = "fp32") -> RuntimeRow:
        for r in self.rows:
            if r.runtime == runtime and r.requested == precision:
                return r
        raise KeyError(f"no row for {runtime}:{precision}; rows: {[r.label for r in self.rows]}")

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "rows": [asdict(r) for r in self.rows], "manifest": self.manifest,
                "warnings": self.warnings}

    def to_frame(self):
        import pandas as pd

        cols = ["runtime", "requested", "precision", "status", "threads", "batch", "p50_ms", "p99_ms",
                "throughput_per_s", "speedup", "max_abs_err", "top1_agreement", "size_bytes", "build_s"]
        return pd.DataFrame([{c: getattr(r, c) for c in cols} for r in self.rows])

    def __str__(self) -> str:
        head = (f"{'runtime':<15}{'asked':<8}{'actual':<8}{'thr':>4}{'P50 ms':>9}{'P99 ms':>9}{'items/s':>9}"
                f"{'speed-up':>10}{'max|err|':>10}{'top-1':>7}{'MB':>7}")
        lines = [f"{self.model}: batch {self.manifest['batch']}, threads {self.manifest['threads']}, "
                 f"{self.manifest['rounds']} interleaved rounds × {self.manifest['calls_per_round']} calls", head]

        def f(v: Any, spec: str, width: int) -> str:
            return f"{v:{width}{spec}}" if v is not None else f"{'-':>{width}}"

        for r in self.rows:
            if not r.ok:
                lines.append(f"{r.runtime:<15}{r.requested:<8}{r.status}")
                continue
            mb = r.size_bytes / 1e6 if r.size_bytes else None
            lines.append(f"{r.runtime:<15}{r.requested:<8}{r.precision:<8}{r.threads or '-':>4}{f(r.p50_ms, '.2f', 9)}"
                         f"{f(r.p99_ms, '.2f', 9)}{f(r.throughput_per_s, '.1f', 9)}{f(r.speedup, '.2f', 9)}x"
                         f"{f(r.max_abs_err, '.1e', 10)}{f(r.top1_agreement, '.2f', 7)}{f(mb, '.1f', 7)}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _build(model: Any, runtime: str, precision: str, cfg: CompareConfig) -> tuple[Any, RuntimeRow]:
    row = RuntimeRow(runtime, precision, "ok")
    ok, why = available(runtime)
    if not ok:
        row.status = f"skipped: {why}"
        return None, row
    if precision != "default" and precision not in RUNTIMES[runtime].precisions:
        row.status = (f"skipped: {runtime} does not take precision {precision} "
                      f"(it takes {list(RUNTIMES[runtime].precisions)})")
        return None, row
    t0 = time.perf_counter()
    try:
        runner = load(model, runtime, batch=cfg.batch, threads=cfg.threads, input_shape=cfg.input_shape,
                      precision=precision)
    except (ValueError, RuntimeError, ImportError) as e:  # kept in the table, never hidden
        row.status = f"failed: {str(e).strip().splitlines()[0][:160]}"
        return None, row
    row.build_s = time.perf_counter() - t0
    row.precision, row.threads, row.batch = runner.precision, runner.threads, cfg.batch
    row.size_bytes = runner.size_bytes
    return runner, row


def compare_runtimes(model: Any, config: CompareConfig | None = None) -> RuntimeComparison:
    """Run ``model`` (a torchvision name, or a ``torch.nn.Module`` with ``input_shape`` set) on each
    target runtime; returns a :class:`RuntimeComparison` (ms, items/s, bytes)."""
    import numpy as np

    from .. import bench

    cfg = config or CompareConfig()
    if not isinstance(model, str) and cfg.input_shape is None:
        raise ValueError("config.input_shape is required when model is a torch.nn.Module")
    built = [_build(model, rt, p, cfg) for rt, p in cfg.pairs()]
    ref = built[0][0]
    if ref is None:
        raise ValueError(f"the PyTorch FP32 reference could not be built: {built[0][1].status}")
    live = [(runner, row) for runner, row in built if runner is not None]

    # accuracy: every runner sees the same n_check inputs; the reference's outputs are the truth
    inputs = [ref.example_input(cfg.seed + k) for k in range(cfg.n_check)]
    refs = [ref.run(x) for x in inputs]
    for runner, row in live:
        outs = [runner.run(x) for x in inputs]
        row.max_abs_err = float(max(np.max(np.abs(o - r)) for o, r in zip(outs, refs, strict=True)))
        agree = [np.argmax(o.reshape(o.shape[0], -1), 1) == np.argmax(r.reshape(r.shape[0], -1), 1)
                 for o, r in zip(outs, refs, strict=True)]
        row.top1_agreement = float(np.mean(np.concatenate(agree)))

    # timing: rounds rotate the order so no runtime always runs first or last
    x = inputs[0]
    samples: dict[int, list[float]] = {i: [] for i in range(len(live))}
    p50s: dict[int, list[float]] = {i: [] for i in range(len(live))}
    for r in range(cfg.rounds):
        order = list(range(len(live)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            runner, _ = live[i]
            bc = bench.BenchConfig(warmup=cfg.warmup if r == 0 else 0, min_iters=cfg.calls_per_round, min_time_s=0,
                                   max_iters=cfg.calls_per_round, threads=cfg.threads, batch=cfg.batch, n_boot=1)
            res = bench.measure(runner.run, x, config=bc, label=live[i][1].label)
            samples[i] += res.samples_ms
            p50s[i].append(res.p50_ms)
    for i, (_, row) in enumerate(live):
        pct = bench.percentiles(samples[i], (50, 99))
        row.p50_ms, row.p99_ms, row.samples = pct[50], pct[99], len(samples[i])
        row.throughput_per_s = cfg.batch * 1e3 / float(np.mean(samples[i]))
        ratios = [a / b for a, b in zip(p50s[0], p50s[i], strict=True)]
        row.speedup, row.speedup_range = float(np.median(ratios)), (float(min(ratios)), float(max(ratios)))
        row.flags = bench.flags_for(samples[i])

    warnings = []
    for _, row in live:
        if row.requested not in ("default", row.precision):
            warnings.append(f"{row.label} asked for {row.requested} but computes in {row.precision}")
        if row.requested == "default" and row.precision != "fp32":
            warnings.append(f"{row.label}: the runtime's default precision here is {row.precision}, not fp32")
        if row.threads != cfg.threads:
            warnings.append(f"{row.label} runs {row.threads} threads, not the {cfg.threads} asked for")
        if row.precision == "fp32" and row.max_abs_err is not None and row.max_abs_err > 1e-4:
            warnings.append(f"{row.label} is FP32 but differs from PyTorch by {row.max_abs_err:.2g} (> 1e-4)")
    warnings += [f"{row.label} {row.status}" for runner, row in built if runner is None]
    manifest = {
        "model": model_label(model), "input_shape": list(ref.input_shape),
        "input": f"numpy float32, standard normal, seed {cfg.seed}",
        "same_input_for_all": True, "batch": cfg.batch, "threads": cfg.threads, "rounds": cfg.rounds,
        "calls_per_round": cfg.calls_per_round, "warmup": f"{cfg.warmup} untimed calls per runtime before round 1",
        "order": "rotated each round", "io_copies": "included: each timed call takes a numpy array and returns a "
        "numpy array (input/output conversion is part of the time)",
        "reference": "torch:fp32", "accuracy_inputs": cfg.n_check,
        "timer": "time.perf_counter_ns per call (mclab.bench.measure)",
    }
    return RuntimeComparison(model_label(model), [row for _, row in built], manifest, warnings)
