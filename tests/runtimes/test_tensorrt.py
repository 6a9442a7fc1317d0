"""mclab.runtimes.tensorrt: ONNX -> TensorRT engine at FP32 / FP16 / INT8 (the engine tests need an NVIDIA GPU
and the ``tensorrt`` package, and skip with the reason otherwise)."""
from __future__ import annotations

import numpy as np
import pytest

from mclab import runtimes
from mclab.runtimes import tensorrt as rtrt

SHAPE = (3, 16, 16)  # the toy CNN's input (conftest)


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
def test_tensorrt_engine_matches_pytorch(precision, tol, x, toy_cnn, reference):  # pragma: no cover - GPU only
    m = toy_cnn()
    r = runtimes.load(m, "tensorrt", batch=2, input_shape=SHAPE, precision=precision)
    assert np.abs(r.run(x) - reference(m, x)).max() < tol
    assert r.info["profile"][0][0] == 1 and r.info["build_s"] > 0


@needs_trt
def test_tensorrt_int8_and_corrupt_engine(tmp_path, x, toy_cnn, reference):  # pragma: no cover - GPU only
    m = toy_cnn()
    r = runtimes.load(m, "tensorrt", batch=2, input_shape=SHAPE, precision="int8")
    ref = reference(m, x)
    assert r.precision == "int8" and np.abs(r.run(x) - ref).max() < 0.2 * np.abs(ref).max()
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="cannot load"):
        rtrt.engine_runner(str(bad), (1, *SHAPE))
