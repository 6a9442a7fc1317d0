"""The OCR pipeline, readable stage by stage: PaddleOCR's PP-OCRv6 *small* detector and recogniser and PP-OCR's v2.0
mobile direction classifier (the three ONNX files that ship inside the ``rapidocr`` 3.x wheel, :data:`MODEL_FILES`)
run through :mod:`mclab.runtimes`, with every stage named and timed.

The pipeline follows the one RapidOCR 3.x runs (its ``config.yaml`` values are the defaults of :class:`OCRConfig`),
written fresh so that each step can be read and changed:

1. *preprocess*: the page is scaled so the detector sees sides that are multiples of 32 (RapidOCR's default
   scales the **shorter** side up to 736 px; the kit stops that enlargement at ``det_max_scale`` = 3×, see below;
   ``det_limit_type="max"`` keeps the image's own size under a limit), letterboxed when very flat, normalised to
   [-1, 1] in BGR order, as the models were trained;
2. *detect*: the DB detector turns the page into a text-probability map;
3. *db_post*: the map is thresholded and dilated, its contours become minimum-area rectangles (OpenCV), scored,
   and grown by the unclip ratio with pyclipper (offset distance = area × ratio / perimeter, from shapely);
4. *crop*: each box is cut out and rectified by a perspective warp;
5. *classify* (optional): a small network says whether a crop is upside down (then it is turned);
6. *recognise*: crops are resized to 48 px high, sorted by width, batched and padded to a common width;
7. *decode*: greedy CTC decoding (argmax per column, repeats and blanks dropped) with the character list stored
   in the recognition model's metadata (18,708 characters for PP-OCRv6: Chinese, Japanese, Latin scripts);
8. lines read as empty or with a mean character probability under ``text_score`` are dropped, and the rest are put
   in reading order: top to bottom, and left to right among boxes whose tops are within 10 px of the one before.

One default differs from RapidOCR's: the detector never sees the image enlarged more than ``det_max_scale`` = 3×.
RapidOCR scales a 37 px high line to 736 px (20×); the detector's text map then splits or loses the line (on the
kit's lines in faces and sizes it never renders, :func:`mclab.ocr.unseen_lines`, CER 0.8–4.3 % with RapidOCR's
sizing, under 0.1 % with the cap, when this was written). A page whose shorter side is at least 736 / 3 = 245 px is
sized exactly as RapidOCR sizes it; ``det_max_scale=None`` is RapidOCR's sizing everywhere.

``read(image, OCRConfig(...)) -> OCRResult``; :func:`load` builds a :class:`Pipeline` once for many images;
:func:`rapidocr_reference` runs RapidOCR's own pipeline for comparison and :func:`as_result` wraps its output.
Introduced in notebook 18 (``mclab ocr IMAGE``).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..runtimes.base import PRECISIONS, RUNTIMES, build_options, precisions
from ..runtimes.onnxrt import LEVELS

__all__ = [
    "OCRConfig", "OCRLine", "OCRResult", "Pipeline", "load", "read", "STAGES", "STAGE_KIND", "MODEL_FILES",
    "models_dir", "model_source", "MODEL_GENERATION", "ppocrv4_baseline", "rapidocr_reference", "as_result",
]

# The files inside the rapidocr 3.x wheel's models/ folder: the detector and recogniser are PP-OCRv6 small, the
# direction classifier is PP-OCR's v2.0 mobile one (RapidOCR files it under PP-OCRv4, whose pipeline reused it)
MODEL_FILES = {"det": "PP-OCRv6_det_small.onnx", "rec": "PP-OCRv6_rec_small.onnx",
               "cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx"}
MODEL_GENERATION = {"det": "PP-OCRv6 small", "rec": "PP-OCRv6 small", "cls": "PP-OCR v2.0 mobile"}
RAPIDOCR_PIN = "3.10.0"  # the rapidocr release whose wheel the kit's numbers were measured with (constraints.txt)
# The stages in the order they run, and which part of the source material's split each belongs to
STAGES = ("preprocess", "detect", "db_post", "crop", "classify", "recognise", "decode")
STAGE_KIND = {"preprocess": "pre", "detect": "inference", "db_post": "post", "crop": "pre",
              "classify": "inference", "recognise": "inference", "decode": "post"}


def models_dir() -> Path:
    """The ``models/`` folder inside the installed ``rapidocr`` package, which holds :data:`MODEL_FILES`; nothing is
    downloaded. A ``ValueError`` says what to install when the package or one of the files is missing."""
    import importlib.util

    spec = importlib.util.find_spec("rapidocr")  # the package's path, without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"rapidocr is not installed; its wheel ships the OCR models (pip install -c constraints.txt "
                         f"rapidocr=={RAPIDOCR_PIN})")
    base = Path(next(iter(spec.submodule_search_locations))) / "models"
    missing = [f for f in MODEL_FILES.values() if not (base / f).is_file()]
    if missing:
        raise ValueError(f"{base} lacks {missing}: the kit runs the models the rapidocr {RAPIDOCR_PIN} wheel ships "
                         f"(installed: rapidocr {_rapidocr_version()}; pip install -c constraints.txt "
                         f"rapidocr=={RAPIDOCR_PIN})")
    return base


def _rapidocr_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rapidocr")
    except PackageNotFoundError:
        return None


def model_source() -> dict[str, Any]:
    """Where the models come from: the ``rapidocr`` version, its ``models/`` folder, and per model the file, its
    bytes and its generation (PP-OCRv6 small, PP-OCR v2.0 mobile)."""
    base = models_dir()
    return {"package": "rapidocr", "version": _rapidocr_version(), "dir": str(base),
            "models": {k: {"file": f, "bytes": (base / f).stat().st_size, "generation": MODEL_GENERATION[k]}
                       for k, f in MODEL_FILES.items()}}


def ppocrv4_baseline() -> dict[str, Any]:
    """What the kit measured with the PP-OCRv4 models before they were replaced (``data/ocr_ppocrv4_baseline.json``:
    the ``rapidocr-onnxruntime`` 1.4.4 wheel's files read by this pipeline on notebook 18's pages and lines, scored
    by :func:`mclab.ocr.score` and :func:`mclab.ocr.reading_cer`, and timed against RapidOCR 3.x; its ``how`` says
    how). The v4 files no longer ship with the kit, so notebook 18 reads its v4 column from here."""
    import json

    path = Path(__file__).resolve().parents[2] / "data" / "ocr_ppocrv4_baseline.json"
    if not path.is_file():
        raise ValueError(f"{path} is missing: it ships in the kit's repository (data/), not in an installed wheel")
    return json.loads(path.read_text())


@dataclass(frozen=True)
class OCRConfig:
    """How to run the pipeline. The defaults are RapidOCR 3.x's own (its ``config.yaml``) but one, ``det_max_scale``
    (RapidOCR enlarges without limit; ``OCRConfig(det_max_scale=None)`` is the application exactly as shipped, and
    on pages whose shorter side is at least 245 px the two are the same); the fields are the rungs of notebook 18's
    optimisation ladder."""

    runtime: str = "onnxruntime"     # a runtime that keeps dynamic shapes (mclab.runtimes: onnxruntime, openvino)
    precision: str = "fp32"          # fp32 | bf16 | fp16 | int8 | default (OpenVINO's own choice: BF16 on AVX512-BF16)
    float_precision: str = "fp32"    # with precision="int8": what the models without an INT8 file (and the
    #                                  classifier) run in: fp32 | bf16 | fp16 | default
    threads: int | None = None       # None: the runtime's default (every core), as RapidOCR leaves it
    ort_level: str = "all"           # ONNX Runtime graph optimisation: disable | basic | extended | all (RapidOCR: all)
    #                                  passed as load(..., level=) to a runtime whose build takes one
    det_limit_side: int = 736        # RapidOCR: the detector's shorter side is scaled (up) to 736 px
    det_limit_type: str = "min"      # "min": shorter side >= limit (RapidOCR); "max": longer side <= limit
    det_max_scale: float | None = 3.0  # with "min": the image is never enlarged more than this for the detector
    #                                  (None: no limit, as RapidOCR; it scales a 37 px line 20x and loses it)
    use_cls: bool = True             # run the 0/180 degree direction classifier on every crop
    rec_batch: int = 6               # recognition crops per batch, sorted by width (RapidOCR: 6)
    rec_min_width: int = 320         # every batch is padded to at least this width (RapidOCR: 48x320)
    shape_step: int = 0              # 0: inputs sized exactly (RapidOCR); N: the detector's input and each recognition
    #                                  batch's width padded up to multiples of N px, so pages repeat a few input shapes
    det_thresh: float = 0.3          # probability above which a pixel is text
    box_thresh: float = 0.5          # mean probability a box needs to be kept
    unclip_ratio: float = 1.6        # how far a box grows (the DB paper's shrunk text kernels are grown back)
    text_score: float = 0.5          # lines read with a lower mean character probability are dropped (RapidOCR: 0.5)
    det_model: str | None = None     # model files; None: the bundled ones (INT8: quantize_models()'s; None -> FP32)
    rec_model: str | None = None
    cls_model: str | None = None

    def __post_init__(self) -> None:
        dynamic = [k for k, spec in RUNTIMES.items() if spec.dynamic]  # the pipeline sizes inputs per page and crop
        if self.runtime not in dynamic:
            raise ValueError(f"runtime={self.runtime!r} is not one the OCR pipeline runs on; "
                             f"allowed: {dynamic} (the runtimes that keep dynamic shapes)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is unknown; allowed: {list(PRECISIONS)}")
        if self.precision != "default" and self.precision not in precisions(self.runtime):
            takes = [p for p in PRECISIONS if p in precisions(self.runtime) or p == "default"]
            others = [k for k in dynamic if self.precision in precisions(k)]
            raise ValueError(f"precision={self.precision!r} on {self.runtime}: it runs {takes} "
                             f"(runtimes with {self.precision}: {others})")
        if self.float_precision not in PRECISIONS or self.float_precision == "int8" or (
                self.float_precision != "default" and self.float_precision not in precisions(self.runtime)):
            floats = [p for p in PRECISIONS if p != "int8" and (p == "default" or p in precisions(self.runtime))]
            raise ValueError(f"float_precision={self.float_precision!r} on {self.runtime}: allowed {floats} (the "
                             "precision of the models without an INT8 file)")
        if self.threads is not None and (not isinstance(self.threads, int) or isinstance(self.threads, bool)
                                         or self.threads < 1):
            raise ValueError(f"threads={self.threads!r} must be an int >= 1 or None (the runtime's default)")
        if self.ort_level not in LEVELS:
            raise ValueError(f"ort_level={self.ort_level!r}; allowed: {list(LEVELS)}")
        if self.ort_level != "all" and "level" not in build_options(self.runtime):
            raise ValueError(f"ort_level={self.ort_level!r} is a graph optimisation level; runtime={self.runtime!r} "
                             f"takes no level (its settings: {list(build_options(self.runtime))})")
        if not isinstance(self.det_limit_side, int) or not 32 <= self.det_limit_side <= 4096:
            raise ValueError(f"det_limit_side={self.det_limit_side!r} must be an int in [32, 4096] px")
        if self.det_limit_type not in ("min", "max"):
            raise ValueError(f"det_limit_type={self.det_limit_type!r}; allowed: 'min' (shorter side >= limit) or "
                             "'max' (longer side <= limit)")
        if self.det_max_scale is not None and (not isinstance(self.det_max_scale, (int, float))
                                               or isinstance(self.det_max_scale, bool)
                                               or not 1 <= self.det_max_scale <= 64):
            raise ValueError(f"det_max_scale={self.det_max_scale!r} must be a number in [1, 64] (how many times the "
                             "detector may enlarge the image) or None (no limit, RapidOCR's sizing)")
        if not isinstance(self.rec_batch, int) or self.rec_batch < 1:
            raise ValueError(f"rec_batch={self.rec_batch!r} must be an int >= 1")
        if not isinstance(self.rec_min_width, int) or not 0 <= self.rec_min_width <= 4096:
            raise ValueError(f"rec_min_width={self.rec_min_width!r} must be an int in [0, 4096] px")
        if not isinstance(self.shape_step, int) or self.shape_step < 0 or self.shape_step % 32 or self.shape_step > 512:
            raise ValueError(f"shape_step={self.shape_step!r} must be 0 (off) or a multiple of 32 up to 512 px")
        for name in ("det_thresh", "box_thresh", "text_score"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise ValueError(f"{name}={v!r} must be a probability in [0, 1)")
        if not isinstance(self.unclip_ratio, (int, float)) or not 0 < self.unclip_ratio <= 5:
            raise ValueError(f"unclip_ratio={self.unclip_ratio!r} must be in (0, 5]")
        for name in ("det_model", "rec_model", "cls_model"):
            v = getattr(self, name)
            if v is not None and not Path(v).is_file():
                raise ValueError(f"{name}={v!r} is not a file")
        if self.precision == "int8" and ((self.det_model is None and self.rec_model is None)
                                         or self.runtime != "openvino"):
            raise ValueError("precision='int8' needs runtime='openvino' and INT8 model files calibrated on real text "
                             "(det_model, rec_model or both; a model without one runs in FP32): "
                             "OCRConfig(runtime='openvino', precision='int8', "
                             "**mclab.ocr.quantize_models(images, out_dir))")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OCRLine:
    """One line read: its text, the mean probability of its characters and its box in the input image."""

    text: str
    score: float
    box: np.ndarray                  # (4, 2) float32 corners (tl, tr, br, bl) in input pixels

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "score": round(float(self.score), 4), "box": self.box.round(1).tolist()}


@dataclass
class OCRResult:
    """What :func:`read` returns: the lines (top to bottom, left to right), the milliseconds of each stage
    (:data:`STAGES`), and for each model the runtime and the precision it actually ran in."""

    lines: list[OCRLine]
    stages_ms: dict[str, float]
    models: dict[str, dict[str, Any]]
    image_shape: tuple[int, int]
    det_input: tuple[int, int] | None = None   # (H, W) of the page scaled for the detector (before shape_step padding)

    @property
    def total_ms(self) -> float:
        return float(sum(self.stages_ms.values()))

    @property
    def split_ms(self) -> dict[str, float]:
        """The stages summed as the source material splits an inference: pre / inference / post (ms)."""
        out = {"pre": 0.0, "inference": 0.0, "post": 0.0}
        for k, v in self.stages_ms.items():
            out[STAGE_KIND[k]] += v
        return out

    @property
    def texts(self) -> list[str]:
        return [ln.text for ln in self.lines]

    def as_dict(self) -> dict[str, Any]:
        return {"lines": [ln.as_dict() for ln in self.lines], "stages_ms": {k: round(v, 3) for k, v in
                self.stages_ms.items()}, "total_ms": round(self.total_ms, 3), "split_ms": self.split_ms,
                "models": self.models, "image_shape": list(self.image_shape),
                "det_input": list(self.det_input) if self.det_input else None}


# ----------------------------------------------------------------------------- primitives: detection


def _as_bgr(image: Any) -> np.ndarray:
    """An image path or an (H, W, 3) RGB / (H, W) grey uint8 array as the (H, W, 3) BGR uint8 array the models
    were trained on (PaddleOCR reads images with OpenCV)."""
    import cv2

    if isinstance(image, (str, os.PathLike)):
        p = os.fspath(image)
        if not os.path.isfile(p):
            what = "is a directory" if os.path.isdir(p) else "does not exist or is not a file"
            raise ValueError(f"image={p!r} {what}; pass an image file")
        if os.path.getsize(p) == 0:
            raise ValueError(f"image={p!r} is an empty file (0 bytes)")
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"image={p!r} is not an image OpenCV can read (PNG, JPEG, BMP, TIFF, WebP …)")
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"image has dtype {image.dtype}; pass uint8 pixels (0-255)")
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"image has shape {image.shape}; pass (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grey")
        img = np.ascontiguousarray(image[..., 2::-1])  # RGB(A) -> BGR
    else:
        raise TypeError(f"image has type {type(image).__name__}; pass a file path or a numpy uint8 array")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise ValueError(f"image is {img.shape[1]}x{img.shape[0]} px; it is empty (needs at least 2x2)")
    return img


def _within_bounds(img: np.ndarray, limit: int, kind: str) -> np.ndarray:
    """The image resized so its longer side is at most ``limit`` ("max") or its shorter side at least ``limit``
    ("min"), sides rounded to multiples of 32; unchanged when it already is."""
    import cv2

    h, w = img.shape[:2]
    if (kind == "max" and max(h, w) <= limit) or (kind == "min" and min(h, w) >= limit):
        return img
    k = limit / (max(h, w) if kind == "max" else min(h, w))
    return cv2.resize(img, (max(32, int(round(int(w * k) / 32) * 32)), max(32, int(round(int(h * k) / 32) * 32))))


def _det_size(h: int, w: int, limit: int, kind: str, max_scale: float | None = None) -> tuple[int, int]:
    """(H, W) of the detector's input: scaled so the shorter side reaches ``limit`` ("min"; but never enlarged
    more than ``max_scale`` times) or the longer side stays under it ("max"), then rounded to multiples of 32 (the
    network halves its input five times)."""
    if kind == "min":
        k = limit / min(h, w) if min(h, w) < limit else 1.0
        k = min(k, max_scale) if max_scale is not None else k
    else:
        k = limit / max(h, w) if max(h, w) > limit else 1.0
    return max(32, int(round(int(h * k) / 32) * 32)), max(32, int(round(int(w * k) / 32) * 32))


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def _normalise(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1]."""
    return (img.astype(np.float32).transpose(2, 0, 1) * (2 / 255.0) - 1.0).astype(np.float32)


def _mini_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    """The minimum-area rectangle around ``contour`` as 4 corners (tl, tr, br, bl) and its shorter side (px); of the
    two left-most corners the lower one in the image (larger y) is the bottom-left, as RapidOCR orders them."""
    import cv2

    rect = cv2.minAreaRect(contour)
    p = sorted(cv2.boxPoints(rect).tolist(), key=lambda q: q[0])
    tl, bl = (p[0], p[1]) if p[1][1] > p[0][1] else (p[1], p[0])
    tr, br = (p[2], p[3]) if p[3][1] > p[2][1] else (p[3], p[2])
    return np.array([tl, tr, br, bl], np.float32), float(min(rect[1]))


def _box_score(prob: np.ndarray, box: np.ndarray) -> float:
    """Mean probability inside ``box`` (the "fast" score: the rectangle, not the contour)."""
    import cv2

    h, w = prob.shape
    x0, x1 = (np.clip([np.floor(box[:, 0].min()), np.ceil(box[:, 0].max())], 0, w - 1)).astype(int)
    y0, y1 = (np.clip([np.floor(box[:, 1].min()), np.ceil(box[:, 1].max())], 0, h - 1)).astype(int)
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [(box - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0:y1 + 1, x0:x1 + 1], mask)[0])


def _unclip(box: np.ndarray, ratio: float) -> np.ndarray:
    """Grow a box outwards by area × ratio / perimeter pixels (pyclipper offset with round joins)."""
    import pyclipper
    from shapely.geometry import Polygon

    poly = Polygon(box)
    off = pyclipper.PyclipperOffset()
    off.AddPath(box.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    grown = off.Execute(poly.area * ratio / poly.length)
    return np.array(grown[0] if grown else box, np.float32).reshape(-1, 1, 2)


def _db_boxes(prob: np.ndarray, cfg: OCRConfig, out_hw: tuple[int, int]) -> np.ndarray:
    """DB post-processing: a (H, W) probability map -> (N, 4, 2) boxes in a frame of size ``out_hw``."""
    import cv2

    h, w = prob.shape
    mask = cv2.dilate((prob > cfg.det_thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    oh, ow = out_hw
    boxes = []
    for c in contours[:1000]:
        pts, side = _mini_box(c)
        if side < 3 or _box_score(prob, pts) < cfg.box_thresh:
            continue
        box, side = _mini_box(_unclip(pts, cfg.unclip_ratio))
        if side < 5:
            continue
        box[:, 0] = np.clip(np.round(box[:, 0] / w * ow), 0, ow)
        box[:, 1] = np.clip(np.round(box[:, 1] / h * oh), 0, oh)
        box = _clockwise(box)
        box[:, 0] = np.clip(box[:, 0], 0, ow - 1).astype(np.int32)
        box[:, 1] = np.clip(box[:, 1], 0, oh - 1).astype(np.int32)
        if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
            continue  # under 4 px wide or high
        boxes.append(box)
    return _reading_order(np.array(boxes, np.float32).reshape(-1, 4, 2))


def _clockwise(pts: np.ndarray) -> np.ndarray:
    """Four points as top-left, top-right, bottom-right, bottom-left."""
    xs = pts[np.argsort(pts[:, 0], kind="stable")]
    tl, bl = xs[:2][np.argsort(xs[:2, 1], kind="stable")]
    tr, br = xs[2:][np.argsort(xs[2:, 1], kind="stable")]
    return np.array([tl, tr, br, bl], np.float32)


def _reading_order(boxes: np.ndarray) -> np.ndarray:
    """Reading order: boxes sorted top to bottom by their top-left corner; a box whose top is within 10 px of the
    one above it in that order joins its line, and each line is read left to right (RapidOCR 3.x's sort)."""
    if not len(boxes):
        return boxes
    by_y = boxes[np.argsort(boxes[:, 0, 1], kind="stable")]
    line = np.concatenate([[0], np.cumsum(np.diff(by_y[:, 0, 1]) >= 10)])  # a new line at every gap of >= 10 px
    return by_y[np.lexsort((by_y[:, 0, 0], line))]


def _crop(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Cut ``box`` out of ``img`` and warp it to an upright rectangle; a crop much taller than wide is turned."""
    import cv2

    w = int(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3])))
    h = int(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2])))
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    out = cv2.warpPerspective(img, cv2.getPerspectiveTransform(box.astype(np.float32), dst), (w, h),
                              borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    return np.rot90(out) if out.shape[0] >= 1.5 * out.shape[1] else out


# ----------------------------------------------------------------------------- primitives: recognition


def _resize_48(img: np.ndarray, width: int, max_width: int) -> np.ndarray:
    """A crop resized to 48 px high (its aspect kept, at most ``max_width``), normalised and right-padded with
    zeros to ``width``: (3, 48, width) float32."""
    import cv2

    h, w = img.shape[:2]
    rw = min(max_width, int(math.ceil(48 * w / h)))
    out = np.zeros((3, 48, width), np.float32)
    out[:, :, :rw] = _normalise(cv2.resize(img, (max(rw, 1), 48)))
    return out


def _ctc_greedy(probs: np.ndarray, charset: Sequence[str]) -> list[tuple[str, float]]:
    """Greedy CTC decoding of (B, T, C) probabilities: per column the likeliest class, repeats merged, the blank
    (class 0) dropped; returns (text, mean probability of the kept columns) per row, each probability and the
    mean rounded to 5 decimals as RapidOCR reports them (0.0 when nothing is kept)."""
    idx, p = probs.argmax(axis=2), probs.max(axis=2)  # (B, T)
    keep = idx != 0
    keep[:, 1:] &= idx[:, 1:] != idx[:, :-1]
    out = []
    for i in range(len(idx)):
        sel = keep[i]
        mean = round(float(np.mean(np.round(p[i][sel].astype(np.float64), 5))), 5) if sel.any() else 0.0
        out.append(("".join(charset[c] for c in idx[i][sel]), mean))
    return out


def _charset(path: str) -> list[str]:
    """The recognition model's classes, read from the model as RapidOCR does: the CTC blank, the characters in its
    ONNX metadata (``character``, one per line), then a space."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    if "character" not in meta:
        raise ValueError(f"{path!r} has no 'character' list in its metadata; is it a PP-OCR recognition model?")
    return ["<blank>", *meta["character"].splitlines(), " "]


# ----------------------------------------------------------------------------- the pipeline


def _runner(path: str, cfg: OCRConfig) -> Any:
    """A dynamic-shape :class:`mclab.runtimes.Runner` for one model file under ``cfg``."""
    from .. import runtimes

    level = {"level": cfg.ort_level} if cfg.ort_level != "all" else {}  # "all": the runtime's own default
    return runtimes.load(path, cfg.runtime, threads=cfg.threads, precision=cfg.precision, dynamic=True, **level)


class Pipeline:
    """The three models loaded once under one :class:`OCRConfig`; ``pipe.read(image)`` -> :class:`OCRResult`."""

    def __init__(self, config: OCRConfig) -> None:
        if not isinstance(config, OCRConfig):
            raise TypeError(f"config must be an OCRConfig, got {type(config).__name__}")
        self.config = cfg = config
        base = models_dir()
        self.files = {"det": cfg.det_model or str(base / MODEL_FILES["det"]),
                      "rec": cfg.rec_model or str(base / MODEL_FILES["rec"]),
                      "cls": cfg.cls_model or str(base / MODEL_FILES["cls"])}
        fp = replace(cfg, precision=cfg.float_precision if cfg.precision == "int8" else cfg.precision,
                     det_model=None, rec_model=None)
        # with precision="int8", a model given no INT8 file runs the bundled one at float_precision
        self.runners = {k: _runner(self.files[k], cfg if getattr(cfg, f"{k}_model") else fp) for k in ("det", "rec")}
        if cfg.use_cls:  # the classifier stays at the float precision (it is 0.6 MB; INT8 is not calibrated for it)
            self.runners["cls"] = _runner(self.files["cls"], fp if cfg.cls_model is None else cfg)
        # the classes are the bundled model's (an INT8 copy keeps them; OpenVINO IR drops ONNX metadata)
        self.charset = _charset(self.files["rec"] if self.files["rec"].endswith(".onnx") else
                                str(base / MODEL_FILES["rec"]))

    @property
    def models(self) -> dict[str, dict[str, Any]]:
        """Per model: runtime, the precision asked and the one it computes in, threads, file name."""
        return {k: {"runtime": r.runtime, "requested": self.config.precision, "precision": r.precision,
                    "threads": r.threads, "file": os.path.basename(self.files[k])} for k, r in self.runners.items()}

    def read(self, image: Any) -> OCRResult:
        """Read ``image`` (a path, or an (H, W, 3) RGB uint8 array); returns an :class:`OCRResult` whose
        ``stages_ms`` holds the wall-clock milliseconds of each stage."""
        import cv2

        cfg, ms = self.config, {}
        t = time.perf_counter()
        img = _as_bgr(image)
        raw_h, raw_w = img.shape[:2]
        # RapidOCR's global step: the longer side brought down to 2000 px, then the shorter one up to 30 px (each
        # resize to multiples of 32), then very flat images letterboxed
        img = _within_bounds(_within_bounds(img, 2000, "max"), 30, "min")
        sy, sx = raw_h / img.shape[0], raw_w / img.shape[1]
        pad = 0
        h, w = img.shape[:2]
        if h <= 30 or w / h > 8:
            pad = abs(max(int(w / 8), 30) * 2 - h) // 2
            img = cv2.copyMakeBorder(img, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        h, w = img.shape[:2]
        dh, dw = _det_size(h, w, cfg.det_limit_side, cfg.det_limit_type, cfg.det_max_scale)
        x = _normalise(cv2.resize(img, (dw, dh)))[None]  # (1, 3, dh, dw)
        if cfg.shape_step:  # padded with zeros (the mean colour once normalised); the padding is cut off the map
            x = np.pad(x, ((0, 0), (0, 0), (0, _round_up(dh, cfg.shape_step) - dh),
                           (0, _round_up(dw, cfg.shape_step) - dw)))
        ms["preprocess"] = (time.perf_counter() - t) * 1e3

        t = time.perf_counter()
        prob = self.runners["det"].run(x)[0, 0, :dh, :dw]  # (dh, dw)
        ms["detect"] = (time.perf_counter() - t) * 1e3

        t = time.perf_counter()
        boxes = _db_boxes(prob, cfg, (h, w))  # (N, 4, 2) in the letterboxed frame
        ms["db_post"] = (time.perf_counter() - t) * 1e3

        t = time.perf_counter()
        crops = [_crop(img, b) for b in boxes]
        ms["crop"] = (time.perf_counter() - t) * 1e3

        t = time.perf_counter()
        if cfg.use_cls and crops:
            crops = self._classify(crops)
        ms["classify"] = (time.perf_counter() - t) * 1e3

        texts, t_rec, t_dec = self._recognise(crops)
        ms["recognise"], ms["decode"] = t_rec, t_dec

        lines = []
        for (text, s), b in zip(texts, boxes, strict=True):
            if not text.strip() or s < cfg.text_score:  # RapidOCR drops empty reads, then unsure ones
                continue
            b = b.copy()
            b[:, 1] -= pad
            b[:, 0], b[:, 1] = np.clip(b[:, 0] * sx, 0, raw_w), np.clip(b[:, 1] * sy, 0, raw_h)
            lines.append(OCRLine(text, s, b.astype(np.float32)))
        return OCRResult(lines, ms, self.models, (raw_h, raw_w), (dh, dw))

    def _classify(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Turn the crops the direction classifier finds upside down (class "180" with p > 0.9), 6 per batch."""
        import cv2

        crops = list(crops)
        order = np.argsort(np.array([c.shape[1] / c.shape[0] for c in crops]))  # as RapidOCR sorts them
        for i in range(0, len(order), 6):
            ids = order[i:i + 6]
            batch = np.stack([_resize_cls(crops[j]) for j in ids])  # (b, 3, 48, 192)
            p = self.runners["cls"].run(batch)  # (b, 2): 0 and 180 degrees
            for j, row in zip(ids, p, strict=True):
                if row.argmax() == 1 and row[1] > 0.9:
                    crops[j] = cv2.rotate(crops[j], cv2.ROTATE_180)
        return crops

    def _recognise(self, crops: list[np.ndarray]) -> tuple[list[tuple[str, float]], float, float]:
        """Recognise the crops in batches of similar width; returns (text, score) per crop and the milliseconds
        spent in the network and in resizing + decoding."""
        cfg, out = self.config, [("", 0.0)] * len(crops)
        t_net = t_other = 0.0
        order = np.argsort(np.array([c.shape[1] / c.shape[0] for c in crops]))  # as RapidOCR sorts them
        for i in range(0, len(order), cfg.rec_batch):
            t = time.perf_counter()
            ids = order[i:i + cfg.rec_batch]
            ratio = max(cfg.rec_min_width / 48, *(crops[j].shape[1] / crops[j].shape[0] for j in ids))
            width = max(8, int(48 * ratio))  # truncated, as PaddleOCR does: one pixel more changes the output
            padded = _round_up(width, cfg.shape_step) if cfg.shape_step else width
            batch = np.stack([_resize_48(crops[j], padded, width) for j in ids])  # (b, 3, 48, padded)
            t1 = time.perf_counter()
            probs = self.runners["rec"].run(batch)  # (b, padded / 8, classes)
            t2 = time.perf_counter()
            for j, res in zip(ids, _ctc_greedy(probs, self.charset), strict=True):
                out[j] = res
            t_other += (t1 - t) + (time.perf_counter() - t2)
            t_net += t2 - t1
        return out, t_net * 1e3, t_other * 1e3


def _resize_cls(img: np.ndarray) -> np.ndarray:
    """A crop as the direction classifier takes it: 48 px high, at most 192 wide, padded: (3, 48, 192)."""
    return _resize_48(img, 192, 192)


def load(config: OCRConfig | None = None) -> Pipeline:
    """Build a :class:`Pipeline` (the models loaded on their runtime) for ``config`` (default: RapidOCR's)."""
    return Pipeline(config or OCRConfig())


def read(image: Any, config: OCRConfig | Pipeline | None = None) -> OCRResult:
    """Read the text in ``image`` (a file path or an (H, W, 3) RGB uint8 array) with PP-OCRv6 small under ``config``
    (an :class:`OCRConfig`, a loaded :class:`Pipeline`, or None for RapidOCR 3.x's defaults). Returns an
    :class:`OCRResult`: lines with text, score and box; milliseconds per stage; the runtime and precision each
    model ran in. Loading the models takes a few hundred ms; for many images :func:`load` once. Notebook 18."""
    pipe = config if isinstance(config, Pipeline) else load(config)
    return pipe.read(image)


# ----------------------------------------------------------------------------- the reference


def rapidocr_reference(threads: int | None = None) -> Any:
    """RapidOCR's own pipeline with its shipped configuration (``rapidocr.RapidOCR()`` of the 3.x wheel: PP-OCRv6
    small on ONNX Runtime, the same model files as :func:`models_dir`), as a function image (RGB uint8 array) ->
    list of (box (4, 2), text). ``threads``: its ONNX Runtime intra-op threads (None: its default, every core).
    Only its log level is changed (errors only). The baseline of notebook 18's speed-ups."""
    models_dir()  # a clear error when rapidocr or its models are missing
    from rapidocr import RapidOCR

    params: dict[str, Any] = {"Global.log_level": "error"}
    if threads:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
    engine = RapidOCR(params=params)

    def run(image: np.ndarray) -> list[tuple[np.ndarray, str]]:
        out = engine(_as_bgr(image))  # a BGR array, as RapidOCR reads image files
        if getattr(out, "boxes", None) is None or getattr(out, "txts", None) is None:
            return []
        return [(np.asarray(box, np.float32), text) for box, text in zip(out.boxes, out.txts, strict=True)]

    run.engine = engine  # type: ignore[attr-defined]
    return run


def as_result(lines: Sequence[tuple[np.ndarray, str]], image_shape: tuple[int, int], ms: float = 0.0) -> OCRResult:
    """RapidOCR's output (:func:`rapidocr_reference`) as an :class:`OCRResult`, so :func:`score` can score it;
    its time is one number (``ms``), kept under "recognise" as RapidOCR does not split it the same way."""
    return OCRResult([OCRLine(t, 1.0, np.asarray(b, np.float32)) for b, t in lines], {"recognise": float(ms)},
                     {"all": {"runtime": "onnxruntime (rapidocr)", "precision": "fp32"}}, tuple(image_shape))
