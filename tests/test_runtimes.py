"""mclab.runtimes and the `mclab bench` command built on it."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mclab import runtimes


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """A small conv net exported with a dynamic batch dimension."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 4)).eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return model, path


def test_onnxruntime_runner_matches_torch(tiny_onnx):
    model, path = tiny_onnx
    r = runtimes.load(str(path), "onnxruntime", batch=3, threads=1)
    assert r.input_shape == (3, 3, 32, 32) and r.precision == "fp32" and r.threads == 1
    x = r.example_input()
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(r.run(x), expected, rtol=1e-4, atol=1e-5)


def test_torch_runner():
    r = runtimes.load("mobilenet_v3_small", "torch", batch=2, input_shape=(3, 96, 96))
    assert r.run(r.example_input()).shape == (2, 1000)


def test_bad_input_is_named(tiny_onnx, tmp_path):
    _, path = tiny_onnx
    with pytest.raises(ValueError, match="expects 3 after the batch"):
        runtimes.load(str(path), "onnxruntime", input_shape=(3, 32))
    with pytest.raises(ValueError, match="does not exist"):
        runtimes.load(str(tmp_path / "nope.onnx"), "onnxruntime")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a model")
    with pytest.raises(ValueError, match="cannot load"):
        runtimes.load(str(bad), "onnxruntime")
    with pytest.raises(ValueError, match="unknown; available runtimes"):
        runtimes.load("resnet18", "tensorrt-nope")
    with pytest.raises(ValueError, match="does not fit resnet18"):
        runtimes.load("resnet18", "torch", input_shape=(1, 224, 224))
    assert runtimes.available("onnxruntime")[0]


def _mclab(*args):
    return subprocess.run([sys.executable, "-m", "mclab.cli", *args], capture_output=True, text=True)


def test_cli_bench_json(tiny_onnx):
    _, path = tiny_onnx
    r = _mclab("bench", str(path), "--batch", "2", "--threads", "1", "--iters", "30", "--min-time", "0", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_per_s", "samples", "flags"} <= set(d)
    assert d["samples"] == 30 and d["runtime"] == "onnxruntime" and d["input_shape"] == [2, 3, 32, 32]
    assert d["p50_ms"] <= d["p90_ms"] <= d["p99_ms"] and "p99_few_samples" in d["flags"]
    assert d["throughput_per_s"] == pytest.approx(2e3 / d["mean_ms"])


@pytest.mark.parametrize("args, match", [
    (["resnet19"], "not a torchvision classifier"),
    (["resnet18", "--runtime", "openvino-nope"], "unknown; available runtimes"),
    (["resnet18", "--input-shape", "3,7"], "does not fit resnet18"),
    (["resnet18", "--iters", "0"], "min_iters=0"),
    (["resnet18", "--input-shape", "a,b"], "not a shape"),
])
def test_cli_bench_errors_are_one_line(args, match):
    r = _mclab("bench", *args)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr
