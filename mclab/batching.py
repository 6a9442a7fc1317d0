"""Dynamic batching, simulated: Poisson arrivals into a batcher with one worker whose service time per batch was
measured (:func:`mclab.bench.batch_sweep`). :func:`simulate_batcher` returns a :class:`BatcherResult` (latency
percentiles per request, mean batch, throughput, utilisation). Introduced in notebook 02.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["BatcherResult", "simulate_batcher"]


@dataclass
class BatcherResult:
    """A simulated server: Poisson arrivals into a dynamic batcher with one worker."""

    arrival_rate_per_s: float
    max_batch: int
    max_wait_ms: float
    latencies_ms: list[float]    # per request: queueing + batching wait + service
    batch_sizes: list[int]
    throughput_per_s: float      # completed requests / simulated time
    utilisation: float           # busy time / simulated time

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))

    @property
    def mean_batch(self) -> float:
        return float(np.mean(self.batch_sizes))

    def as_dict(self) -> dict[str, Any]:
        return {"arrival_rate_per_s": self.arrival_rate_per_s, "max_batch": self.max_batch,
                "max_wait_ms": self.max_wait_ms, "p50_ms": self.percentile(50), "p99_ms": self.percentile(99),
                "mean_batch": self.mean_batch, "throughput_per_s": self.throughput_per_s,
                "utilisation": self.utilisation}


def simulate_batcher(service_ms: Callable[[int], float], *, arrival_rate_per_s: float, max_batch: int,
                     max_wait_ms: float, n_requests: int = 5000, seed: int = 0) -> BatcherResult:
    """Discrete-event simulation of a dynamic batcher (server scenario).

    Requests arrive as a Poisson process. When the worker is free it starts a batch as soon as
    ``max_batch`` requests wait, or when the oldest waiting request has waited ``max_wait_ms``,
    whichever comes first. ``service_ms(b)`` is the time to serve a batch of ``b`` — pass measured
    values (e.g. from :func:`batch_sweep`) so the simulation rests on this machine's numbers.
    """
    if arrival_rate_per_s <= 0 or max_batch < 1 or max_wait_ms < 0 or n_requests < 1:
        raise ValueError(f"need arrival_rate_per_s > 0 (got {arrival_rate_per_s}), max_batch >= 1 (got {max_batch}), "
                         f"max_wait_ms >= 0 (got {max_wait_ms}), n_requests >= 1 (got {n_requests})")
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1e3 / arrival_rate_per_s, n_requests))  # ms
    latencies = np.empty(n_requests)
    sizes: list[int] = []
    free_at, busy, i = 0.0, 0.0, 0
    while i < n_requests:
        # earliest start: worker free and the oldest request present
        t = max(free_at, arrivals[i])
        full_at = arrivals[min(i + max_batch - 1, n_requests - 1)]  # when max_batch would be waiting
        start = max(t, min(full_at, arrivals[i] + max_wait_ms))
        j = int(np.searchsorted(arrivals, start, side="right"))  # requests arrived by start
        j = min(j, i + max_batch)
        b = j - i
        service = float(service_ms(b))
        if not service > 0:
            raise ValueError(f"service_ms({b}) returned {service}; must be > 0 ms")
        done = start + service
        latencies[i:j] = done - arrivals[i:j]
        sizes.append(b)
        busy += service
        free_at, i = done, j
    span = free_at - arrivals[0]
    return BatcherResult(arrival_rate_per_s, max_batch, max_wait_ms, latencies.tolist(), sizes,
                         n_requests / (span / 1e3), busy / span)
