"""mclab.batching: the dynamic-batching simulator against its limits."""
from __future__ import annotations

import pytest

from mclab import batching


def test_simulate_batcher_limits():
    # no waiting, no batching: an M/D/1 queue at low load has latency close to the service time
    r = batching.simulate_batcher(lambda b: 1.0 * b, arrival_rate_per_s=50, max_batch=1, max_wait_ms=0, n_requests=4000)
    assert r.mean_batch == 1 and 1.0 <= r.percentile(50) < 1.2 and r.utilisation == pytest.approx(0.05, rel=0.1)
    # batching with a wait window: bigger batches, latency includes the wait
    r2 = batching.simulate_batcher(lambda b: 2.0 + 0.5 * b, arrival_rate_per_s=1000, max_batch=16, max_wait_ms=5)
    assert r2.mean_batch > 4 and r2.throughput_per_s == pytest.approx(1000, rel=0.05)
    with pytest.raises(ValueError, match="arrival_rate_per_s"):
        batching.simulate_batcher(lambda b: 1.0, arrival_rate_per_s=0, max_batch=1, max_wait_ms=0)
