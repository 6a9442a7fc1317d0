"""mclab.ocr — a real OCR application, readable stage by stage: PaddleOCR's PP-OCRv6 small detector and recogniser
and PP-OCR's v2.0 mobile direction classifier (the files that ship in the ``rapidocr`` 3.x wheel) run through
:mod:`mclab.runtimes`, with every stage named and timed.

Five modules, each importing only the ones above it:

- :mod:`mclab.ocr.pipeline` — :class:`OCRConfig` (RapidOCR 3.x's defaults), preprocessing, DB post-processing, crops,
  the direction classifier, recognition and CTC decoding; ``read(image, OCRConfig(...)) -> OCRResult``, :func:`load`
  for many images, and RapidOCR's own pipeline as the reference (:func:`rapidocr_reference`, :func:`as_result`);
- :mod:`mclab.ocr.metrics` — :func:`score` (CER, word and exact-line accuracy with 95 % CIs, detection precision
  and recall against :func:`mclab.data.text_images`), :func:`reading_cer` (everything read, in reading order),
  :func:`agreement` with RapidOCR, :func:`cer_delta`;
- :mod:`mclab.ocr.unseen` — :func:`unseen_lines`: English lines in faces and sizes the kit's pages never use;
- :mod:`mclab.ocr.int8` — :func:`quantize_models`: INT8 detector / recogniser files calibrated on rendered text;
- :mod:`mclab.ocr.ladder` — the optimisation ladder (:func:`ladder`, :func:`climb`).

All re-exported here: ``from mclab import ocr; ocr.read(...)``. Introduced in notebook 18 (``mclab ocr IMAGE``).
"""
from __future__ import annotations

from .int8 import INT8_RECIPES, fake_quantize_targets, quantize_models
from .ladder import VERDICTS, Rung, RungResult, climb, ladder, model_bytes
from .metrics import (
    LINE_MATCH,
    Agreement,
    CerDelta,
    LineScore,
    Score,
    agreement,
    cer_delta,
    edit_distance,
    reading_cer,
    score,
)
from .pipeline import (
    MODEL_FILES,
    MODEL_GENERATION,
    STAGE_KIND,
    STAGES,
    OCRConfig,
    OCRLine,
    OCRResult,
    Pipeline,
    as_result,
    load,
    model_source,
    models_dir,
    ppocrv4_baseline,
    rapidocr_reference,
    read,
)
from .unseen import UNSEEN_SIZES, unseen_fonts, unseen_lines

__all__ = [
    # configuration, results and the one verb
    "OCRConfig", "OCRLine", "OCRResult", "Pipeline", "load", "read", "STAGES", "STAGE_KIND", "MODEL_FILES",
    "models_dir", "model_source", "MODEL_GENERATION", "ppocrv4_baseline",
    # the reference
    "rapidocr_reference", "as_result",
    # accuracy
    "edit_distance", "LineScore", "Score", "score", "LINE_MATCH", "reading_cer", "Agreement", "agreement",
    "CerDelta", "cer_delta",
    # lines in faces and sizes the kit's pages never use
    "unseen_lines", "unseen_fonts", "UNSEEN_SIZES",
    # INT8
    "quantize_models", "INT8_RECIPES", "fake_quantize_targets",
    # the optimisation ladder (notebook 18)
    "Rung", "RungResult", "ladder", "climb", "model_bytes", "VERDICTS",
]
