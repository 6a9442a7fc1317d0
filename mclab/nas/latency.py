"""Latency without running every network: each block choice of the search space measured alone on this CPU with
one runtime (:func:`build_lut`, via :func:`mclab.runtimes.load` and :func:`mclab.bench.measure`) into a
:class:`LatencyLUT`, whose sum predicts a sub-network's latency; :func:`check_predictor` measures sampled
sub-networks whole to give the rank correlation (:func:`mclab.stats.spearman`). Introduced in notebook 19.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..stats import spearman
from .supernet import Arch, MBBlock, Supernet, SupernetConfig, extract, largest, sample_arch, smallest

__all__ = ["LATENCY_PERCENTILE", "LatencyLUT", "build_lut", "measure_arch", "module_latency_ms", "PredictorCheck",
           "check_predictor"]


# ----------------------------------------------------------------------------- latency: lookup table


LATENCY_PERCENTILE = 10   # of each block's or network's call times: robust to other processes' interference


def _runner(module: nn.Module, shape: tuple[int, ...], runtime: str, threads: int) -> Any:
    from .. import runtimes

    return runtimes.load(module, runtime, input_shape=shape, threads=threads)


def _latencies_ms(runners: list[Any], threads: int, min_time_s: float, rounds: int = 2) -> list[float]:
    """Latency (ms, batch 1) of each runner: the :data:`LATENCY_PERCENTILE` th percentile of at least 30 calls,
    measured in ``rounds`` passes over all runners, and the lowest of the passes kept. On a shared machine the
    low percentile and the best pass estimate what the code costs rather than what the neighbours cost."""
    from .. import bench

    cfg = bench.BenchConfig(warmup=5, min_iters=30, min_time_s=min_time_s, max_time_s=5.0, n_boot=20)
    best = [math.inf] * len(runners)
    with bench.set_threads(threads):
        xs = [r.example_input() for r in runners]
        for _ in range(rounds):
            for i, (r, x) in enumerate(zip(runners, xs, strict=True)):
                best[i] = min(best[i], bench.measure(r.raw_run, x, config=cfg).percentile(LATENCY_PERCENTILE))
    return best


@dataclass
class LatencyLUT:
    """Per-block latencies (ms, batch 1, :data:`LATENCY_PERCENTILE` th percentile) measured on one runtime and
    thread count. A block's latency
    depends on its stage, whether it is the stage's first block (stride, channels) and its kernel and expansion.
    ``overhead_ms`` is the latency of an empty model on the runtime (the call itself): every block's entry
    includes it once, a whole network pays it once, so :meth:`predict` takes it off per part."""

    runtime: str
    threads: int
    entries: dict[str, float]              # "s{stage}/{first|rest}/k{k}e{e}" -> ms
    stem_ms: float
    head_ms: float
    overhead_ms: float
    seconds: float                          # time spent measuring

    @staticmethod
    def key(stage: int, block: int, k: int, e: int) -> str:
        return f"s{stage}/{'first' if block == 0 else 'rest'}/k{k}e{e}"

    def predict(self, arch: Arch) -> float:
        """Predicted latency of ``arch`` (ms): stem + blocks + head, with the call overhead counted once."""
        parts = [self.stem_ms, self.head_ms]
        for s, blocks in enumerate(arch.stages):
            for b, (k, e) in enumerate(blocks):
                key = self.key(s, b, k, e)
                if key not in self.entries:
                    raise ValueError(f"block {key} is not in this lookup table ({len(self.entries)} entries)")
                parts.append(self.entries[key])
        return sum(parts) - (len(parts) - 1) * self.overhead_ms

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Empty(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0                                   # one trivial op: ONNX export needs a node


def build_lut(space: SupernetConfig | None = None, runtime: str = "torch", *, threads: int = 1,
              min_time_s: float = 0.05) -> LatencyLUT:
    """Measure every block choice of ``space`` alone on ``runtime`` (any name of :data:`mclab.runtimes.RUNTIMES`
    that is available here) with ``threads`` threads, plus the stem, the head and an empty model. Latency does
    not depend on weight values, so random weights serve. Returns a :class:`LatencyLUT` (ms)."""
    from .. import runtimes

    space = space or SupernetConfig()
    if runtime not in runtimes.RUNTIMES:
        raise ValueError(f"runtime={runtime!r} is unknown; allowed: {sorted(runtimes.RUNTIMES)}")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads={threads!r} must be an int >= 1")
    t0 = time.perf_counter()
    torch.manual_seed(0)
    keys, runners = [], []
    with torch.no_grad():
        for s in range(space.n_stages):
            for b in range(min(2, max(space.depths))):
                cin, cout, stride, px = space.stage_io(s, b)
                for k in space.kernels:
                    for e in space.expands:
                        keys.append(LatencyLUT.key(s, b, k, e))
                        runners.append(_runner(MBBlock(cin, cout, k, e, stride).eval(), (cin, px, px), runtime,
                                               threads))
        net = Supernet(space)
        last_px = space.stage_io(space.n_stages - 1, 1)[3]
        runners += [_runner(net.stem.eval(), (1, space.size, space.size), runtime, threads),
                    _runner(net.head.eval(), (space.widths[-1], last_px, last_px), runtime, threads),
                    _runner(_Empty(), (1, space.size, space.size), runtime, threads)]
    ms = _latencies_ms(runners, threads, min_time_s)
    stem, head, over = ms[-3:]
    return LatencyLUT(runtime, threads, dict(zip(keys, ms[:-3], strict=True)), stem, head, over,
                      time.perf_counter() - t0)


def module_latency_ms(module: nn.Module, input_shape: tuple[int, ...], runtime: str = "torch", *, threads: int = 1,
                      min_time_s: float = 0.1) -> float:
    """Latency (ms, batch 1) of any module measured the way the lookup table measures blocks, so that
    hand-designed networks sit on the same axis as searched ones. ``input_shape`` is (C, H, W)."""
    return _latencies_ms([_runner(module.eval(), tuple(input_shape), runtime, threads)], threads, min_time_s)[0]


def measure_arch(supernet: Supernet, archs: Arch | Sequence[Arch], runtime: str = "torch", *, threads: int = 1,
                 min_time_s: float = 0.1) -> float | list[float]:
    """Measured latency (ms, batch 1, :data:`LATENCY_PERCENTILE` th percentile, best of two interleaved passes) of
    one sub-network, or of each of a list, as whole networks on ``runtime``."""
    one = isinstance(archs, Arch)
    lst = [archs] if one else list(archs)
    size = supernet.config.size
    runners = [_runner(extract(supernet, a), (1, size, size), runtime, threads) for a in lst]
    ms = _latencies_ms(runners, threads, min_time_s)
    return ms[0] if one else ms


@dataclass
class PredictorCheck:
    """Predicted vs measured latency (ms) of sampled sub-networks on one runtime, and their rank correlation."""

    runtime: str
    archs: list[Arch]
    predicted_ms: list[float]
    measured_ms: list[float]

    @property
    def spearman(self) -> float:
        return spearman(self.predicted_ms, self.measured_ms)

    @property
    def mean_abs_rel_error(self) -> float:
        """Mean |predicted - measured| / measured (fraction)."""
        p, m = np.array(self.predicted_ms), np.array(self.measured_ms)
        return float(np.mean(np.abs(p - m) / m))

    def as_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "archs": [str(a) for a in self.archs], "predicted_ms": self.predicted_ms,
                "measured_ms": self.measured_ms, "spearman": self.spearman,
                "mean_abs_rel_error": self.mean_abs_rel_error}


def check_predictor(supernet: Supernet, lut: LatencyLUT, n: int = 20, *, seed: int = 0,
                    min_time_s: float = 0.1) -> PredictorCheck:
    """Pick ``n`` sub-networks spread over the space's latency range (the smallest, the largest, and random ones
    at evenly spaced quantiles of the predicted latency of 500 random draws, as a search visits them all), measure
    each as a whole on the LUT's runtime and compare with the prediction. Returns a :class:`PredictorCheck`."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 3:
        raise ValueError(f"n={n!r} must be an int >= 3 (a rank correlation needs three points)")
    rng = random.Random(seed)
    pool = sorted({sample_arch(supernet.config, rng) for _ in range(500)}, key=lut.predict)
    picks = [pool[round(q)] for q in np.linspace(0, len(pool) - 1, n - 2)]
    archs = [smallest(supernet.config), *picks, largest(supernet.config)]
    measured = measure_arch(supernet, archs, lut.runtime, threads=lut.threads, min_time_s=min_time_s)
    return PredictorCheck(lut.runtime, archs, [lut.predict(a) for a in archs], measured)
