"""INT8 copies of the OCR models: the detector and recogniser quantised by OpenVINO's NNCF, calibrated on rendered
text fed as the pipeline feeds it (:func:`quantize_models`, two recipes in :data:`INT8_RECIPES`), and where the
quantiser put its INT8 boundaries (:func:`fake_quantize_targets`). Introduced in notebook 18.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .pipeline import MODEL_FILES, _as_bgr, _clockwise, _crop, _normalise, _resize_48, models_dir

__all__ = ["INT8_RECIPES", "quantize_models", "fake_quantize_targets"]


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

    from ..runtimes.openvino import quantize_nncf

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
