"""mclab.nas — which architecture to build under a latency budget: hardware-aware neural architecture search in the
Once-for-All manner (Cai et al., ICLR 2020), small enough for two CPU cores, in three steps, one module each:

- :mod:`mclab.nas.supernet` — the elastic search space (:class:`SupernetConfig`, :class:`Arch`), the weight-sharing
  :class:`Supernet` trained once with BigNAS's sandwich rule (:func:`cached_supernet`), :func:`extract` and
  :func:`recalibrate` to cut a sub-network out;
- :mod:`mclab.nas.latency` — the per-block latency table (:func:`build_lut` -> :class:`LatencyLUT`) and the check of
  its predictions against whole networks measured (:func:`check_predictor`);
- :mod:`mclab.nas.search` — evolutionary or random :func:`search` at equal evaluations under a budget, and
  :func:`compare_methods` over seeds.

How many bits each layer then gets is :mod:`mclab.quant.mixed`. All re-exported here:
``from mclab import nas; nas.search(...)``. Introduced in notebook 19.
"""
from __future__ import annotations

from .latency import (
    LATENCY_PERCENTILE,
    LatencyLUT,
    PredictorCheck,
    build_lut,
    check_predictor,
    measure_arch,
    module_latency_ms,
)
from .search import (
    SEARCH_METHODS,
    Evaluation,
    Evaluator,
    SearchComparison,
    SearchConfig,
    SearchResult,
    compare_methods,
    search,
)
from .supernet import (
    Arch,
    MBBlock,
    Supernet,
    SupernetConfig,
    SupernetTrainConfig,
    cached_supernet,
    extract,
    largest,
    mobilenet_style,
    recalibrate,
    sample_arch,
    smallest,
    train_supernet,
)

__all__ = [
    # the search space and the supernet
    "SupernetConfig", "Arch", "MBBlock", "Supernet", "extract", "recalibrate", "sample_arch", "smallest", "largest",
    "mobilenet_style",
    # training once
    "SupernetTrainConfig", "train_supernet", "cached_supernet",
    # latency
    "LATENCY_PERCENTILE", "LatencyLUT", "build_lut", "measure_arch", "module_latency_ms", "PredictorCheck",
    "check_predictor",
    # search
    "SEARCH_METHODS", "Evaluator", "SearchConfig", "Evaluation", "SearchResult", "search", "SearchComparison",
    "compare_methods",
]
