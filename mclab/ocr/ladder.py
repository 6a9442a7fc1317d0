"""Notebook 18's optimisation ladder: the rungs a practitioner tries in order (:func:`ladder`, each a :class:`Rung`
of :class:`~mclab.ocr.pipeline.OCRConfig` changes), climbed with accuracy checked and speed measured against the best
configuration kept so far (:func:`climb` -> one :class:`RungResult` per rung), and the bytes the kept models take
(:func:`model_bytes`).

A rung is kept only when the lower end of its speed-up's 95 % CI is above 1 and its CER stays within the budget
(:data:`VERDICTS`); a rung whose interval straddles 1 is "no measurable gain" and is not kept, so the
rungs after it build on the configuration before it. Introduced in notebook 18.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from .metrics import Score, score
from .pipeline import STAGES, OCRConfig, Pipeline, load

__all__ = ["Rung", "ladder", "RungResult", "climb", "model_bytes", "VERDICTS"]

# What the climb says of each rung: the first is the baseline; the others are kept only when faster beyond doubt
VERDICTS = {
    "baseline": "the configuration every ratio starts from",
    "kept": "the lower end of the speed-up's 95 % CI is above 1 and CER is within the budget",
    "no measurable gain": "the speed-up's 95 % CI straddles 1: not kept",
    "slower": "the whole 95 % CI of the speed-up is below 1: not kept",
    "over the CER budget": "CER rose past the budget, whatever the speed: not kept",
}


@dataclass
class Rung:
    """One step of the ladder: the fields it changes (:class:`OCRConfig` keyword arguments), applied to the best
    configuration kept so far, and what it is timed against (``before``: fields changed on that configuration for
    the baseline; None: the configuration itself)."""

    name: str
    changes: dict[str, Any]
    before: dict[str, Any] | None = None
    why: str = ""

    def __post_init__(self) -> None:
        bad = sorted((set(self.changes) | set(self.before or {})) - set(OCRConfig.__dataclass_fields__))
        if bad:
            raise ValueError(f"rung {self.name!r} changes {bad}, which are not OCRConfig fields")


def ladder(*, threads: int, int8: dict[str, str] | None = None, int8_naive: dict[str, str] | None = None) -> list[Rung]:
    """Notebook 18's rungs in the order a practitioner tries them: RapidOCR's defaults → a detector input sized to
    the image (longer side ≤ 960 instead of the shorter side scaled up to 736) → ``threads`` set explicitly →
    ONNX Runtime's graph optimisation (timed against the same pipeline with it off; RapidOCR turns it on) →
    OpenVINO FP32 → OpenVINO's default precision → INT8 with NNCF's CNN rules (when ``int8_naive`` holds
    :func:`quantize_models`'s ``"nncf-cnn"`` files) → INT8 recogniser, then INT8 detector, convolutions only
    (when ``int8`` holds the ``"convs-only"`` files) → recognition crops batched by width at their own width
    (dynamic shapes) → no direction classifier."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads={threads!r} must be an int >= 1")
    for name, files in (("int8", int8), ("int8_naive", int8_naive)):
        missing = sorted({"det_model", "rec_model"} - set(files or {"det_model": 1, "rec_model": 1}))
        if missing:
            raise ValueError(f"{name} lacks {missing}: pass quantize_models(..., models=('det', 'rec'))'s files")
    ov8 = {"runtime": "openvino", "precision": "int8"}
    rungs = [Rung("RapidOCR defaults", {"det_max_scale": None},
                  why="shorter side scaled up to 736 px, classifier on, ONNX Runtime"),
             Rung("detector input sized to the image", {"det_limit_type": "max", "det_limit_side": 960},
                  why="longer side <= 960 px, never scaled up"),
             Rung(f"threads = {threads}", {"threads": threads}, why="intra-op threads set, not left to the runtime"),
             Rung("ONNX Runtime graph optimisation", {"ort_level": "all"}, before={"ort_level": "disable"},
                  why="level 'all' against 'disable' (RapidOCR already sets 'all')"),
             Rung("OpenVINO FP32", {"runtime": "openvino", "precision": "fp32"},
                  why="same files, OpenVINO's CPU plugin pinned to f32"),
             Rung("OpenVINO default precision", {"runtime": "openvino", "precision": "default"},
                  why="the plugin's own choice (BF16 where the CPU has it)")]
    if int8_naive:
        rungs.append(Rung("INT8, NNCF's CNN rules", {**ov8, **int8_naive},
                          why="detector and recogniser; FakeQuantize before every op that can take INT8"))
    if int8:
        rungs.append(Rung("INT8 recogniser, convolutions only", {**ov8, "rec_model": int8["rec_model"]},
                          why="dense convolutions and matrix products in INT8, depthwise convolutions in float; "
                              "the detector keeps the precision it ran in"))
        rungs.append(Rung("INT8 detector, convolutions only", {**ov8, "det_model": int8["det_model"]},
                          why="the same recipe for the detector"))
    rungs.append(Rung("recognition batched by width", {"rec_batch": 64, "rec_min_width": 0},
                      why="one batch per page at the widest crop's own width instead of 6 padded to >= 320 px"))
    rungs.append(Rung("no direction classifier", {"use_cls": False}, why="text known to be upright"))
    return rungs


@dataclass
class RungResult:
    """A rung measured: accuracy on the held-out set, and its speed-up over the configuration it was applied to (an
    interleaved A/B with a 95 % CI; ``ms_per_doc`` = the median time of one page at this rung). ``verdict``: one of
    :data:`VERDICTS`; ``kept``: the climb adopted it (CI above 1, within the CER budget), so the rungs after it
    build on it."""

    name: str
    config: OCRConfig
    score: Score
    ms_per_doc: float
    speedup: float | None            # vs the configuration it was applied to (None for the first rung)
    speedup_ci: tuple[float, float] | None
    stages_ms: dict[str, float]      # median per stage over the held-out pages
    models: dict[str, dict[str, Any]]
    why: str = ""
    cumulative: float = 1.0          # times faster than the first rung: the product of the kept steps' ratios
    kept: bool = True
    verdict: str = "baseline"        # a key of VERDICTS

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cer": self.score.cer, "cer_ci": list(self.score.cer_ci),
                "line_acc": self.score.line_acc, "ms_per_doc": self.ms_per_doc, "speedup": self.speedup,
                "cumulative": self.cumulative, "kept": self.kept, "verdict": self.verdict,
                "speedup_ci": list(self.speedup_ci) if self.speedup_ci else None, "stages_ms": self.stages_ms,
                "precision": {k: v["precision"] for k, v in self.models.items()}, "runtime": self.config.runtime,
                "why": self.why}


def _pages(pipe: Pipeline, images: Sequence[np.ndarray]) -> None:
    for im in images:
        pipe.read(im)


def climb(rungs: Sequence[Rung], docs: Sequence[Any], *, cer_budget_pts: float = 0.5, timing_docs: int = 2,
          rounds: int = 6, warmup: int = 1, progress: bool = True) -> list[RungResult]:
    """Climb the ladder as a practitioner does: apply each rung's changes to the best configuration kept so far,
    read every page of ``docs`` (:class:`mclab.data.TextImage`) for accuracy, time the first ``timing_docs`` pages
    against that configuration with :func:`mclab.bench.compare` (interleaved, ``rounds`` rounds of one pass each,
    after ``warmup`` untimed passes), and keep the rung only when the lower end of its speed-up's 95 % CI is above 1
    and its CER is at most ``cer_budget_pts`` points above the first rung's (:data:`VERDICTS`). A rung that is not
    kept is reported and left out — one whose CI straddles 1 as "no measurable gain" — so the rungs after it build
    on the configuration before it. A rung that turns on ``precision="int8"`` keeps the models it gives no INT8 file
    at the precision they ran in before (``float_precision``), so it measures INT8 alone. ``cumulative`` multiplies
    the kept steps' interleaved ratios (a drifting machine does not move them); the last kept rung is the best
    variant. Returns one :class:`RungResult` per rung."""
    from .. import bench

    if not rungs or not docs:
        raise ValueError("rungs and docs must be non-empty")
    if not isinstance(timing_docs, int) or not 1 <= timing_docs <= len(docs):
        raise ValueError(f"timing_docs={timing_docs!r} must be an int in [1, {len(docs)}]")
    if not isinstance(cer_budget_pts, (int, float)) or cer_budget_pts < 0:
        raise ValueError(f"cer_budget_pts={cer_budget_pts!r} must be a number >= 0 (CER points)")
    images = [d.image for d in docs[:timing_docs]]
    out: list[RungResult] = []
    base: Pipeline | None = None
    base_cfg, base_cum, first_cer = OCRConfig(), 1.0, 0.0
    for rung in rungs:
        started = time.perf_counter()
        changes = dict(rung.changes)
        if changes.get("precision") == "int8" and "float_precision" not in changes and base_cfg.precision != "int8":
            changes["float_precision"] = base_cfg.precision  # the models left in float keep what they ran in
        cfg = replace(base_cfg, **changes)
        pipe = load(cfg)
        results = [pipe.read(d.image) for d in docs]
        sc = score(results, docs)
        stages = {k: float(np.median([r.stages_ms[k] for r in results])) for k in STAGES}
        before = load(replace(base_cfg, **rung.before)) if rung.before is not None else base
        if before is None:
            lat = bench.measure(_pages, pipe, images, config=bench.BenchConfig(warmup=warmup, min_iters=rounds,
                                                                             max_iters=rounds, min_time_s=0))
            ms, sp, ci = lat.p50_ms / len(images), None, None
            first_cer = sc.cer
        else:
            ab = bench.compare(_pages, _pages, (before, images), (pipe, images), rounds=rounds, calls_per_round=1,
                               warmup=warmup, label_a="before", label_b=rung.name)
            ms, sp, ci = ab.b.p50_ms / len(images), ab.speedup, ab.speedup_ci
        verdict = _verdict(ci, (sc.cer - first_cer) * 100 <= cer_budget_pts)
        kept = verdict in ("baseline", "kept")
        # a rung timed against another baseline (``before``) does not change the base's speed: not a step of the chain
        cum = 1.0 if sp is None else base_cum * sp if rung.before is None else base_cum
        res = RungResult(rung.name, cfg, sc, ms, sp, ci, stages, pipe.models, rung.why, cum, kept, verdict)
        if progress:
            print(f"{rung.name:42s} CER {sc.cer:6.2%}  {ms:8.1f} ms/page"
                  + (f"  x{sp:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] vs the best so far, x{cum:.2f} vs the first" if sp
                     else "") + ("" if kept else f"  ({verdict}: not kept)")
                  + f"  [{time.perf_counter() - started:.0f} s]", flush=True)
        out.append(res)
        if kept:
            base, base_cfg, base_cum = pipe, cfg, cum
    return out


def _verdict(ci: tuple[float, float] | None, within: bool) -> str:
    """A rung's verdict (:data:`VERDICTS`) from its speed-up's 95 % CI (None: the first rung) and its CER."""
    if ci is None:
        return "baseline"
    if not within:
        return "over the CER budget"
    if ci[0] > 1:
        return "kept"
    return "slower" if ci[1] < 1 else "no measurable gain"


def model_bytes(pipe: Pipeline) -> int:
    """Bytes on disk of the model files ``pipe`` runs (an OpenVINO ``.xml`` counts its ``.bin``): the sum of its
    runners' :attr:`mclab.runtimes.Runner.size_bytes`."""
    return sum(r.size_bytes or 0 for r in pipe.runners.values())
