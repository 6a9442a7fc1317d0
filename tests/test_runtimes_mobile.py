"""TensorFlow Lite, NCNN, torch.compile and TensorRT runtimes (mclab/runtimes/{tflite,ncnn,torch_compile,tensorrt}.py).

References are PyTorch eager outputs of the same weights on the same inputs; FP32 paths must agree to
1e-4 max absolute error, reduced precisions must differ measurably and say so."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mclab import runtimes
from mclab.runtimes import ncnn as rncnn
from mclab.runtimes import tensorrt as rtrt
from mclab.runtimes import tflite as rtfl
from mclab.runtimes import torch_compile as rtc

SHAPE = (3, 16, 16)


class Block(nn.Module):
    """Residual block with a depthwise conv: the patterns of ResNet and MobileNetV2."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.pw = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return torch.relu(x + self.pw(nn.functional.relu6(self.bn(self.dw(x)))))


def toy_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                      nn.MaxPool2d(3, 2, padding=1), Block(8), nn.Flatten(), nn.Linear(8 * 4 * 4, 256), nn.ReLU(),
                      nn.Linear(256, 10))
    with torch.no_grad():  # non-trivial BN statistics so the copy of running stats is tested
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 2.0)
    return m.eval()


def reference(m: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return m(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal((2, *SHAPE), dtype=np.float32)


# ----------------------------------------------------------------------------- TensorFlow Lite


@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory):
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


def test_keras_twin_matches_pytorch(tflite_files, x):
    m, km, _ = tflite_files
    nhwc = x[:1].transpose(0, 2, 3, 1)
    assert np.abs(km(nhwc).numpy() - reference(m, x[:1])).max() < 1e-4


def test_tflite_modes_precision_size_and_error(tflite_files, x):
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


def test_tflite_int8_io_takes_int8(tflite_files, x):
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


def test_tflite_through_load_and_xnnpack_off(tflite_files, x):
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


# ----------------------------------------------------------------------------- NCNN


@pytest.fixture(scope="module")
def ncnn_files(tmp_path_factory):
    m = toy_cnn()
    d = tmp_path_factory.mktemp("ncnn")
    example = torch.randn(1, *SHAPE)
    return m, {w: rncnn.export(m, example, d / f"w{int(w)}", fp16_weights=w) for w in (False, True)}


def test_ncnn_fp32_matches_and_defaults_differ(ncnn_files, x):
    m, files = ncnn_files
    ref = reference(m, x)
    fp32 = rncnn.runner_for_files(*files[False], (2, *SHAPE), precision="fp32", threads=1)
    assert fp32.precision == "fp32" and not fp32.info["use_fp16_storage"]
    assert np.abs(fp32.run(x) - ref).max() < 1e-4
    default = rncnn.runner_for_files(*files[True], (2, *SHAPE), precision="default", threads=1)
    err = np.abs(default.run(x) - ref).max()
    assert default.info["use_fp16_storage"] and err > 1e-4, f"ncnn defaults gave error {err}"
    assert default.info["bin_bytes"] < 0.6 * fp32.info["bin_bytes"]  # fp16 weights from pnnx


def test_ncnn_through_load_and_errors(tmp_path, ncnn_files, x):
    m, files = ncnn_files
    r = runtimes.load(m, "ncnn", batch=2, input_shape=SHAPE, threads=1)
    assert r.precision == "fp32" and np.abs(r.run(x) - reference(m, x)).max() < 1e-4
    r2 = runtimes.load(files[False][0], "ncnn", batch=1, input_shape=SHAPE)
    assert r2.run(x[:1]).shape == (1, 10)
    with pytest.raises(ValueError, match="not supported"):
        runtimes.load(m, "ncnn", input_shape=SHAPE, precision="int8")
    with pytest.raises(ValueError, match="ncnn2int8"):
        rncnn.build(m, batch=1, threads=1, input_shape=SHAPE, precision="int8")
    bad = tmp_path / "bad.param"
    bad.write_text("not an ncnn param file\n")
    (tmp_path / "bad.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ValueError, match="cannot load"):
        rncnn.runner_for_files(str(bad), str(tmp_path / "bad.bin"), (1, *SHAPE))
    with pytest.raises(ValueError, match="shape"):
        r2.run(x)


# ----------------------------------------------------------------------------- torch.compile


def test_torch_compile_matches_eager_and_reports_cost(x):
    m = toy_cnn()
    r = runtimes.load(m, "torch-compile", batch=2, input_shape=SHAPE, threads=1)
    assert r.precision == "fp32" and r.info["compile_s"] > 0
    assert np.abs(r.run(x) - reference(m, x)).max() < 1e-4
    with pytest.raises(ValueError, match="mode="):
        rtc.compile_module(m, torch.from_numpy(x), mode="fastest")
    with pytest.raises(ValueError, match="CUDA"):
        rtc.compile_module(m, torch.from_numpy(x), mode="reduce-overhead")
    with pytest.raises(ValueError, match="does not fit"):
        runtimes.load(m, "torch-compile", input_shape=(3, 8, 8))


# ----------------------------------------------------------------------------- TensorRT


def test_tensorrt_config_validation_runs_anywhere():
    with pytest.raises(ValueError, match="precision="):
        rtrt.TRTConfig(precision="bf16")
    with pytest.raises(ValueError, match="min_batch"):
        rtrt.TRTConfig(min_batch=4, opt_batch=2)
    with pytest.raises(ValueError, match="calibration"):
        rtrt.TRTConfig(precision="int8")
    ok, why = runtimes.available("tensorrt")
    assert ok or why, "available() must give a reason when TensorRT cannot run"


TRT_OK, TRT_WHY = runtimes.available("tensorrt")
needs_trt = pytest.mark.skipif(not TRT_OK, reason=f"TensorRT path not testable here: {TRT_WHY}")


@needs_trt
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-3), ("fp16", 5e-2)])
def test_tensorrt_engine_matches_pytorch(precision, tol, x):  # pragma: no cover - GPU only
    m = toy_cnn()
    r = runtimes.load(m, "tensorrt", batch=2, input_shape=SHAPE, precision=precision)
    assert np.abs(r.run(x) - reference(m, x)).max() < tol
    assert r.info["profile"][0][0] == 1 and r.info["build_s"] > 0


@needs_trt
def test_tensorrt_int8_and_corrupt_engine(tmp_path, x):  # pragma: no cover - GPU only
    m = toy_cnn()
    r = runtimes.load(m, "tensorrt", batch=2, input_shape=SHAPE, precision="int8")
    ref = reference(m, x)
    assert r.precision == "int8" and np.abs(r.run(x) - ref).max() < 0.2 * np.abs(ref).max()
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="cannot load"):
        rtrt.engine_runner(str(bad), (1, *SHAPE))


def test_torch_compile_counts_each_compile_on_its_own():
    class Branchy(nn.Module):
        def forward(self, x):
            if x.mean().item() > 0:  # .item() breaks the graph
                x = x * 2
            return torch.relu(x)

    x = torch.randn(2, 8)
    _, first = rtc.compile_module(nn.ReLU(), x)
    _, second = rtc.compile_module(Branchy(), x)
    _, third = rtc.compile_module(nn.ReLU(), x)
    assert first.graphs == third.graphs == 1 and first.graph_breaks == 0
    assert second.graph_breaks >= 1 and second.graphs >= 1


def test_tflite_imported_first_does_not_crash_torchvision_later():
    """`mclab bench resnet18 --runtime tflite` checks the runtime (importing TensorFlow) before it builds the
    torchvision model, whose import loads Triton; Triton loaded after TensorFlow crashed the process."""
    import subprocess
    import sys

    code = ("from mclab import runtimes; ok, why = runtimes.available('tflite'); assert ok, why; "
            "import torchvision.models, torch._dynamo; print('alive')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "alive" in r.stdout, f"rc={r.returncode}: {r.stderr[-500:]}"
