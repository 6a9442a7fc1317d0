"""A real OCR application, readable stage by stage: PaddleOCR's PP-OCRv4 mobile models (the files that ship in
the ``rapidocr-onnxruntime`` wheel) run through :mod:`mclab.runtimes`, with every stage named and timed.

The pipeline follows the one RapidOCR and PaddleOCR run (their ``config.yaml`` values are the defaults of
:class:`OCRConfig`), written fresh so that each step can be read and changed:

1. *preprocess*: the page is scaled so the detector sees sides that are multiples of 32 (RapidOCR's default
   scales the **shorter** side up to 736 px; ``det_limit_type="max"`` keeps the image's own size under a limit),
   letterboxed when very flat, normalised to [-1, 1] in BGR order, as the models were trained;
2. *detect*: the DB detector turns the page into a text-probability map;
3. *db_post*: the map is thresholded and dilated, its contours become minimum-area rectangles (OpenCV), scored,
   and grown by the unclip ratio with pyclipper (offset distance = area × ratio / perimeter, from shapely);
4. *crop*: each box is cut out and rectified by a perspective warp;
5. *classify* (optional): a small network says whether a crop is upside down (then it is turned);
6. *recognise*: crops are resized to 48 px high, sorted by width, batched and padded to a common width;
7. *decode*: greedy CTC decoding (argmax per column, repeats and blanks dropped) with the character list stored
   in the recognition model's metadata.

``read(image, OCRConfig(...)) -> OCRResult``; :func:`load` builds a :class:`Pipeline` once for many images.
:func:`score` measures character error rate, word and exact-line accuracy (with 95 % CIs) and detection
precision / recall at IoU ≥ 0.5 against :func:`mclab.data.text_images`; :func:`rapidocr_reference` runs RapidOCR's
own pipeline for comparison; :func:`quantize_models` writes INT8 detector / recogniser files calibrated on rendered
text. Introduced in notebook 18 (``mclab ocr IMAGE``).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = [
    # configuration, results and the one verb
    "OCRConfig", "OCRLine", "OCRResult", "Pipeline", "load", "read", "STAGES", "STAGE_KIND", "MODEL_FILES",
    "models_dir",
    # accuracy
    "edit_distance", "Score", "score", "agreement",
    # the reference and INT8
    "rapidocr_reference", "as_result", "quantize_models", "INT8_RECIPES", "fake_quantize_targets",
    # the optimisation ladder (notebook 18)
    "Rung", "RungResult", "ladder", "climb", "cer_delta", "model_bytes",
]

MODEL_FILES = {"det": "ch_PP-OCRv4_det_infer.onnx", "rec": "ch_PP-OCRv4_rec_infer.onnx",
               "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx"}
# The stages in the order they run, and which part of the source material's split each belongs to
STAGES = ("preprocess", "detect", "db_post", "crop", "classify", "recognise", "decode")
STAGE_KIND = {"preprocess": "pre", "detect": "inference", "db_post": "post", "crop": "pre",
              "classify": "inference", "recognise": "inference", "decode": "post"}
_RUNTIMES = ("onnxruntime", "openvino")
_PRECISIONS = ("fp32", "bf16", "fp16", "int8", "default")
_ORT_LEVELS = ("disable", "basic", "extended", "all")


def models_dir() -> Path:
    """The folder of the PP-OCRv4 model files inside the installed ``rapidocr_onnxruntime`` package."""
    import importlib.util

    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.origin:
        raise ValueError("rapidocr-onnxruntime is not installed; it ships the OCR models (pip install "
                         "rapidocr-onnxruntime, pinned in constraints.txt)")
    return Path(spec.origin).parent / "models"


@dataclass(frozen=True)
class OCRConfig:
    """How to run the pipeline. The defaults are RapidOCR's own (its ``config.yaml``), so ``OCRConfig()`` is the
    application as shipped; each field below is one rung of notebook 18's optimisation ladder."""

    runtime: str = "onnxruntime"     # "onnxruntime" | "openvino" (mclab.runtimes)
    precision: str = "fp32"          # fp32 | bf16 | fp16 | int8 | default (OpenVINO's own choice: BF16 on AVX512-BF16)
    threads: int | None = None       # None: the runtime's default (every core), as RapidOCR leaves it
    ort_level: str = "all"           # ONNX Runtime graph optimisation: disable | basic | extended | all (RapidOCR: all)
    det_limit_side: int = 736        # RapidOCR: the detector's shorter side is scaled (up) to 736 px
    det_limit_type: str = "min"      # "min": shorter side >= limit (RapidOCR); "max": longer side <= limit
    use_cls: bool = True             # run the 0/180 degree direction classifier on every crop
    rec_batch: int = 6               # recognition crops per batch, sorted by width (RapidOCR: 6)
    rec_min_width: int = 320         # every batch is padded to at least this width (RapidOCR: 48x320)
    shape_step: int = 0              # 0: inputs sized exactly (RapidOCR); N: the detector's input and each recognition
    #                                  batch's width padded up to multiples of N px, so pages repeat a few input shapes
    det_thresh: float = 0.3          # probability above which a pixel is text
    box_thresh: float = 0.5          # mean probability a box needs to be kept
    unclip_ratio: float = 1.6        # how far a box grows (the DB paper's shrunk text kernels are grown back)
    text_score: float = 0.5          # lines read with a lower mean character probability are dropped
    det_model: str | None = None     # model files; None: the bundled ones (INT8: quantize_models()'s; None -> FP32)
    rec_model: str | None = None
    cls_model: str | None = None

    def __post_init__(self) -> None:
        if self.runtime not in _RUNTIMES:
            raise ValueError(f"runtime={self.runtime!r} is not one the OCR pipeline runs on; "
                             f"allowed: {list(_RUNTIMES)}")
        if self.precision not in _PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is unknown; allowed: {list(_PRECISIONS)}")
        if self.runtime == "onnxruntime" and self.precision not in ("fp32", "int8", "default"):
            raise ValueError(f"precision={self.precision!r} on onnxruntime: its CPU provider runs fp32 or int8 "
                             "(use runtime='openvino' for bf16 / fp16)")
        if self.threads is not None and (not isinstance(self.threads, int) or isinstance(self.threads, bool)
                                         or self.threads < 1):
            raise ValueError(f"threads={self.threads!r} must be an int >= 1 or None (the runtime's default)")
        if self.ort_level not in _ORT_LEVELS:
            raise ValueError(f"ort_level={self.ort_level!r}; allowed: {list(_ORT_LEVELS)}")
        if not isinstance(self.det_limit_side, int) or not 32 <= self.det_limit_side <= 4096:
            raise ValueError(f"det_limit_side={self.det_limit_side!r} must be an int in [32, 4096] px")
        if self.det_limit_type not in ("min", "max"):
            raise ValueError(f"det_limit_type={self.det_limit_type!r}; allowed: 'min' (shorter side >= limit) or "
                             "'max' (longer side <= limit)")
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
            raise ValueError(f"image={p!r} does not exist or is not a file")
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


def _det_size(h: int, w: int, limit: int, kind: str) -> tuple[int, int]:
    """(H, W) of the detector's input: scaled so the shorter side reaches ``limit`` ("min") or the longer side
    stays under it ("max"), then rounded to multiples of 32 (the network halves its input five times)."""
    if kind == "min":
        k = limit / min(h, w) if min(h, w) < limit else 1.0
    else:
        k = limit / max(h, w) if max(h, w) > limit else 1.0
    return max(32, int(round(int(h * k) / 32) * 32)), max(32, int(round(int(w * k) / 32) * 32))


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def _normalise(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1]."""
    return (img.astype(np.float32).transpose(2, 0, 1) * (2 / 255.0) - 1.0).astype(np.float32)


def _mini_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    """The minimum-area rectangle around ``contour`` as 4 corners (tl, tr, br, bl) and its shorter side (px)."""
    import cv2

    rect = cv2.minAreaRect(contour)
    pts = sorted(cv2.boxPoints(rect).tolist(), key=lambda p: p[0])
    left = sorted(pts[:2], key=lambda p: p[1])
    right = sorted(pts[2:], key=lambda p: p[1])
    return np.array([left[0], right[0], right[1], left[1]], np.float32), float(min(rect[1]))


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
        if np.linalg.norm(box[0] - box[1]) <= 3 or np.linalg.norm(box[0] - box[3]) <= 3:
            continue
        boxes.append(box)
    return _reading_order(np.array(boxes, np.float32).reshape(-1, 4, 2))


def _clockwise(pts: np.ndarray) -> np.ndarray:
    """Four points as top-left, top-right, bottom-right, bottom-left."""
    xs = pts[np.argsort(pts[:, 0], kind="stable")]
    tl, bl = xs[:2][np.argsort(xs[:2, 1], kind="stable")]
    tr, br = xs[2:][np.argsort(xs[2:, 1], kind="stable")]
    return np.array([tl, tr, br, bl], np.float32)


def _reading_order(boxes: np.ndarray) -> np.ndarray:
    """Top to bottom by the top-left corner; boxes whose tops are within 10 px are read left to right."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][0][1], boxes[i][0][0]))
    for i in range(len(order) - 1):  # one bubble pass per box, as PaddleOCR does
        for j in range(i, -1, -1):
            a, b = boxes[order[j]], boxes[order[j + 1]]
            if abs(b[0][1] - a[0][1]) < 10 and b[0][0] < a[0][0]:
                order[j], order[j + 1] = order[j + 1], order[j]
            else:
                break
    return boxes[order] if len(boxes) else boxes


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
    (class 0) dropped; returns (text, mean probability of the kept columns) per row."""
    idx, p = probs.argmax(axis=2), probs.max(axis=2)  # (B, T)
    keep = idx != 0
    keep[:, 1:] &= idx[:, 1:] != idx[:, :-1]
    out = []
    for i in range(len(idx)):
        sel = keep[i]
        out.append(("".join(charset[c] for c in idx[i][sel]), float(p[i][sel].mean()) if sel.any() else 0.0))
    return out


def _charset(path: str) -> list[str]:
    """The recognition model's classes: the blank, the characters in its ONNX metadata (``character``), a space."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    if "character" not in meta:
        raise ValueError(f"{path!r} has no 'character' list in its metadata; is it a PP-OCR recognition model?")
    return ["<blank>", *meta["character"].splitlines(), " "]


# ----------------------------------------------------------------------------- the pipeline


def _runner(path: str, cfg: OCRConfig) -> Any:
    """A dynamic-shape :class:`mclab.runtimes.Runner` for one model file under ``cfg``."""
    from . import runtimes

    if cfg.runtime == "onnxruntime" and cfg.ort_level != "all":  # a level other than ONNX Runtime's default
        from .runtimes.onnxrt import build

        return build(path, batch=1, threads=cfg.threads, input_shape=None, dynamic=True, level=cfg.ort_level)
    return runtimes.load(path, cfg.runtime, threads=cfg.threads, precision=cfg.precision, dynamic=True)


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
        fp = replace(cfg, precision="fp32" if cfg.precision == "int8" else cfg.precision, det_model=None,
                     rec_model=None)
        # with precision="int8", a model given no INT8 file runs the bundled one in FP32
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
        # RapidOCR's global step: sides kept within [30, 2000] px, then very flat images letterboxed
        k = min(1.0, 2000 / max(raw_h, raw_w))
        k = max(k, 30 / min(raw_h, raw_w)) if min(raw_h, raw_w) * k < 30 else k
        if k != 1.0:
            img = cv2.resize(img, (max(32, int(round(raw_w * k / 32)) * 32), max(32, int(round(raw_h * k / 32)) * 32)))
        sy, sx = raw_h / img.shape[0], raw_w / img.shape[1]
        pad = 0
        h, w = img.shape[:2]
        if h <= 30 or w / h > 8:
            pad = abs(max(int(w / 8), 30) * 2 - h) // 2
            img = cv2.copyMakeBorder(img, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        h, w = img.shape[:2]
        dh, dw = _det_size(h, w, cfg.det_limit_side, cfg.det_limit_type)
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
            if s < cfg.text_score:
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
        order = np.argsort([c.shape[1] / c.shape[0] for c in crops], kind="stable")
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
        order = np.argsort([c.shape[1] / c.shape[0] for c in crops], kind="stable")
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
    """Read the text in ``image`` (a file path or an (H, W, 3) RGB uint8 array) with PP-OCRv4 under ``config``
    (an :class:`OCRConfig`, a loaded :class:`Pipeline`, or None for RapidOCR's defaults). Returns an
    :class:`OCRResult`: lines with text, score and box; milliseconds per stage; the runtime and precision each
    model ran in. Loading the models takes a few hundred ms; for many images :func:`load` once. Notebook 18."""
    pipe = config if isinstance(config, Pipeline) else load(config)
    return pipe.read(image)


# ----------------------------------------------------------------------------- accuracy


def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions that turn ``a`` into ``b``."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _norm(s: str) -> str:
    return " ".join(s.split())


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two quadrilaterals (shapely polygons)."""
    from shapely.geometry import Polygon

    pa, pb = Polygon(a).buffer(0), Polygon(b).buffer(0)
    union = pa.union(pb).area
    return float(pa.intersection(pb).area / union) if union > 0 else 0.0


def _match(gt_boxes: np.ndarray, pred_boxes: Sequence[np.ndarray], min_iou: float = 0.5) -> dict[int, int]:
    """Greedy one-to-one matching of ground-truth to predicted boxes by IoU (highest first); {gt index: pred}."""
    pairs = sorted(((_iou(g, p), i, j) for i, g in enumerate(gt_boxes) for j, p in enumerate(pred_boxes)),
                   reverse=True)
    used_g: set[int] = set()
    used_p: set[int] = set()
    out = {}
    for iou, i, j in pairs:
        if iou < min_iou:
            break
        if i not in used_g and j not in used_p:
            out[i] = j
            used_g.add(i)
            used_p.add(j)
    return out


@dataclass
class Score:
    """Accuracy of a set of :class:`OCRResult` against ground truth (whitespace runs count as one space).
    Rates are fractions (0.03 = 3 %); each ``*_ci`` is a 95 % interval."""

    cer: float                       # character edit distance / ground-truth characters (missed lines: all wrong)
    cer_ci: tuple[float, float]      # bootstrap over lines
    word_acc: float                  # ground-truth words read exactly (in order: the longest common subsequence)
    word_acc_ci: tuple[float, float]  # Wilson
    line_acc: float                  # lines read exactly right
    line_acc_ci: tuple[float, float]  # Wilson
    det_precision: float             # predicted boxes that match a true line at IoU >= 0.5
    det_recall: float                # true lines matched by a predicted box at IoU >= 0.5
    n_lines: int
    n_chars: int
    per_line: list[dict[str, Any]] = field(repr=False, default_factory=list)  # truth, read, errors per line

    @property
    def space_error_share(self) -> float:
        """The share of the character errors that are spaces (a missed or an extra space between words): 1 - the
        errors left once spaces are taken out of both strings over all errors; 0 when there are none."""
        total = sum(r["errors"] for r in self.per_line)
        rest = sum(edit_distance(r["truth"].replace(" ", ""), r["read"].replace(" ", "")) for r in self.per_line)
        return 1 - rest / total if total else 0.0

    def worst(self, k: int = 8) -> list[dict[str, Any]]:
        """The ``k`` lines with the most character errors per character."""
        return sorted(self.per_line, key=lambda r: -r["errors"] / max(1, len(r["truth"])))[:k]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("per_line")
        return d


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def score(results: Sequence[OCRResult], truths: Sequence[Any], *, seed: int = 0) -> Score:
    """Score ``results`` against ``truths`` (:class:`mclab.data.TextImage`, one per result): each true line is
    matched to the predicted box with the highest IoU (≥ 0.5, one to one); a line without a match counts all
    its characters as errors. Returns a :class:`Score` (CER with a bootstrap CI over lines, word and exact-line
    accuracy with Wilson CIs, detection precision and recall)."""
    from .models import wilson_ci

    if len(results) != len(truths):
        raise ValueError(f"len(results)={len(results)} but len(truths)={len(truths)}; pass one result per image")
    rows, n_pred, n_hit = [], 0, 0
    for res, tr in zip(results, truths, strict=True):
        if not isinstance(res, OCRResult):
            raise TypeError(f"results hold a {type(res).__name__}; pass OCRResult objects from mclab.ocr.read")
        m = _match(np.asarray(tr.boxes), [ln.box for ln in res.lines])
        n_pred += len(res.lines)
        n_hit += len(m)
        for i, truth in enumerate(tr.lines):
            got = _norm(res.lines[m[i]].text) if i in m else ""
            t = _norm(truth)
            rows.append({"truth": t, "read": got, "errors": edit_distance(t, got), "found": i in m,
                         "words": len(t.split()), "words_ok": _lcs(t.split(), got.split())})
    if not rows:
        raise ValueError("truths hold no lines to score")
    err = np.array([r["errors"] for r in rows], float)
    n = np.array([len(r["truth"]) for r in rows], float)
    words, words_ok = sum(r["words"] for r in rows), sum(r["words_ok"] for r in rows)
    exact = sum(r["errors"] == 0 for r in rows)
    return Score(float(err.sum() / n.sum()), _ratio_ci(err, n, seed=seed, n_boot=1000),
                 words_ok / words, wilson_ci(words_ok, words), exact / len(rows), wilson_ci(exact, len(rows)),
                 n_hit / n_pred if n_pred else 0.0, n_hit / len(rows), len(rows), int(n.sum()), rows)


def agreement(ours: Sequence[OCRResult], theirs: Sequence[Sequence[tuple[np.ndarray, str]]], *,
              min_iou: float = 0.5) -> dict[str, Any]:
    """How often the kit's lines equal RapidOCR's (:func:`rapidocr_reference`) on the same images: each of
    RapidOCR's lines is matched to ours by IoU ≥ ``min_iou``; returns ``{"lines", "same_text", "rate",
    "box_max_px"}`` (rate = same text / RapidOCR's lines; box_max_px: the largest corner distance of a match)."""
    if len(ours) != len(theirs):
        raise ValueError(f"len(ours)={len(ours)} but len(theirs)={len(theirs)}; pass one entry per image")
    n = same = 0
    worst = 0.0
    for res, ref in zip(ours, theirs, strict=True):
        m = _match(np.array([b for b, _ in ref], np.float32).reshape(-1, 4, 2), [ln.box for ln in res.lines], min_iou)
        for i, (b, text) in enumerate(ref):
            n += 1
            if i in m:
                ln = res.lines[m[i]]
                same += ln.text == text
                worst = max(worst, float(np.abs(ln.box - np.asarray(b, np.float32)).max()))
    return {"lines": n, "same_text": same, "rate": same / n if n else float("nan"), "box_max_px": worst}


# ----------------------------------------------------------------------------- the reference and INT8


def rapidocr_reference(threads: int | None = None) -> Any:
    """RapidOCR's own pipeline with its shipped configuration (``rapidocr_onnxruntime.RapidOCR``), as a function
    image (RGB uint8 array) -> list of (box (4, 2), text). ``threads``: its ONNX Runtime intra-op threads (None:
    its default, every core). The baseline of notebook 18's speed-ups."""
    from rapidocr_onnxruntime import RapidOCR

    kw = {"intra_op_num_threads": threads} if threads else {}
    engine = RapidOCR(**kw)

    def run(image: np.ndarray) -> list[tuple[np.ndarray, str]]:
        out, _ = engine(_as_bgr(image))
        return [(np.asarray(box, np.float32), text) for box, text, _s in (out or [])]

    run.engine = engine  # type: ignore[attr-defined]
    return run


def as_result(lines: Sequence[tuple[np.ndarray, str]], image_shape: tuple[int, int], ms: float = 0.0) -> OCRResult:
    """RapidOCR's output (:func:`rapidocr_reference`) as an :class:`OCRResult`, so :func:`score` can score it;
    its time is one number (``ms``), kept under "recognise" as RapidOCR does not split it the same way."""
    return OCRResult([OCRLine(t, 1.0, np.asarray(b, np.float32)) for b, t in lines], {"recognise": float(ms)},
                     {"all": {"runtime": "onnxruntime (rapidocr)", "precision": "fp32"}}, tuple(image_shape))


INT8_RECIPES: dict[str, dict[str, Any]] = {
    # NNCF's rules for CNNs: a FakeQuantize before every op that can take INT8, element-wise ones included
    "nncf-cnn": {},
    # only what feeds dense convolutions and matrix products is quantised; depthwise convolutions stay float
    "convs-only": {"model_type": "transformer", "ignored_types": ("GroupConvolution",)},
}


def quantize_models(images: Sequence[Any], out_dir: str | os.PathLike, *, recipe: str = "convs-only",
                    models: Sequence[str] = ("det", "rec"), det_size: tuple[int, int] = (416, 608),
                    rec_width: int = 640, max_images: int = 16) -> dict[str, str]:
    """INT8 copies of the detector and/or the recogniser made by OpenVINO's quantiser (NNCF, via
    :func:`mclab.runtimes.openvino.quantize_nncf`: INT8 weights, INT8 activations with ranges from calibration),
    calibrated on ``images`` — rendered text (:func:`mclab.data.text_images`), never the test set — as the pipeline
    feeds them: pages resized to ``det_size`` (H, W) for the detector, the true lines cut out and resized to
    48 × ``rec_width`` (padded) for the recogniser. ``recipe`` (:data:`INT8_RECIPES`): ``"nncf-cnn"``, NNCF's
    defaults for CNNs, or ``"convs-only"``, which quantises only the inputs of dense convolutions and matrix
    products and leaves depthwise convolutions in float (notebook 18 measures both). NNCF calibrates at one size;
    the saved IR is then made dynamic again (any batch, height and width), so the pipeline can size its inputs
    per image. Returns ``{"det_model": xml, "rec_model": xml}`` (the keys of ``models``) for :class:`OCRConfig`
    (``runtime="openvino", precision="int8"``)."""
    import cv2
    import openvino as ov

    from .runtimes.openvino import quantize_nncf

    if not images:
        raise ValueError("images is empty; pass rendered text images (mclab.data.text_images) to calibrate on")
    if recipe not in INT8_RECIPES:
        raise ValueError(f"recipe={recipe!r}; allowed: {list(INT8_RECIPES)}")
    if isinstance(models, str) or not models or not set(models) <= {"det", "rec"}:
        raise ValueError(f"models={models!r} must name some of ('det', 'rec') (the classifier stays float)")
    if len(det_size) != 2 or any(not isinstance(d, int) or d < 32 or d % 32 for d in det_size):
        raise ValueError(f"det_size={det_size!r} must be (H, W) in multiples of 32 px")
    if not isinstance(rec_width, int) or not 32 <= rec_width <= 4096:
        raise ValueError(f"rec_width={rec_width!r} must be an int in [32, 4096] px")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    det_x, rec_x = [], []
    for ti in list(images)[:max_images]:
        img = _as_bgr(ti.image)
        det_x.append(_normalise(cv2.resize(img, (det_size[1], det_size[0])))[None])  # (1, 3, H, W)
        for b in ti.boxes:
            c = _crop(img, _clockwise(np.asarray(b, np.float32)))
            rec_x.append(_resize_48(c, rec_width, rec_width)[None])  # (1, 3, 48, rec_width)
    inputs = {"det": det_x, "rec": [np.concatenate(rec_x[i:i + 8]) for i in range(0, len(rec_x), 8)]}
    base, paths, core = models_dir(), {}, ov.Core()
    for key in ("det", "rec"):
        if key not in models:
            continue
        xml, fixed = str(out / f"{key}_int8_{recipe}.xml"), str(out / f"{key}_int8_{recipe}_calibrated.xml")
        quantize_nncf(str(base / MODEL_FILES[key]), fixed, inputs[key], **INT8_RECIPES[recipe])
        m = core.read_model(fixed)  # NNCF saved it at the calibration size: open every dim again
        m.reshape({m.inputs[0].get_any_name(): ov.PartialShape([-1, 3, -1, -1])})
        ov.save_model(m, xml, compress_to_fp16=False)  # a new file: the calibrated .bin is memory-mapped by m
        del m
        for f in (fixed, fixed[:-4] + ".bin"):
            os.remove(f)
        paths[f"{key}_model"] = xml
    return paths


def fake_quantize_targets(model_file: str | os.PathLike) -> dict[str, int]:
    """How many FakeQuantize ops of an INT8 IR feed each op type, e.g. ``{"Convolution": 22, "Multiply": 81}``:
    where the quantiser put INT8 boundaries. One before an element-wise op is a separate kernel at run time."""
    import openvino as ov

    out: dict[str, int] = {}
    for op in ov.Core().read_model(os.fspath(model_file)).get_ops():
        if op.get_type_name() == "FakeQuantize":
            for t in op.output(0).get_target_inputs():
                kind = t.get_node().get_type_name()
                out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


# ----------------------------------------------------------------------------- the optimisation ladder


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
    rungs = [Rung("RapidOCR defaults", {}, why="shorter side scaled up to 736 px, classifier on, ONNX Runtime"),
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
                              "a model with no INT8 file runs in FP32"))
        rungs.append(Rung("INT8 detector, convolutions only", {**ov8, "det_model": int8["det_model"]},
                          why="the same recipe for the detector"))
    rungs.append(Rung("recognition batched by width", {"rec_batch": 64, "rec_min_width": 0},
                      why="one batch per page at the widest crop's own width instead of 6 padded to >= 320 px"))
    rungs.append(Rung("no direction classifier", {"use_cls": False}, why="text known to be upright"))
    return rungs


@dataclass
class RungResult:
    """A rung measured: accuracy on the held-out set, and its speed-up over the configuration it was applied to (an
    interleaved A/B with a 95 % CI; ``ms_per_doc`` = the median time of one page at this rung). ``kept``: the
    climb adopted it (faster, within the CER budget), so the rungs after it build on it."""

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

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cer": self.score.cer, "cer_ci": list(self.score.cer_ci),
                "line_acc": self.score.line_acc, "ms_per_doc": self.ms_per_doc, "speedup": self.speedup,
                "cumulative": self.cumulative, "kept": self.kept,
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
    after ``warmup`` untimed passes), and keep the rung when it is faster (median ratio > 1) and its CER is at most
    ``cer_budget_pts`` points above the first rung's. A rung that is not kept is reported and left out, so a slower
    precision does not drag the rungs after it down. ``cumulative`` multiplies the kept steps' interleaved ratios
    (a drifting machine does not move them); the last kept rung is the best variant. Returns one
    :class:`RungResult` per rung."""
    from . import bench

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
        cfg = replace(base_cfg, **rung.changes)
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
        within = (sc.cer - first_cer) * 100 <= cer_budget_pts
        if sp is None:
            kept, cum = True, 1.0
        elif rung.before is not None:  # timed against another baseline: same speed as the base, kept if accurate
            kept, cum = within and sp > 1, base_cum
        else:
            kept, cum = within and sp > 1, base_cum * sp
        res = RungResult(rung.name, cfg, sc, ms, sp, ci, stages, pipe.models, rung.why, cum, kept)
        if progress:
            print(f"{rung.name:42s} CER {sc.cer:6.2%}  {ms:8.1f} ms/page"
                  + (f"  x{sp:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] vs the best so far, x{cum:.2f} vs the first" if sp
                     else "") + ("" if kept else "  (not kept)"), flush=True)
        out.append(res)
        if kept:
            base, base_cfg, base_cum = pipe, cfg, cum
    return out


def cer_delta(a: Score, b: Score, *, seed: int = 0, n_boot: int = 2000) -> tuple[float, float, float]:
    """CER of ``b`` minus CER of ``a`` in points (100 × fraction) with a paired bootstrap 95 % CI over lines; both
    scores must come from the same ground truth in the same order. Returns (delta, low, high)."""
    if [r["truth"] for r in a.per_line] != [r["truth"] for r in b.per_line]:
        raise ValueError("a and b were scored on different ground truth; score both on the same images")
    ea = np.array([r["errors"] for r in a.per_line], float)
    eb = np.array([r["errors"] for r in b.per_line], float)
    n = np.array([len(r["truth"]) for r in a.per_line], float)
    lo, hi = _ratio_ci((eb - ea) * 100, n, seed=seed, n_boot=n_boot)
    return float((eb.sum() - ea.sum()) / n.sum() * 100), lo, hi


def _ratio_ci(num: np.ndarray, den: np.ndarray, *, seed: int, n_boot: int) -> tuple[float, float]:
    """95 % bootstrap interval of sum(num) / sum(den), resampling lines (the pairs num[i], den[i]) with
    replacement: the CI of a CER, or of a CER difference when ``num`` holds per-line error differences."""
    rng = np.random.default_rng(seed)
    boots = [num[i].sum() / den[i].sum() for i in (rng.integers(0, len(den), len(den)) for _ in range(n_boot))]
    return float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def model_bytes(pipe: Pipeline) -> int:
    """Bytes on disk of the model files ``pipe`` runs (an OpenVINO ``.xml`` counts its ``.bin``)."""
    total = 0
    for k in pipe.runners:
        f = pipe.files[k]
        total += os.path.getsize(f) + (os.path.getsize(f[:-4] + ".bin") if f.endswith(".xml") else 0)
    return total
