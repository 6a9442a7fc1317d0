"""Search under a latency budget at a fixed number of evaluations: :func:`search` (evolution — mutation and
crossover of the best — or random sampling) spends exactly the evaluations an :class:`Evaluator` counts and returns a
:class:`SearchResult` whose ``history`` holds one :class:`Evaluation` per sub-network; :func:`compare_methods` runs
both methods over several seeds at equal evaluations (a :class:`SearchComparison` with the spread). Search on a set
large and hard enough to separate the sub-networks (``mclab.data.digits("val_aug")``): on the 359 clean validation
digits nearly all score alike, and the best of many draws is mostly the luckiest. Introduced in notebook 19.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
from torch import nn

from .latency import LatencyLUT
from .supernet import Arch, Supernet, SupernetConfig, extract, recalibrate, sample_arch, smallest

__all__ = ["SEARCH_METHODS", "Evaluator", "SearchConfig", "Evaluation", "SearchResult", "search", "SearchComparison",
           "compare_methods"]


# ----------------------------------------------------------------------------- search


class Evaluator:
    """Accuracy of sub-networks with shared weights: extract, recalibrate BatchNorm on ``calib`` images, evaluate
    on ``data``. Remembers every result, so ``evaluations`` counts distinct sub-networks evaluated."""

    def __init__(self, supernet: Supernet, data: Any, calib: Any, *, max_images: int = 512) -> None:
        self.supernet, self.data, self.calib, self.max_images = supernet, data, calib, max_images
        self.cache: dict[Arch, float] = {}

    @property
    def evaluations(self) -> int:
        return len(self.cache)

    def model(self, arch: Arch) -> nn.Module:
        """``arch`` extracted and recalibrated (eval mode)."""
        return recalibrate(extract(self.supernet, arch), self.calib, max_images=self.max_images)

    def __call__(self, arch: Arch) -> float:
        """Top-1 accuracy (fraction) of ``arch`` on the evaluator's data."""
        from ..models import evaluate

        if arch not in self.cache:
            self.cache[arch] = evaluate(self.model(arch), self.data).accuracy
        return self.cache[arch]


SEARCH_METHODS = ("evolution", "random")


@dataclass(frozen=True)
class SearchConfig:
    """How to search: ``"evolution"`` (mutation + crossover of the best) or ``"random"``, with the same number of
    distinct evaluations, under ``budget_ms`` of predicted latency."""

    method: str = "evolution"
    evaluations: int = 40
    population: int = 6                    # evolution: first generation size and children per generation
    parents: int = 3                       # evolution: the best that breed
    mutate: float = 0.1                    # evolution: chance that each choice is redrawn (small steps)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in SEARCH_METHODS:
            raise ValueError(f"method={self.method!r}; allowed: {', '.join(map(repr, SEARCH_METHODS))}")
        for name, lo in (("evaluations", 1), ("population", 2), ("parents", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name}={v!r} must be an int >= {lo}")
        if not 0 <= self.mutate <= 1:
            raise ValueError(f"mutate={self.mutate!r} must be a probability in [0, 1]")


@dataclass(frozen=True)
class Evaluation:
    """One sub-network a search evaluated: its accuracy (fraction, on the evaluator's data) and predicted latency."""

    arch: Arch
    accuracy: float
    latency_ms: float                      # predicted by the lookup table

    def as_dict(self) -> dict[str, Any]:
        return {"arch": str(self.arch), "accuracy": self.accuracy, "latency_ms": self.latency_ms}


@dataclass
class SearchResult:
    """The best sub-network found, its accuracy (fraction, on the evaluator's data) and predicted latency (ms),
    and the history of every evaluation in order."""

    config: SearchConfig
    budget_ms: float
    best: Arch
    accuracy: float
    latency_ms: float
    history: list[Evaluation] = field(repr=False)

    def best_so_far(self) -> list[float]:
        """Best accuracy after each evaluation."""
        return np.maximum.accumulate([h.accuracy for h in self.history]).tolist()

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.config.method, "seed": self.config.seed, "evaluations": len(self.history),
                "budget_ms": self.budget_ms, "best": self.best.as_dict(), "best_str": str(self.best),
                "accuracy": self.accuracy, "latency_ms": self.latency_ms}


def _feasible(draw: Callable[[], Arch], ok: Callable[[Arch], bool], seen: set, tries: int = 2000) -> Arch | None:
    for _ in range(tries):
        a = draw()
        if a not in seen and ok(a):
            return a
    return None


def _mutate(a: Arch, space: SupernetConfig, p: float, rng: random.Random) -> Arch:
    stages = []
    for s in a.stages:
        d = rng.choice(space.depths) if rng.random() < p else len(s)
        blocks = list(s[:d]) + [(rng.choice(space.kernels), rng.choice(space.expands)) for _ in range(d - len(s))]
        stages.append(tuple((rng.choice(space.kernels) if rng.random() < p else k,
                             rng.choice(space.expands) if rng.random() < p else e) for k, e in blocks))
    return Arch(tuple(stages))


def _crossover(a: Arch, b: Arch, rng: random.Random) -> Arch:
    return Arch(tuple(rng.choice((x, y)) for x, y in zip(a.stages, b.stages, strict=True)))


def search(evaluator: Evaluator, lut: LatencyLUT, budget_ms: float, config: SearchConfig | None = None) -> SearchResult:
    """Find the most accurate sub-network whose predicted latency (``lut``) is within ``budget_ms``, spending
    exactly ``config.evaluations`` distinct evaluations (fewer only if the space runs out). Evolution keeps the
    ``parents`` best, and breeds ``population`` children per generation by crossover (half) or mutation; random
    search draws feasible sub-networks uniformly. Returns a :class:`SearchResult`."""
    cfg = config or SearchConfig()
    if not isinstance(evaluator, Evaluator):
        raise TypeError(f"evaluator must be an Evaluator, got {type(evaluator).__name__}")
    if not isinstance(budget_ms, (int, float)) or not budget_ms > 0:
        raise ValueError(f"budget_ms={budget_ms!r} must be a positive latency in ms")
    space = evaluator.supernet.config
    if lut.predict(smallest(space)) > budget_ms:
        raise ValueError(f"budget_ms={budget_ms:.3f} is below the smallest sub-network's predicted "
                         f"{lut.predict(smallest(space)):.3f} ms on {lut.runtime}")
    rng = random.Random(cfg.seed)
    ok = (lambda a: lut.predict(a) <= budget_ms)  # noqa: E731
    history: list[Evaluation] = []
    seen: set[Arch] = set()

    def run(a: Arch) -> None:
        seen.add(a)
        history.append(Evaluation(a, evaluator(a), lut.predict(a)))

    first = cfg.evaluations if cfg.method == "random" else min(cfg.population, cfg.evaluations)
    for _ in range(first):
        a = _feasible(lambda: sample_arch(space, rng), ok, seen)
        if a is None:
            break
        run(a)
    while cfg.method == "evolution" and len(history) < cfg.evaluations:
        top = [h.arch for h in sorted(history, key=lambda h: -h.accuracy)[:cfg.parents]]
        made = 0
        for _ in range(min(cfg.population, cfg.evaluations - len(history))):
            def child(top: list[Arch] = top) -> Arch:
                if len(top) > 1 and rng.random() < 0.5:
                    return _mutate(_crossover(*rng.sample(top, 2), rng), space, cfg.mutate / 2, rng)
                return _mutate(rng.choice(top), space, cfg.mutate, rng)
            a = _feasible(child, ok, seen)
            if a is not None:
                run(a)
                made += 1
        if not made:
            break
    best = max(history, key=lambda h: (h.accuracy, -h.latency_ms))   # ties: the faster one
    return SearchResult(cfg, float(budget_ms), best.arch, best.accuracy, best.latency_ms, history)


@dataclass
class SearchComparison:
    """Several search methods run under one budget at equal evaluations, once per seed: ``runs[method][i]`` is
    the :class:`SearchResult` of ``seeds[i]``. Accuracies are fractions on the evaluator's data."""

    budget_ms: float
    evaluations: int
    seeds: list[int]
    runs: dict[str, list[SearchResult]] = field(repr=False)

    def best(self, method: str) -> np.ndarray:
        """The best accuracy each seed's search of ``method`` found, in seed order."""
        if method not in self.runs:
            raise ValueError(f"method={method!r} was not run; run: {sorted(self.runs)}")
        return np.array([r.accuracy for r in self.runs[method]])

    def mean(self, method: str) -> float:
        return float(self.best(method).mean())

    def sd(self, method: str) -> float:
        """Spread across seeds (sample standard deviation; 0 for one seed)."""
        b = self.best(method)
        return float(b.std(ddof=1)) if len(b) > 1 else 0.0

    def diff(self, a: str = "evolution", b: str = "random") -> np.ndarray:
        """Per seed, ``a``'s best minus ``b``'s best (fractions; positive: ``a`` found the more accurate)."""
        return self.best(a) - self.best(b)

    def to_frame(self):
        """One row per seed, one column per method (accuracy in %), plus the difference when both methods ran."""
        import pandas as pd

        df = pd.DataFrame({m: 100 * self.best(m) for m in self.runs}, index=[f"seed {s}" for s in self.seeds])
        if {"evolution", "random"} <= set(self.runs):
            df["evolution - random"] = 100 * self.diff()
        return df

    def as_dict(self) -> dict[str, Any]:
        return {"budget_ms": self.budget_ms, "evaluations": self.evaluations, "seeds": self.seeds,
                "best": {m: self.best(m).tolist() for m in self.runs},
                "mean": {m: self.mean(m) for m in self.runs}, "sd": {m: self.sd(m) for m in self.runs},
                "runs": {m: [r.as_dict() for r in rs] for m, rs in self.runs.items()}}


def compare_methods(evaluator: Evaluator, lut: LatencyLUT, budget_ms: float, *, evaluations: int,
                    seeds: Sequence[int], config: SearchConfig | None = None,
                    methods: Sequence[str] = ("evolution", "random")) -> SearchComparison:
    """Run :func:`search` once per method and seed, every run with the same ``evaluations`` and budget; the other
    knobs (population, parents, mutation rate) come from ``config``. The evaluator's cache is shared, so a
    sub-network two runs visit is evaluated once (the counts per run are unchanged). Returns a
    :class:`SearchComparison` (notebook 19; ``benchmarks/search.py`` runs it over more seeds)."""
    base = SearchConfig() if config is None else config
    if not isinstance(base, SearchConfig):
        raise TypeError(f"config must be a SearchConfig, got {type(base).__name__}")
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) or len(set(seeds)) != len(
            seeds):
        raise ValueError(f"seeds={seeds!r} must be a non-empty sequence of distinct ints")
    methods = list(methods)
    if not methods:
        raise ValueError(f"methods must name at least one of {SEARCH_METHODS}")
    runs = {m: [search(evaluator, lut, budget_ms, replace(base, method=m, evaluations=evaluations, seed=s))
                for s in seeds] for m in methods}
    return SearchComparison(float(budget_ms), evaluations, seeds, runs)
