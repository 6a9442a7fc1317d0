"""What the mclab.nas tests share: the default search space, a synthetic latency table and a synthetic accuracy."""
from __future__ import annotations

import pytest

from mclab import nas

CFG = nas.SupernetConfig()


@pytest.fixture
def space() -> nas.SupernetConfig:
    return CFG


@pytest.fixture
def make_lut():
    """``make_lut(overhead=0.01)`` -> a LatencyLUT with made-up entries: later stages, larger kernels and expansions,
    and first blocks cost more."""
    def make(overhead: float = 0.01) -> nas.LatencyLUT:
        entries = {nas.LatencyLUT.key(s, b, k, e): 0.1 * (s + 1) + 0.01 * k * e + (0.05 if b == 0 else 0)
                   for s in range(CFG.n_stages) for b in (0, 1) for k in CFG.kernels for e in CFG.expands}
        return nas.LatencyLUT("torch", 1, entries, 0.2, 0.3, overhead, 0.0)

    return make


class Scored(nas.Evaluator):
    """A synthetic accuracy: more, wider, larger-kernel blocks score higher (no data needed)."""

    def __init__(self) -> None:
        super().__init__(nas.Supernet(CFG), None, None)

    def __call__(self, arch):
        if arch not in self.cache:
            self.cache[arch] = sum(k * e for s in arch.stages for k, e in s) / 200
        return self.cache[arch]


@pytest.fixture
def scored():
    """``scored()`` -> a fresh synthetic evaluator (its own cache)."""
    return Scored


@pytest.fixture
def budget(make_lut):
    """Halfway between the smallest and the largest sub-network's predicted latency (ms)."""
    t = make_lut()
    return t.predict(nas.smallest(CFG)) + 0.5 * (t.predict(nas.largest(CFG)) - t.predict(nas.smallest(CFG)))
