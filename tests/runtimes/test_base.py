"""mclab.runtimes.base: load's validation, the model resolver, and the helpers over a runner."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mclab import runtimes
from mclab.runtimes import base


def test_bad_input_is_named(tiny_onnx, tmp_path):
    _, path = tiny_onnx
    with pytest.raises(ValueError, match="expects 3 after the batch"):
        runtimes.load(str(path), "onnxruntime", input_shape=(3, 32))
    with pytest.raises(ValueError, match="does not exist"):
        runtimes.load(str(tmp_path / "nope.onnx"), "onnxruntime")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a model")
    with pytest.raises(ValueError, match="bad.onnx' is not a readable ONNX model"):
        runtimes.load(str(bad), "onnxruntime")
    with pytest.raises(ValueError, match="unknown; available runtimes"):
        runtimes.load("resnet18", "tensorrt-nope")
    with pytest.raises(ValueError, match="does not fit resnet18"):
        runtimes.load("resnet18", "torch", input_shape=(1, 224, 224))
    assert runtimes.available("onnxruntime")[0]


def test_resolve_names_modules_and_their_errors(tiny_module):
    res = runtimes.resolve("mobilenet_v3_small")
    assert res.input_shape == (3, 224, 224) and res.label == "mobilenet_v3_small" and not res.module.training
    assert runtimes.resolve("mobilenet_v3_small", (3, 96, 96)).input_shape == (3, 96, 96)
    m = tiny_module()
    res = runtimes.resolve(m, [3, 16, 16])
    assert res.module is m and res.input_shape == (3, 16, 16) and res.label == "Sequential"
    assert runtimes.resolve is base.resolve and isinstance(res, runtimes.Resolved)
    with pytest.raises(ValueError, match="not a torchvision classifier.*resnet18"):
        runtimes.resolve("resnet19")
    with pytest.raises(ValueError, match="input_shape is required when model is a torch.nn.Module"):
        runtimes.resolve(m)
    with pytest.raises(TypeError, match="model has type int"):
        runtimes.resolve(3, (3, 16, 16))


def test_batched_cuts_pads_and_joins(tiny_module):
    m = tiny_module()
    r = runtimes.load(m, "torch", batch=3, threads=1, input_shape=(3, 16, 16))
    x = torch.randn(5, 3, 16, 16)
    with torch.inference_mode():
        expected = m(x).numpy()
    got = runtimes.batched(r)(x)  # one full batch of 3, then 2 padded to 3
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_int8_op_counts_reads_only_onnxruntime_and_openvino(tiny_module):
    with pytest.raises(TypeError, match="mclab.runtimes.Runner"):
        runtimes.int8_op_counts("model.onnx")
    r = runtimes.load(tiny_module(), "torch", input_shape=(3, 16, 16))
    with pytest.raises(ValueError, match="runner.runtime='torch'"):
        runtimes.int8_op_counts(r)


def test_dynamic_shapes_keep_the_files_dynamic_dims():
    pytest.importorskip("rapidocr")
    from mclab import ocr

    path = str(ocr.models_dir() / ocr.MODEL_FILES["cls"])  # 0.6 MB, declared (N, 3, ?, ?)
    for rt in ("onnxruntime", "openvino"):
        if not runtimes.available(rt)[0]:
            continue
        r = runtimes.load(path, rt, threads=1, dynamic=True)
        assert r.input_shape == (-1, 3, -1, -1)
        assert r.run(np.zeros((1, 3, 48, 192), np.float32)).shape == (1, 2)
        assert r.run(np.zeros((3, 3, 48, 96), np.float32)).shape == (3, 2)
        with pytest.raises(ValueError, match=r"-1: any size"):
            r.run(np.zeros((1, 1, 48, 96), np.float32))
    with pytest.raises(ValueError, match="runs fixed shapes"):
        runtimes.load(path, "torch", dynamic=True)
    with pytest.raises(ValueError, match="drop input_shape"):
        runtimes.load(path, "onnxruntime", dynamic=True, input_shape=(3, 48, 192))
    with pytest.raises(ValueError, match="needs a model file"):
        runtimes.load("resnet18", "onnxruntime", dynamic=True)
    with pytest.raises(ValueError, match="calibration needs sizes"):
        runtimes.load(path, "onnxruntime", dynamic=True, precision="int8")
    with pytest.raises(TypeError, match="dynamic="):
        runtimes.load(path, "onnxruntime", dynamic="yes")
