"""mclab.cli: the `mclab` command, run as a fresh process (``python -m mclab.cli`` / ``python -m mclab``).

Each subcommand prints JSON with ``--json``; bad input ends with a one-line message on stderr and exit
status 2, never a traceback. The error cases call ``cli.main`` in this process (:func:`_mclab_here`): a fresh
process per case paid seconds of imports each; the fresh-process path, ``sys.exit(main())``, is exercised by the
other tests. ``mclab notebooks`` is tested beside the notebooks (tests/test_notebooks.py)."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import pytest
import torch

from mclab import cli
from mclab.runtimes import export


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """A small conv net (3x32x32 input) exported by the kit with a dynamic batch dimension: its path."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 4))
    return export.export_onnx(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx",
                              export.ExportConfig(input_shape=(3, 32, 32), verify=False)).path


def _mclab(*args, module="mclab.cli"):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True)


def _mclab_here(*args) -> subprocess.CompletedProcess:
    """``mclab ARGS`` through ``cli.main`` in this process: its exit status and what it printed, as ``_mclab``
    returns them (the process's thread count restored)."""
    out, err, threads = io.StringIO(), io.StringIO(), torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    except SystemExit as e:  # argparse's own errors exit, as they do from the command line
        code = e.code
    finally:
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["mclab", *args], code, out.getvalue(), err.getvalue())


# ----------------------------------------------------------------------------- bench and ab


def test_cli_bench_json(tiny_onnx):
    r = _mclab("bench", str(tiny_onnx), "--batch", "2", "--threads", "1", "--iters", "30", "--min-time", "0",
               "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_per_s", "samples", "flags"} <= set(d)
    assert d["samples"] == 30 and d["runtime"] == "onnxruntime" and d["input_shape"] == [2, 3, 32, 32]
    assert d["p50_ms"] <= d["p90_ms"] <= d["p99_ms"] and "p99_few_samples" in d["flags"]
    assert d["throughput_per_s"] == pytest.approx(2e3 / d["mean_ms"])


def test_cli_bench_openvino_int8_says_how_it_was_quantised(tiny_onnx):
    r = _mclab("bench", str(tiny_onnx), "--runtime", "openvino", "--precision", "int8", "--threads", "1",
               "--iters", "5", "--min-time", "0", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["precision"] == "int8" and d["requested_precision"] == "int8"
    assert d["info"]["quantiser"].startswith("nncf") and d["info"]["calibration"]["data"].startswith("random")
    assert d["info"]["int8_layers"]["int8"] >= 1 and "fp32_layers" in d["info"]["int8_layers"]


@pytest.mark.parametrize("args, match", [
    (["resnet19"], "not a torchvision classifier"),
    (["resnet18", "--runtime", "openvino-nope"], "unknown; available runtimes"),
    (["resnet18", "--input-shape", "3,7"], "does not fit resnet18"),
    (["resnet18", "--iters", "0"], "min_iters=0"),
    (["resnet18", "--input-shape", "a,b"], "not a shape"),
])
def test_cli_bench_errors_are_one_line(args, match):
    r = _mclab_here("bench", *args)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr


def test_cli_ab_json_and_errors(tiny_onnx, tmp_path):
    r = _mclab("ab", str(tiny_onnx), str(tiny_onnx), "--threads", "1", "--rounds", "3", "--calls", "2", "--json",
               module="mclab")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["runtime"] == "onnxruntime" and d["rounds"] == 3 and len(d["ratios"]) == 3
    assert d["input_shape"] == [1, 3, 32, 32]
    assert d["speedup_b_vs_a"] == pytest.approx(1 / d["ratio_b_over_a"]) and "kernels" not in d
    other = tmp_path / "other.onnx"
    torch.onnx.export(torch.nn.Linear(5, 2).eval(), (torch.randn(1, 5),), str(other), dynamo=False)
    r = _mclab_here("ab", str(tiny_onnx), str(other))
    assert r.returncode == 2 and "different inputs" in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- flops and doctor


def test_cli_flops_json_and_errors():
    r = _mclab("flops", "resnet18", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["macs"] / 1e9 == pytest.approx(1.814, rel=0.01)
    assert d["flops"] == 2 * d["macs"] and d["params"] == 11_689_512 and d["input_shape"] == [1, 3, 224, 224]
    r = _mclab_here("flops", "resnet5")
    assert r.returncode == 2 and "resnet50" in r.stderr and "Traceback" not in r.stderr


def test_cli_doctor_json():
    # two runtimes: every probe is a fresh interpreter (seconds each); all of them run in notebook 00 and tests/test_hw
    r = _mclab("doctor", "--json", "--runtimes", "onnxruntime,tensorrt")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"python", "cpu", "gpus", "runtimes", "verdicts", "packages"} <= set(d)
    assert [r["name"] for r in d["runtimes"]] == ["onnxruntime", "tensorrt"] and d["runtimes"][0]["available"]
    assert d["packages"]["torch"].startswith("2.14.1")
    r = _mclab_here("doctor", "--runtimes", "onnxruntime,tflite-nope")
    assert r.returncode == 2 and "tflite-nope" in r.stderr and "known runtimes" in r.stderr


@pytest.fixture(scope="module")
def text_png(tmp_path_factory):
    pytest.importorskip("rapidocr")
    import cv2

    from mclab import data

    (t,) = data.text_images(1, 5, kind="line", distortion=0)
    path = tmp_path_factory.mktemp("ocr") / "line.png"
    cv2.imwrite(str(path), t.image[..., ::-1])
    return str(path), t.lines[0]


def test_cli_ocr_reads_lines_with_stage_timings(text_png):
    path, truth = text_png
    r = _mclab("ocr", path, "--threads", "1", "--det-max-side", "960", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    (img,) = d["images"]
    assert [ln["text"] for ln in img["lines"]] == [truth] and len(img["lines"][0]["box"]) == 4
    assert set(img["stages_ms"]) == {"preprocess", "detect", "db_post", "crop", "classify", "recognise", "decode"}
    assert d["models"]["rec"]["runtime"] == "onnxruntime" and d["config"]["det_limit_side"] == 960
    assert d["config"]["det_max_scale"] == 3.0  # the kit's one change to RapidOCR's defaults
    assert d["models"]["rec"]["file"] == "PP-OCRv6_rec_small.onnx" and d["source"]["package"] == "rapidocr"
    r = _mclab("ocr", path, "--threads", "1", "--no-cls")  # the defaults: RapidOCR's sizing, enlarging at most 3x
    assert r.returncode == 0 and truth in r.stdout and "stages:" in r.stdout and "cls" not in r.stdout
    assert "PP-OCRv6 small" in r.stdout


@pytest.mark.parametrize("args, match", [
    (["missing.png"], "does not exist"),
    (["--runtime", "tflite", "IMG"], "runtime='tflite'"),
    (["--precision", "int8", "IMG"], "INT8 model files"),
    (["--threads", "0", "IMG"], "threads=0"),
    (["--det-max-scale", "0.5", "IMG"], "det_max_scale=0.5"),
])
def test_cli_ocr_errors_are_one_line(text_png, tmp_path, args, match):
    args = [text_png[0] if a == "IMG" else str(tmp_path / a) if a.endswith(".png") else a for a in args]
    r = _mclab_here("ocr", *args)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr


def test_cli_ocr_unreadable_and_empty_images(tmp_path):
    pytest.importorskip("rapidocr")
    import cv2
    import numpy as np

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.zeros((1, 1, 3), np.uint8))
    zero = tmp_path / "zero.png"
    zero.write_bytes(b"")
    folder = tmp_path / "pages"
    folder.mkdir()
    for path, match in ((bad, "not an image"), (empty, "empty"), (zero, "empty file"), (folder, "is a directory")):
        r = _mclab_here("ocr", str(path))
        assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr
