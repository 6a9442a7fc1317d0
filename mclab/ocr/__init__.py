"""mclab.ocr — a real OCR application, readable stage by stage: PaddleOCR's PP-OCRv4 mobile models (the files that
ship in the ``rapidocr-onnxruntime`` wheel) run through :mod:`mclab.runtimes`, with every stage named and timed.

Four modules, each importing only the ones above it:

- :mod:`mclab.ocr.pipeline` — :class:`OCRConfig` (RapidOCR's defaults), preprocessing, DB post-processing, crops,
  the direction classifier, recognition and CTC decoding; ``read(image, OCRConfig(...)) -> OCRResult``, :func:`load`
  for many images, and RapidOCR's own pipeline as the reference (:func:`rapidocr_reference`, :func:`as_result`);
- :mod:`mclab.ocr.metrics` — :func:`score` (CER, word and exact-line accuracy with 95 % CIs, detection precision
  and recall at IoU ≥ 0.5 against :func:`mclab.data.text_images`), :func:`agreement` with RapidOCR,
  :func:`cer_delta`;
- :mod:`mclab.ocr.int8` — :func:`quantize_models`: INT8 detector / recogniser files calibrated on rendered text;
- :mod:`mclab.ocr.ladder` — the optimisation ladder (:func:`ladder`, :func:`climb`).

All re-exported here: ``from mclab import ocr; ocr.read(...)``. Introduced in notebook 18 (``mclab ocr IMAGE``).
"""
from __future__ import annotations

from .int8 import INT8_RECIPES, fake_quantize_targets, quantize_models
from .ladder import Rung, RungResult, climb, ladder, model_bytes
from .metrics import Agreement, CerDelta, LineScore, Score, agreement, cer_delta, edit_distance, score
from .pipeline import (
    MODEL_FILES,
    STAGE_KIND,
    STAGES,
    OCRConfig,
    OCRLine,
    OCRResult,
    Pipeline,
    as_result,
    load,
    models_dir,
    rapidocr_reference,
    read,
)

__all__ = [
    # configuration, results and the one verb
    "OCRConfig", "OCRLine", "OCRResult", "Pipeline", "load", "read", "STAGES", "STAGE_KIND", "MODEL_FILES",
    "models_dir",
    # the reference
    "rapidocr_reference", "as_result",
    # accuracy
    "edit_distance", "LineScore", "Score", "score", "Agreement", "agreement", "CerDelta", "cer_delta",
    # INT8
    "quantize_models", "INT8_RECIPES", "fake_quantize_targets",
    # the optimisation ladder (notebook 18)
    "Rung", "RungResult", "ladder", "climb", "model_bytes",
]
