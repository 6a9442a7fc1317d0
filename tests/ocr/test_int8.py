"""mclab.ocr.int8: an INT8 recogniser calibrated on rendered text, and the quantiser's bad input."""
from __future__ import annotations

from dataclasses import replace

import pytest

pytest.importorskip("rapidocr")

from mclab import ocr  # noqa: E402


def test_an_int8_recogniser_alone_runs_beside_an_fp32_detector(fast, lines, tmp_path):
    files = ocr.quantize_models(lines[:2], tmp_path, models=("rec",), rec_width=320)
    assert set(files) == {"rec_model"} and files["rec_model"].endswith("rec_int8_convs-only.xml")
    where = ocr.fake_quantize_targets(files["rec_model"])  # read back from the IR: dense convs and matmuls only
    assert where.get("Convolution", 0) >= 10 and "GroupConvolution" not in where and "Multiply" not in where
    pipe = ocr.load(replace(fast, runtime="openvino", precision="int8", **files))
    assert pipe.models["det"]["precision"] == "fp32" and pipe.models["rec"]["precision"] == "int8"
    res = [pipe.read(x.image) for x in lines[2:]]
    assert ocr.score(res, lines[2:]).cer < 0.2  # calibrated on two other lines, it still reads
    # on the ladder, the INT8 rung leaves the detector at the precision it ran in before (here OpenVINO's default)
    rungs = [ocr.Rung("OpenVINO default", {**{k: getattr(fast, k) for k in ("det_limit_type", "det_limit_side",
                                                                           "threads")},
                                           "runtime": "openvino", "precision": "default"}),
             ocr.Rung("INT8 recogniser", {"precision": "int8", **files})]
    base, r8 = ocr.climb(rungs, lines[2:], timing_docs=1, rounds=2, warmup=0, progress=False)
    assert r8.config.float_precision == "default" and r8.models["rec"]["precision"] == "int8"
    assert r8.models["det"]["precision"] == base.models["det"]["precision"]


def test_quantising_rejects_bad_input(lines):
    with pytest.raises(ValueError, match="images is empty"):
        ocr.quantize_models([], "/tmp/x")
    with pytest.raises(ValueError, match="det_size"):
        ocr.quantize_models(lines, "/tmp/x", det_size=(100, 100))
    with pytest.raises(ValueError, match="recipe='int4'"):
        ocr.quantize_models(lines, "/tmp/x", recipe="int4")
    with pytest.raises(ValueError, match="models='rec'"):
        ocr.quantize_models(lines, "/tmp/x", models="rec")
    with pytest.raises(ValueError, match="rec_width=8"):
        ocr.quantize_models(lines, "/tmp/x", rec_width=8)
