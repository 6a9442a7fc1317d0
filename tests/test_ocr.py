"""mclab.ocr: the PP-OCRv4 pipeline against RapidOCR's own, its primitives, its scores and its bad input."""
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("rapidocr_onnxruntime")

from mclab import data, ocr  # noqa: E402

FAST = ocr.OCRConfig(det_limit_type="max", det_limit_side=960, threads=2)


@pytest.fixture(scope="module")
def pipe():
    return ocr.load(FAST)


@pytest.fixture(scope="module")
def lines():
    return data.text_images(3, 5, kind="line", distortion=0)


# ----------------------------------------------------------------------------- the pipeline


def test_reads_clean_lines_with_named_timed_stages(pipe, lines):
    results = [pipe.read(x.image) for x in lines]
    s = ocr.score(results, lines)
    assert s.cer <= 0.05 and s.det_recall == 1.0
    r = results[0]
    assert tuple(r.stages_ms) == ocr.STAGES and all(v >= 0 for v in r.stages_ms.values())
    assert r.total_ms == pytest.approx(sum(r.split_ms.values()))
    assert r.models["det"]["runtime"] == "onnxruntime" and r.models["rec"]["precision"] == "fp32"
    assert r.image_shape == lines[0].image.shape[:2] and max(r.det_input) <= 960
    assert r.lines[0].box.shape == (4, 2) and 0 <= r.lines[0].score <= 1
    d = r.as_dict()
    assert d["lines"][0]["text"] == r.lines[0].text and set(d["split_ms"]) == {"pre", "inference", "post"}


def test_agrees_with_rapidocr_text_and_boxes():
    docs = data.text_images(2, 11)
    ref = ocr.rapidocr_reference(threads=2)
    ours = [ocr.read(d.image, ocr.OCRConfig(threads=2)) for d in docs]
    agree = ocr.agreement(ours, [ref(d.image) for d in docs])
    assert agree["lines"] >= 6 and agree["rate"] == 1.0 and agree["box_max_px"] <= 2


def test_reads_a_file_path_and_grey_images(pipe, lines, tmp_path):
    import cv2

    f = tmp_path / "line.png"
    cv2.imwrite(str(f), lines[0].image[..., ::-1])
    assert pipe.read(str(f)).texts == pipe.read(lines[0].image).texts
    grey = lines[0].image.mean(axis=2).astype(np.uint8)
    assert len(pipe.read(grey).lines) == 1


def test_a_blank_page_reads_nothing(pipe):
    r = pipe.read(np.full((200, 300, 3), 255, np.uint8))
    assert r.lines == [] and r.stages_ms["recognise"] == 0


def test_openvino_runs_the_same_text(lines):
    from mclab import runtimes

    if not runtimes.available("openvino")[0]:
        pytest.skip("openvino is not installed")
    ov = ocr.load(ocr.OCRConfig(runtime="openvino", det_limit_type="max", det_limit_side=960, threads=2))
    ort = ocr.load(FAST)
    assert [ov.read(x.image).texts for x in lines] == [ort.read(x.image).texts for x in lines]
    assert ov.models["rec"]["runtime"] == "openvino" and ov.models["rec"]["precision"] == "fp32"


# ----------------------------------------------------------------------------- primitives


def test_fixed_shapes_pad_inputs_and_read_the_same(pipe, lines):
    padded = ocr.load(replace(FAST, shape_step=128))
    seen = []
    for k in ("det", "rec"):  # record what each network is given (the classifier keeps its own 48 x 192)
        r = padded.runners[k]
        r.run = (lambda run: lambda x: seen.append(x.shape) or run(x))(r.run)
    for x in lines:
        a, b = pipe.read(x.image), padded.read(x.image)
        assert b.det_input == a.det_input and len(b.texts) == len(a.texts)  # det_input: the size before padding
        # zero columns nudge both networks (a space may come or go, a box edge move by a few px), nothing more
        assert all(ocr.edit_distance(ta, tb) <= 2 for ta, tb in zip(a.texts, b.texts, strict=True))
        assert all(np.abs(la.box - lb.box).max() <= 4 for la, lb in zip(a.lines, b.lines, strict=True))
    assert seen and all(h % 128 == 0 and w % 128 == 0 for *_, h, w in seen if h != 48)  # the detector's input
    assert all(w % 128 == 0 for *_, h, w in seen if h == 48)  # recognition batches (48 px high)


def test_graph_optimisation_level_reaches_onnx_runtime(pipe):
    off = ocr.load(replace(FAST, ort_level="disable"))
    assert {r.info["graph_optimization"] for r in off.runners.values()} == {"disable"}
    assert pipe.runners["rec"].info["graph_optimization"] == "all"


def test_detector_size_rounds_to_32_and_follows_the_limit_type():
    assert ocr._det_size(60, 500, 736, "min") == (736, 6144)  # the shorter side scaled up, as RapidOCR does
    assert ocr._det_size(400, 600, 960, "max") == (384, 608)  # the page's own size (round() halves to even)
    assert ocr._det_size(2000, 1000, 960, "max") == (960, 480)


def test_ctc_greedy_merges_repeats_and_drops_blanks():
    charset = ["<blank>", "a", "b"]
    cols = [1, 1, 0, 1, 2, 2, 0]  # a a _ a b b _  ->  "aab"
    probs = np.full((1, len(cols), 3), 0.1, np.float32)
    probs[0, np.arange(len(cols)), cols] = 0.8
    assert ocr._ctc_greedy(probs, charset) == [("aab", pytest.approx(0.8))]
    assert ocr._ctc_greedy(np.eye(3, dtype=np.float32)[[0, 0]][None], charset) == [("", 0.0)]


def test_charset_is_read_from_the_model():
    cs = ocr._charset(str(ocr.models_dir() / ocr.MODEL_FILES["rec"]))
    assert cs[0] == "<blank>" and cs[-1] == " " and len(cs) == 6625 and "A" in cs and "中" in cs


@pytest.mark.parametrize(("a", "b", "d"), [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "abc", 0),
                                           ("traverse io jump", "traverse iojump", 1)])
def test_edit_distance(a, b, d):
    assert ocr.edit_distance(a, b) == d == ocr.edit_distance(b, a)


def test_score_counts_missed_lines_as_all_wrong(lines):
    truth = lines[0]
    perfect = ocr.OCRResult([ocr.OCRLine(truth.lines[0], 1.0, truth.boxes[0])], {}, {}, truth.image.shape[:2])
    assert ocr.score([perfect], [truth]).cer == 0 and ocr.score([perfect], [truth]).line_acc == 1
    missed = ocr.OCRResult([], {}, {}, truth.image.shape[:2])
    s = ocr.score([missed], [truth])
    assert s.cer == 1 and s.det_recall == 0 and s.word_acc == 0
    shifted = ocr.OCRResult([ocr.OCRLine(truth.lines[0], 1.0, truth.boxes[0] + [0, 500])], {}, {}, (1, 1))
    assert ocr.score([shifted], [truth]).det_precision == 0  # a box elsewhere matches nothing
    d, lo, hi = ocr.cer_delta(ocr.score([perfect], [truth]), s)
    assert d == pytest.approx(100) and lo <= d <= hi
    t = truth.lines[0]
    assert " " in t
    glued = ocr.OCRResult([ocr.OCRLine(t.replace(" ", ""), 1.0, truth.boxes[0])], {}, {}, truth.image.shape[:2])
    typo = ocr.OCRResult([ocr.OCRLine("#" + t[1:], 1.0, truth.boxes[0])], {}, {}, truth.image.shape[:2])
    assert ocr.score([glued], [truth]).space_error_share == 1 and ocr.score([glued], [truth]).cer > 0
    assert ocr.score([typo], [truth]).space_error_share == 0 and ocr.score([perfect], [truth]).space_error_share == 0


def test_ladder_rungs_change_one_thing_each():
    rungs = ocr.ladder(threads=2)
    names = [r.name for r in rungs]
    assert names[0] == "RapidOCR defaults" and rungs[0].changes == {}
    assert rungs[1].changes == {"det_limit_type": "max", "det_limit_side": 960} and rungs[2].changes == {"threads": 2}
    assert rungs[3].before == {"ort_level": "disable"} and rungs[3].changes == {"ort_level": "all"}
    assert rungs[4].changes["runtime"] == "openvino" and rungs[5].changes["precision"] == "default"
    assert not any(n.startswith("INT8") for n in names) and rungs[-1].changes == {"use_cls": False}
    with8 = [r.name for r in ocr.ladder(threads=2, int8={"det_model": "d.xml", "rec_model": "r.xml"},
                                        int8_naive={"det_model": "dn.xml", "rec_model": "rn.xml"})]
    assert with8[6:9] == ["INT8, NNCF's CNN rules", "INT8 recogniser, convolutions only",
                          "INT8 detector, convolutions only"]
    with pytest.raises(ValueError, match=r"int8 lacks \['det_model'\]"):
        ocr.ladder(threads=2, int8={"rec_model": "r.xml"})
    with pytest.raises(ValueError, match="threads"):
        ocr.ladder(threads=0)
    with pytest.raises(ValueError, match="not OCRConfig fields"):
        ocr.Rung("typo", {"thread": 2})


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"runtime": "tflite"}, "runtime='tflite'"),
    ({"precision": "int4"}, "precision='int4'"),
    ({"precision": "bf16"}, "onnxruntime"),
    ({"threads": 0}, "threads=0"),
    ({"ort_level": "max"}, "ort_level"),
    ({"det_limit_side": 10}, "det_limit_side=10"),
    ({"det_limit_type": "both"}, "det_limit_type"),
    ({"rec_batch": 0}, "rec_batch=0"),
    ({"unclip_ratio": 0}, "unclip_ratio"),
    ({"text_score": 1.5}, "text_score=1.5"),
    ({"det_model": "/no/such.onnx"}, "det_model"),
    ({"runtime": "openvino", "precision": "int8"}, "INT8 model files"),
    ({"shape_step": 100}, "shape_step=100 must be 0"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ocr.OCRConfig(**kwargs)


def test_bad_images_get_clear_errors(pipe, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        pipe.read(str(tmp_path / "missing.png"))
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="not an image"):
        pipe.read(str(bad))
    with pytest.raises(ValueError, match="empty"):
        pipe.read(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        pipe.read(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        pipe.read(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(TypeError, match="file path or a numpy"):
        pipe.read([1, 2, 3])
    with pytest.raises(TypeError, match="OCRConfig"):
        ocr.Pipeline({"runtime": "onnxruntime"})


def test_scoring_and_quantising_reject_bad_input(lines):
    with pytest.raises(ValueError, match="one result per image"):
        ocr.score([], lines)
    with pytest.raises(TypeError, match="OCRResult"):
        ocr.score(["text"], lines[:1])
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


def test_an_int8_recogniser_alone_runs_beside_an_fp32_detector(lines, tmp_path):
    files = ocr.quantize_models(lines[:2], tmp_path, models=("rec",), rec_width=320)
    assert set(files) == {"rec_model"} and files["rec_model"].endswith("rec_int8_convs-only.xml")
    where = ocr.fake_quantize_targets(files["rec_model"])  # read back from the IR: dense convs and matmuls only
    assert where.get("Convolution", 0) >= 10 and "GroupConvolution" not in where and "Multiply" not in where
    pipe = ocr.load(replace(FAST, runtime="openvino", precision="int8", **files))
    assert pipe.models["det"]["precision"] == "fp32" and pipe.models["rec"]["precision"] == "int8"
    res = [pipe.read(x.image) for x in lines[2:]]
    assert ocr.score(res, lines[2:]).cer < 0.2  # calibrated on two other lines, it still reads


def test_climb_keeps_what_pays_and_chains_its_ratios(lines):
    rungs = [ocr.Rung("one thread", {"det_limit_type": "max", "det_limit_side": 960, "threads": 1}),
             ocr.Rung("two threads", {"threads": 2}),
             ocr.Rung("graph optimisation", {}, before={"ort_level": "disable"}),
             ocr.Rung("keep no box", {"det_thresh": 0.99, "box_thresh": 0.99})]  # fast, but reads nothing
    res = ocr.climb(rungs, lines[:2], timing_docs=1, rounds=2, warmup=0, progress=False)
    assert [r.name for r in res] == ["one thread", "two threads", "graph optimisation", "keep no box"]
    assert res[0].speedup is None and res[0].cumulative == 1 and res[0].ms_per_doc > 0 and res[0].kept
    two = res[1]
    assert two.kept == (two.speedup > 1) and two.speedup_ci[0] <= two.speedup
    assert two.cumulative == pytest.approx(two.speedup)  # times faster than the first, kept or not
    base_cum = two.cumulative if two.kept else 1.0
    assert res[2].cumulative == base_cum  # timed against another baseline: not a step of the chain
    blind = res[3]
    assert blind.score.cer > 0.5 and not blind.kept and blind.config.box_thresh == 0.99
    assert all(r.score.n_lines == 2 for r in res) and set(two.stages_ms) == set(ocr.STAGES)
    assert two.as_dict()["precision"] == {"det": "fp32", "rec": "fp32", "cls": "fp32"} and "kept" in two.as_dict()
    with pytest.raises(ValueError, match="timing_docs"):
        ocr.climb(rungs, lines[:2], timing_docs=3)
    with pytest.raises(ValueError, match="cer_budget_pts"):
        ocr.climb(rungs, lines[:2], cer_budget_pts=-1)
