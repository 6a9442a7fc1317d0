"""Timing done right: latency samples, percentiles with confidence intervals, throughput,
batch sweeps, interleaved A/B comparisons, and the machine's peaks (matmul GFLOP/s, memory bandwidth).

Pure statistics at the bottom (:func:`percentiles`, :func:`flags_for`; intervals come from :mod:`mclab.stats`),
verbs on top: :func:`measure` times any callable and returns a :class:`LatencyResult`;
:func:`throughput`, :func:`batch_sweep` and :func:`compare` build on it; the dynamic-batching simulator that
replays a sweep's service times is :mod:`mclab.batching`. Times are in milliseconds unless a name says otherwise.
Introduced in notebooks 01 and 02.
"""
from __future__ import annotations

import contextlib
import math
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .hw import cpu_info
from .stats import bootstrap_ci

__all__ = [
    # configuration and results
    "BenchConfig", "LatencyResult", "ThroughputResult", "SweepResult", "ABResult", "BenchError",
    # statistics
    "percentiles", "flags_for", "MIN_SAMPLES",
    # threads
    "set_threads",
    # verbs
    "measure", "throughput", "batch_sweep", "compare", "compare_many", "between",
    # what every timer uses
    "inference_fn", "sync_fn",
    # the machine's peaks, measured (notebooks 00 and 03)
    "matmul_gflops", "memory_bandwidth",
]

PCTS = (50, 90, 95, 99)
# Fewest samples for a percentile to be reported as trustworthy: the counts MLPerf's
# LoadGen requires for P90 and P99 estimates.
MIN_SAMPLES = {90: 64, 99: 662}
NOISY_IQR_OVER_MEDIAN = 0.10


class BenchError(RuntimeError):
    """The timed callable raised; the message says which call and in which phase."""


@dataclass
class BenchConfig:
    """How long to measure. Stops when *both* ``min_iters`` calls and ``min_time_s`` seconds
    are reached (whichever comes later), or at ``max_iters`` / ``max_time_s`` as a safety net."""

    warmup: int = 10            # untimed calls after the first (cold) one: caches, allocators, JIT
    min_iters: int = 100
    min_time_s: float = 1.0
    max_iters: int = 1_000_000
    max_time_s: float = 120.0
    threads: int | None = None  # torch intra-op threads during the run; None leaves them as they are
    device: str = "cpu"         # "cuda" synchronises after every call so async work is counted
    batch: int = 1              # items per call, for derived throughput
    n_boot: int = 1000          # bootstrap resamples for percentile confidence intervals

    def __post_init__(self) -> None:
        for name in ("warmup",):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        for name in ("min_iters", "max_iters", "batch", "n_boot"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.min_time_s < 0 or self.max_time_s <= 0:
            raise ValueError(f"min_time_s={self.min_time_s} must be >= 0 and max_time_s={self.max_time_s} > 0")
        if self.max_iters < self.min_iters:
            raise ValueError(f"max_iters={self.max_iters} must be >= min_iters={self.min_iters}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads={self.threads} must be >= 1 or None")
        if self.device.split(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"device={self.device!r}; allowed: 'cpu', 'cuda', 'cuda:N'")


# ----------------------------------------------------------------------------- statistics


def percentiles(samples: Sequence[float], qs: Sequence[float] = PCTS) -> dict[int, float]:
    """Percentiles of ``samples`` (linear interpolation, as numpy's default)."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("samples is empty")
    return {int(q): float(v) for q, v in zip(qs, np.percentile(x, qs), strict=True)}


def flags_for(samples: Sequence[float]) -> list[str]:
    """Warnings a result must carry: too few samples for P90/P99, or a noisy run."""
    x = np.asarray(samples, dtype=float)
    flags = [f"p{q}_few_samples" for q, n in MIN_SAMPLES.items() if x.size < n]
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    if med > 0 and (q3 - q1) / med > NOISY_IQR_OVER_MEDIAN:
        flags.append("noisy")
    return flags


_FLAG_TEXT = {
    "p90_few_samples": f"P90 from fewer than {MIN_SAMPLES[90]} samples — not trustworthy",
    "p99_few_samples": f"P99 from fewer than {MIN_SAMPLES[99]} samples — not trustworthy",
    "noisy": f"noisy run: IQR/median above {NOISY_IQR_OVER_MEDIAN:.0%}",
}


# ----------------------------------------------------------------------------- results


@dataclass
class LatencyResult:
    """Per-call latency samples and their summary. Throughput here is *derived* (batch / mean)."""

    label: str
    samples_ms: list[float]
    cold_ms: float               # the first call, reported apart from the steady state
    warmup: int
    batch: int
    threads: int | None
    device: str
    machine: dict[str, Any]
    wall_s: float                # wall time of the timed loop
    ci_ms: dict[int, tuple[float, float]] = field(default_factory=dict)  # 95% bootstrap CI per percentile
    flags: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0–100) of the samples, ms (linear interpolation, as :func:`percentiles`)."""
        return percentiles(self.samples_ms, (q,))[int(q)]

    p50_ms = property(lambda self: self.percentile(50))
    p90_ms = property(lambda self: self.percentile(90))
    p95_ms = property(lambda self: self.percentile(95))
    p99_ms = property(lambda self: self.percentile(99))
    mean_ms = property(lambda self: float(np.mean(self.samples_ms)))
    std_ms = property(lambda self: float(np.std(self.samples_ms, ddof=1)) if self.n > 1 else 0.0)
    min_ms = property(lambda self: float(np.min(self.samples_ms)))
    max_ms = property(lambda self: float(np.max(self.samples_ms)))

    @property
    def derived_throughput_per_s(self) -> float:
        """Items per second *derived* from latency (batch / mean), not measured under load."""
        return self.batch * 1e3 / self.mean_ms

    def summary(self) -> dict[str, Any]:
        """The numbers without the raw samples (what ``mclab bench --json`` prints)."""
        return {
            "label": self.label, "samples": self.n, "warmup": self.warmup, "batch": self.batch,
            "threads": self.threads, "device": self.device, "cold_ms": self.cold_ms,
            "p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "p95_ms": self.p95_ms, "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms, "std_ms": self.std_ms, "min_ms": self.min_ms, "max_ms": self.max_ms,
            "ci95_ms": {f"p{q}": list(v) for q, v in self.ci_ms.items()},
            "throughput_per_s": self.derived_throughput_per_s, "throughput_kind": "derived (batch / mean latency)",
            "wall_s": self.wall_s, "flags": self.flags, "machine": self.machine,
        }

    def as_dict(self) -> dict[str, Any]:
        return {**self.summary(), "samples_ms": self.samples_ms}

    def __str__(self) -> str:
        def p(q: int) -> str:
            lo, hi = self.ci_ms.get(q, (math.nan, math.nan))
            return f"P{q} {self.percentile(q):.3f} ms [{lo:.3f}, {hi:.3f}]"

        lines = [
            f"{self.label or 'latency'}: n={self.n}, batch={self.batch}, threads={self.threads}, device={self.device}",
            f"  cold (first call) {self.cold_ms:.3f} ms; warm-up {self.warmup} calls",
            "  " + "  ".join(p(q) for q in PCTS) + "  (95% CI)",
            f"  mean {self.mean_ms:.3f} ± {self.std_ms:.3f} ms, min {self.min_ms:.3f}, max {self.max_ms:.3f}",
            f"  throughput {self.derived_throughput_per_s:.1f} items/s (derived: batch / mean latency)",
        ]
        lines += [f"  ! {_FLAG_TEXT[f]}" for f in self.flags]
        return "\n".join(lines)


@dataclass
class ThroughputResult:
    """Items per second *measured*: completed items / wall time, with ``concurrency`` workers."""

    label: str
    items_per_s: float
    calls: int
    batch: int
    concurrency: int
    wall_s: float
    kind: str = "measured (items / wall time)"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{self.label or 'throughput'}: {self.items_per_s:.1f} items/s measured "
                f"({self.calls} calls × batch {self.batch}, {self.concurrency} workers, {self.wall_s:.2f} s)")


@dataclass
class SweepResult:
    """Latency and derived throughput per batch size."""

    results: dict[int, LatencyResult]

    def table(self) -> list[dict[str, Any]]:
        return [{"batch": b, "p50_ms": r.p50_ms, "p90_ms": r.p90_ms, "p99_ms": r.p99_ms,
                 "per_item_ms": r.p50_ms / b, "throughput_per_s": r.derived_throughput_per_s,
                 "samples": r.n, "flags": ",".join(r.flags)} for b, r in sorted(self.results.items())]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.table())

    def best_under_budget(self, budget_ms: float, percentile: int = 90) -> int | None:
        """The largest batch whose ``percentile`` latency meets ``budget_ms`` (None if none does)."""
        if budget_ms <= 0:
            raise ValueError(f"budget_ms={budget_ms} must be > 0")
        ok = [b for b, r in self.results.items() if r.percentile(percentile) <= budget_ms]
        return max(ok) if ok else None

    def knee(self, fraction: float = 0.9) -> int:
        """The smallest batch reaching ``fraction`` of the best derived throughput."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction={fraction} must be in (0, 1]")
        best = max(r.derived_throughput_per_s for r in self.results.values())
        return min(b for b, r in self.results.items() if r.derived_throughput_per_s >= fraction * best)

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table()}


@dataclass
class ABResult:
    """Interleaved comparison: ``ratio`` = B's time / A's time per round (< 1: B is faster)."""

    label_a: str
    label_b: str
    ratios: list[float]          # one per round
    a: LatencyResult
    b: LatencyResult

    @property
    def ratio(self) -> float:
        return float(np.median(self.ratios))

    @property
    def ratio_ci(self) -> tuple[float, float]:
        return bootstrap_ci(self.ratios, 50)

    @property
    def speedup(self) -> float:
        """How many times faster B is than A (A time / B time)."""
        return 1.0 / self.ratio

    @property
    def speedup_ci(self) -> tuple[float, float]:
        """95 % CI of :attr:`speedup`: the time ratio's interval, inverted."""
        lo, hi = self.ratio_ci
        return 1.0 / hi, 1.0 / lo

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.label_a, "b": self.label_b, "ratio_b_over_a": self.ratio, "ratio_ci95": list(self.ratio_ci),
                "speedup_b_vs_a": self.speedup, "speedup_ci95": list(self.speedup_ci), "rounds": len(self.ratios),
                "ratios": self.ratios,
                "a_p50_ms": self.a.p50_ms, "b_p50_ms": self.b.p50_ms}

    def __str__(self) -> str:
        lo, hi = self.ratio_ci
        return (f"{self.label_b} / {self.label_a} time ratio: {self.ratio:.3f} (95% CI {lo:.3f}–{hi:.3f}, "
                f"{len(self.ratios)} interleaved rounds) -> {self.label_b} is {self.speedup:.2f}x "
                f"{'faster' if self.speedup >= 1 else 'the speed of'} {self.label_a}")


# ----------------------------------------------------------------------------- threads


@contextlib.contextmanager
def set_threads(n: int | None) -> Iterator[int | None]:
    """Set torch's intra-op threads for the block, then restore them. ONNX Runtime and OpenVINO
    take their thread count when a session is built: use :func:`mclab.runtimes.onnxrt.session_options`
    and :func:`mclab.runtimes.openvino.config` with the same ``n`` so comparisons are fair."""
    if n is None:
        yield None
        return
    if n < 1:
        raise ValueError(f"threads={n} must be >= 1")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- verbs


def _machine() -> dict[str, Any]:
    cpu = cpu_info()
    return {"cpu": cpu.model, "arch": cpu.arch, "cores": cpu.usable_cores,
            "features": sorted(k for k, v in cpu.features.items() if v), "python": platform.python_version()}


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _call(fn: Callable[..., Any], args: tuple, label: str, phase: str, i: int) -> None:
    try:
        fn(*args)
    except Exception as e:  # re-raised with context, never swallowed
        raise BenchError(f"{label} raised during {phase} call {i}: {type(e).__name__}: {e}") from e


def sync_fn(device: Any) -> Callable[[], None] | None:
    """What to call so that work queued on ``device`` has finished before a clock is read: a function that waits
    for every kernel on that CUDA device, or ``None`` for the CPU, where a call returns when its work is done.

    ``device`` is a string ("cpu", "cuda", "cuda:1") or a ``torch.device``. CUDA kernels launch asynchronously,
    so a timer read without this wait measures the launch, not the work (notebook 01 shows by how much).
    :func:`measure` calls it inside every timed call. Raises ``ValueError`` for a CUDA device when
    torch sees no GPU, and for any other device type.
    """
    kind = str(device).split(":")[0]
    if kind == "cpu":
        return None
    if kind != "cuda":
        raise ValueError(f"device={str(device)!r}; allowed: 'cpu', 'cuda', 'cuda:N'")
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} but torch sees no CUDA GPU; use device='cpu'")
    dev = torch.device(device)
    return lambda: torch.cuda.synchronize(dev)


def inference_fn(module: Any) -> Callable[[Any], Any]:
    """``module`` as a callable to time: ``run(x)`` returns ``module(x)`` computed under ``torch.inference_mode()``,
    so no autograd bookkeeping is counted. Introduced in notebook 01."""
    import torch

    def run(x: Any) -> Any:
        with torch.inference_mode():
            return module(x)

    return run


def measure(fn: Callable[..., Any], *args: Any, config: BenchConfig | None = None, label: str = "") -> LatencyResult:
    """Time ``fn(*args)`` call by call; returns a :class:`LatencyResult` (milliseconds).

    The first call is timed alone as the cold start; ``warmup`` more calls are untimed; then calls
    are timed one by one with ``time.perf_counter_ns`` until the stop rule holds. On CUDA each call
    is followed by ``torch.cuda.synchronize()`` inside the timed region (:func:`sync_fn`); on CPU nothing
    is added.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    cfg = config or BenchConfig()
    label = label or _name(fn)
    sync = sync_fn(cfg.device)
    clock = time.perf_counter_ns
    samples: list[int] = []
    with set_threads(cfg.threads):
        t0 = clock()
        _call(fn, args, label, "cold", 0)
        if sync:
            sync()
        cold_ns = clock() - t0
        for i in range(cfg.warmup):
            _call(fn, args, label, "warm-up", i + 1)
        if sync:
            sync()
        min_ns, max_ns = int(cfg.min_time_s * 1e9), int(cfg.max_time_s * 1e9)
        append = samples.append
        start = clock()
        try:
            while True:
                t0 = clock()
                fn(*args)
                if sync:
                    sync()
                t1 = clock()
                append(t1 - t0)
                n = len(samples)
                if (n >= cfg.min_iters and t1 - start >= min_ns) or n >= cfg.max_iters or t1 - start >= max_ns:
                    break
        except Exception as e:
            raise BenchError(f"{label} raised during timed call {len(samples) + 1}: {type(e).__name__}: {e}") from e
        wall_s = (clock() - start) / 1e9
    ms = (np.asarray(samples, dtype=float) / 1e6).tolist()
    return LatencyResult(
        label=label, samples_ms=ms, cold_ms=cold_ns / 1e6, warmup=cfg.warmup, batch=cfg.batch,
        threads=cfg.threads if cfg.threads is not None else _torch_threads(), device=cfg.device,
        machine=_machine(), wall_s=wall_s,
        ci_ms={q: bootstrap_ci(ms, q, n_boot=cfg.n_boot) for q in PCTS}, flags=flags_for(ms),
    )


def _torch_threads() -> int | None:
    import sys

    torch = sys.modules.get("torch")  # report torch's threads only if torch is in use
    return torch.get_num_threads() if torch is not None else None


def throughput(fn: Callable[..., Any], *args: Any, batch: int = 1, concurrency: int = 1, duration_s: float = 2.0,
               warmup: int = 3, label: str = "") -> ThroughputResult:
    """Measured throughput: ``concurrency`` threads call ``fn(*args)`` back to back for
    ``duration_s``; returns completed items per second of wall time."""
    if concurrency < 1 or batch < 1:
        raise ValueError(f"concurrency={concurrency} and batch={batch} must be >= 1")
    if duration_s <= 0 or warmup < 0:
        raise ValueError(f"duration_s={duration_s} must be > 0 and warmup={warmup} >= 0")
    label = label or _name(fn)
    for i in range(warmup):
        _call(fn, args, label, "warm-up", i)
    counts = [0] * concurrency
    errors: list[BaseException] = []
    go = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(k: int) -> None:
        go.wait()
        try:
            while time.perf_counter() < stop_at[0]:
                fn(*args)
                counts[k] += 1
        except Exception as e:  # reported to the caller below
            errors.append(e)

    threads_ = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(concurrency)]
    for t in threads_:
        t.start()
    start = time.perf_counter()
    stop_at[0] = start + duration_s
    go.wait()
    for t in threads_:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        e = errors[0]
        raise BenchError(f"{label} raised in a throughput worker: {type(e).__name__}: {e}") from e
    calls = sum(counts)
    return ThroughputResult(label, calls * batch / wall, calls, batch, concurrency, wall)


def batch_sweep(fn: Callable[..., Any], make_args: Callable[[int], tuple], batches: Sequence[int],
                config: BenchConfig | None = None, label: str = "") -> SweepResult:
    """Measure ``fn(*make_args(b))`` for each batch size ``b``; returns a :class:`SweepResult`."""
    if not batches or any(int(b) < 1 for b in batches):
        raise ValueError(f"batches={list(batches)} must be a non-empty list of sizes >= 1")
    cfg = config or BenchConfig()
    out = {}
    for b in batches:
        c = BenchConfig(**{**asdict(cfg), "batch": int(b)})
        out[int(b)] = measure(fn, *make_args(int(b)), config=c, label=f"{label or _name(fn)} batch {b}")
    return SweepResult(out)


def compare(fn_a: Callable[..., Any], fn_b: Callable[..., Any], args_a: tuple = (), args_b: tuple | None = None, *,
            rounds: int = 20, calls_per_round: int = 10, warmup: int = 5, device: str = "cpu",
            label_a: str = "A", label_b: str = "B") -> ABResult:
    """Interleaved A/B: each round times ``calls_per_round`` calls of A and of B, alternating which goes
    first (AB, BA, …), and keeps the ratio of their medians; a drifting machine moves both alike."""
    args_b = args_a if args_b is None else args_b
    if label_a == label_b:  # two runs of one model: keep the sides apart
        label_a, label_b = f"{label_a} (A)", f"{label_b} (B)"
    return compare_many({label_a: (fn_a, args_a), label_b: (fn_b, args_b)}, rounds=rounds,
                        calls_per_round=calls_per_round, warmup=warmup, device=device)[label_b]


def compare_many(fns: dict[str, Any], args: tuple = (), *, rounds: int = 20, calls_per_round: int = 10,
                 warmup: int = 5, device: str = "cpu") -> dict[str, ABResult]:
    """Interleaved comparison of several functions against the first: ``fns`` maps a label to a function (called
    with ``args``) or to ``(function, its own args)``. Each round times ``calls_per_round`` calls of every
    function, the order rotating round by round, and keeps per round the ratio of each median to the first's.
    Returns one :class:`ABResult` per label after the first (A = the first), all from the same rounds; with two
    functions this is :func:`compare`."""
    if len(fns) < 2:
        raise ValueError(f"fns has {len(fns)} entries; compare at least two")
    if rounds < 2 or calls_per_round < 1 or warmup < 0:
        raise ValueError(f"rounds={rounds} must be >= 2, calls_per_round={calls_per_round} >= 1, warmup={warmup} >= 0")
    sides = [(lab, *(f if isinstance(f, tuple) else (f, args))) for lab, f in fns.items()]
    cfg = BenchConfig(warmup=warmup, min_iters=calls_per_round, min_time_s=0, max_iters=calls_per_round,
                      device=device, n_boot=200)
    runs: dict[str, list[LatencyResult]] = {lab: [] for lab, _, _ in sides}
    n = len(sides)
    for r in range(rounds):
        order = sides[r % n:] + sides[:r % n]
        if n == 2 and r % 2:  # two sides: AB, BA, AB, … (rotation and reversal agree)
            order = sides[::-1]
        for lab, fn, a in order:
            runs[lab].append(measure(fn, *a, config=cfg, label=lab))
        cfg.warmup = 0

    def pooled(rs: list[LatencyResult], lab: str) -> LatencyResult:
        ms = [s for r in rs for s in r.samples_ms]
        first = rs[0]
        return LatencyResult(lab, ms, first.cold_ms, warmup, 1, first.threads, device, first.machine,
                             sum(r.wall_s for r in rs), {q: bootstrap_ci(ms, q, n_boot=200) for q in PCTS},
                             flags_for(ms))

    base = sides[0][0]
    a = pooled(runs[base], base)
    return {lab: ABResult(base, lab, [b.p50_ms / x.p50_ms for x, b in zip(runs[base], runs[lab], strict=True)],
                          a, pooled(runs[lab], lab))
            for lab, _, _ in sides[1:]}


def between(a: ABResult, b: ABResult) -> ABResult:
    """B against A when both were timed against one baseline in the same :func:`compare_many` rounds: per round,
    B's time / A's time (= B's ratio / A's ratio to the baseline), so the comparison stays paired and interleaved.
    Returns an :class:`ABResult` with A as ``a`` (its ``speedup`` and ``speedup_ci``: how many times faster B is
    than A). Notebook 12 compares torch.compile with and without freezing this way."""
    if not isinstance(a, ABResult) or not isinstance(b, ABResult):
        raise TypeError(f"a and b must be ABResults from one compare_many; got {type(a).__name__}, {type(b).__name__}")
    if a.label_a != b.label_a or len(a.ratios) != len(b.ratios):
        raise ValueError(f"a ({a.label_a!r}, {len(a.ratios)} rounds) and b ({b.label_a!r}, {len(b.ratios)} rounds) "
                         "must share a baseline and its rounds: pass two results of one compare_many")
    return ABResult(a.label_b, b.label_b, [rb / ra for ra, rb in zip(a.ratios, b.ratios, strict=True)], a.b, b.b)


# ----------------------------------------------------------------------------- the machine's peaks, measured


def _calls_per_second(op: Callable[[], Any], device: Any, min_time_s: float, *, warmup: int,
                      sync_every: int | None = None) -> float:
    """Calls of ``op`` per second, repeated for at least ``min_time_s`` after ``warmup`` untimed calls. On a CUDA
    device the queue is drained (:func:`mclab.bench.sync_fn`) before each clock read, and every ``sync_every``
    calls so that the queue of launched kernels stays short."""
    sync = sync_fn(device)
    for _ in range(warmup):
        op()
    if sync:
        sync()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_time_s:
        op()
        reps += 1
        if sync and sync_every and reps % sync_every == 0:
            sync()
    if sync:
        sync()
    return reps / (time.perf_counter() - start)


def matmul_gflops(dtype: str = "float32", n: int = 1024, min_time_s: float = 0.3,
                  device: str = "cpu") -> float:
    """Measured dense matrix-multiply speed, GFLOP/s (2·n³ FLOPs per n×n product).

    Repeats ``torch.mm`` for at least ``min_time_s`` after a warm-up; on a GPU it synchronises
    before reading the clock. Introduced in notebook 00; the roofline in notebook 03 uses it.
    """
    import torch

    dt = getattr(torch, dtype, None)
    if not isinstance(dt, torch.dtype) or not dt.is_floating_point:
        raise ValueError(f"dtype={dtype!r} is not a torch floating-point dtype; e.g. 'float32', 'bfloat16', 'float16'")
    if n < 16:
        raise ValueError(f"n={n} is too small to measure; use n >= 16")
    if min_time_s <= 0:
        raise ValueError(f"min_time_s={min_time_s} must be > 0")
    dev = torch.device(device)
    a = torch.randn(n, n, device=dev).to(dt)
    b = torch.randn(n, n, device=dev).to(dt)
    return 2 * n**3 * _calls_per_second(lambda: torch.mm(a, b), device, min_time_s, warmup=3, sync_every=8) / 1e9


def memory_bandwidth(mb: int = 256, min_time_s: float = 0.3, device: str = "cpu") -> float:
    """Measured memory bandwidth, GB/s: repeated copies of an ``mb``-megabyte buffer (read + write).

    The buffer should be far larger than the last-level cache so the copy streams from DRAM.
    Introduced in notebook 03 for the roofline.
    """
    import torch

    if mb < 1:
        raise ValueError(f"mb={mb} must be >= 1 (megabytes to copy)")
    if min_time_s <= 0:
        raise ValueError(f"min_time_s={min_time_s} must be > 0")
    n = mb * 10**6 // 4
    src = torch.ones(n, device=torch.device(device))
    dst = torch.empty_like(src)
    return 2 * 4 * n * _calls_per_second(lambda: dst.copy_(src), device, min_time_s, warmup=1) / 1e9  # read + write
