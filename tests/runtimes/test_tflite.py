"""mclab.runtimes.tflite: a PyTorch CNN rebuilt in Keras and converted to TensorFlow Lite in its four modes.

References are PyTorch eager outputs of the same weights on the same inputs; FP32 paths must agree to
1e-4 max absolute error, reduced precisions must differ measurably and say so."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from torch import nn

from mclab import runtimes
from mclab.runtimes import tflite as rtfl

SHAPE = (3, 16, 16)  # the toy CNN's input (conftest)


@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory, toy_cnn):
    """The toy CNN in Keras and in TFLite's four modes (int8 calibrated on random inputs)."""
    m = toy_cnn()
    km = rtfl.to_keras(m, (1, *SHAPE))
    rng = np.random.default_rng(1)
    rep = [rng.standard_normal((1, *SHAPE[1:], SHAPE[0]), dtype=np.float32) for _ in range(16)]
    d = tmp_path_factory.mktemp("tflite")
    files = {mode: rtfl.convert(km, d / f"toy_{mode}.tflite", rtfl.TFLiteConfig(mode, representative=rep))
             for mode in rtfl.MODES}
    files["int8-io"] = rtfl.convert(km, d / "toy_int8io.tflite", rtfl.TFLiteConfig("int8", rep, io_dtype="int8"))
    return m, km, files


def test_keras_twin_matches_pytorch(tflite_files, x, reference):
    m, km, _ = tflite_files
    nhwc = x[:1].transpose(0, 2, 3, 1)
    assert np.abs(km(nhwc).numpy() - reference(m, x[:1])).max() < 1e-4


def test_tflite_modes_precision_size_and_error(tflite_files, x, reference):
    m, _, files = tflite_files
    ref = reference(m, x[:1])
    got = {}
    for mode in rtfl.MODES:
        r = rtfl.runner_for_file(files[mode], threads=1)
        got[mode] = (r.precision, r.size_bytes, float(np.abs(r.run(x[:1]) - ref).max()))
    assert got["fp32"][0] == "fp32" and got["fp32"][2] < 1e-4
    assert got["fp16"][0] == "fp32 (fp16 weights)" and 1e-6 < got["fp16"][2] < 0.05
    assert got["dynamic"][0] == "int8-dynamic" and got["int8"][0] == "int8"
    assert got["int8"][2] > 1e-3, "full INT8 cannot be bit-exact with FP32"
    # fp16 halves the weights, int8 quarters them; tiny models keep a fixed overhead, hence the slack
    assert got["fp16"][1] < 0.75 * got["fp32"][1] and got["int8"][1] < 0.6 * got["fp32"][1]


def test_tflite_int8_io_takes_int8(tflite_files, x, reference):
    m, _, files = tflite_files
    r = rtfl.runner_for_file(files["int8-io"])
    assert r.input_dtype == "int8" and r.info["output"]["dtype"] == "int8"
    qi, qo = r.info["input"], r.info["output"]
    xq = np.clip(np.round(x[:1] / qi["scale"]) + qi["zero_point"], -128, 127).astype(np.int8)
    y = (r.run(xq).astype(np.float32) - qo["zero_point"]) * qo["scale"]
    ref = reference(m, x[:1])
    assert np.abs(y - ref).max() < 0.2 * np.abs(ref).max()
    with pytest.raises(ValueError, match="int8"):
        r.run(x[:1])  # float input to an int8 model


def test_tflite_through_load_and_xnnpack_off(tflite_files, x, reference):
    m, _, files = tflite_files
    r = runtimes.load(files["fp32"], "tflite", threads=1)
    assert r.input_shape == (1, *SHAPE)
    plain = rtfl.runner_for_file(files["fp32"], xnnpack=False)
    assert np.abs(plain.run(x[:1]) - r.run(x[:1])).max() < 1e-4
    with pytest.raises(ValueError, match="does not match"):
        runtimes.load(files["int8"], "tflite", precision="fp32")
    assert runtimes.load(files["int8"], "tflite", precision="int8").precision == "int8"
    built = runtimes.load(m, "tflite", batch=2, input_shape=SHAPE)
    assert np.abs(built.run(x) - reference(m, x)).max() < 1e-4


def test_tflite_bad_inputs(tmp_path, tflite_files, x):
    _, _, files = tflite_files
    r = rtfl.runner_for_file(files["fp32"])
    with pytest.raises(ValueError, match="shape"):
        r.run(x)  # batch 2 into a batch-1 file
    with pytest.raises(ValueError, match="float32"):
        r.run(x[:1].astype(np.float64))
    bad = tmp_path / "cut.tflite"
    bad.write_bytes(open(files["fp32"], "rb").read()[:500])
    with pytest.raises(ValueError, match="cannot load"):
        rtfl.runner_for_file(str(bad))
    with pytest.raises(ValueError, match="GELU"):
        rtfl.to_keras(nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU()), (1, *SHAPE))
    with pytest.raises(ValueError, match="mode="):
        rtfl.TFLiteConfig("int4")
    with pytest.raises(ValueError, match="representative"):
        rtfl.TFLiteConfig("int8")


def test_tflite_imported_first_does_not_crash_torchvision_later():
    """`mclab bench resnet18 --runtime tflite` checks the runtime (importing TensorFlow) before it builds the
    torchvision model, whose import loads Triton; Triton loaded after TensorFlow crashes the process unless
    the runtime imports TensorFlow the safe way (tflite.import_framework)."""
    code = ("from mclab import runtimes; ok, why = runtimes.available('tflite'); assert ok, why; "
            "import torchvision.models, torch._dynamo; print('alive')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "alive" in r.stdout, f"rc={r.returncode}: {r.stderr[-500:]}"


def test_xnnpack_knob_goes_through_load(tflite_files):
    _, _, files = tflite_files
    assert runtimes.load(files["fp32"], "tflite", threads=1, xnnpack=False).info["xnnpack"] is False
    assert runtimes.load(files["fp32"], "tflite", threads=1).info["xnnpack"] is True


def test_a_module_converts_once_per_weights_shape_and_precision(toy_cnn, x, reference, monkeypatch):
    """Building the same weights at the same shape and precision again reuses the file (the defaults audit builds
    every variant of a precision); other weights, another shape or precision convert anew and run their own."""
    import torch

    calls = []
    real = rtfl.convert
    monkeypatch.setattr(rtfl, "convert", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    m = toy_cnn(seed=3)
    runtimes.load(m, "tflite", batch=2, input_shape=SHAPE)
    plain = runtimes.load(m, "tflite", batch=2, input_shape=SHAPE, xnnpack=False)
    assert len(calls) == 1 and plain.info["xnnpack"] is False
    runtimes.load(m, "tflite", input_shape=SHAPE)  # batch 1: another shape
    runtimes.load(m, "tflite", batch=2, input_shape=SHAPE, precision="fp16")
    assert len(calls) == 3
    with torch.no_grad():
        next(m.parameters()).mul_(2)
    changed = runtimes.load(m, "tflite", batch=2, input_shape=SHAPE)
    assert len(calls) == 4 and np.abs(changed.run(x) - reference(m, x)).max() < 1e-4
