"""mclab.runtimes.openvino: the compile config, FP32 pinned and read back, IR files, ISA-capped A/B runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mclab import runtimes
from mclab.runtimes import openvino


def test_config_sets_the_threads():
    assert openvino.config(2) == {"INFERENCE_NUM_THREADS": 2}
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match=f"threads={bad!r} must be an int >= 1"):
            openvino.config(bad)


def test_runner_reads_the_thread_count_back(tiny_onnx):
    _, path = tiny_onnx
    r = runtimes.load(str(path), "openvino", threads=1)
    assert r.threads == 1 and int(r.handle.get_property("INFERENCE_NUM_THREADS")) == 1


def test_openvino_ab_under_an_isa_cap(tiny_onnx, tmp_path):
    from mclab import hw
    from mclab.runtimes import openvino as ovrt

    _, path = tiny_onnx
    with pytest.raises(ValueError, match="isa='SSE9'; allowed: None"):
        ovrt.ab_under_isa(path, path, (3, 32, 32), isa="SSE9")
    with pytest.raises(ValueError, match="path_b=.*does not exist"):
        ovrt.ab_under_isa(path, tmp_path / "nope.onnx", (3, 32, 32))
    if not hw.cpu_info().features.get("AVX2"):
        pytest.skip("the AVX2 cap needs an x86 CPU with AVX2")
    d = ovrt.ab_under_isa(path, path, (3, 32, 32), isa="AVX2", threads=1, rounds=2, calls=2)
    kernels = {**d["kernels"]["a"], **d["kernels"]["b"]}
    assert d["isa"] == "AVX2" and d["speedup_b_vs_a"] > 0 and kernels  # the convolution's kernel, read back
    assert not any("avx512" in k or "amx" in k for k in kernels), kernels  # the cap took effect


def test_openvino_pins_fp32_and_reads_back_its_precision(tiny_onnx, tmp_path):
    model, path = tiny_onnx
    r = runtimes.load(str(path), "openvino", batch=2, threads=1, input_shape=(3, 32, 32))
    assert r.precision == "fp32" and r.requested == "fp32" and r.input_shape == (2, 3, 32, 32)
    x = r.example_input()
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(r.run(x), expected, atol=1e-4)
    default = runtimes.load(str(path), "openvino", batch=2, threads=1, input_shape=(3, 32, 32), precision="default")
    assert default.precision in ("fp32", "bf16", "fp16")  # whatever the CPU plugin chose, read back
    from mclab.runtimes import openvino as ovrt

    ir = ovrt.to_ir(path, tmp_path / "m.xml")
    assert ir["bin_bytes"] > 0 and runtimes.load(ir["xml"], "openvino", input_shape=(3, 32, 32)).size_bytes == \
        ir["xml_bytes"] + ir["bin_bytes"]
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot load"):
        runtimes.load(str(bad), "openvino", input_shape=(3, 32, 32))
    with pytest.raises(ValueError, match="float32 array of shape"):
        r.run(x.astype(np.float64))
    with pytest.raises(ValueError, match="precision='int8' is not supported by runtime='openvino'"):
        runtimes.load(str(path), "openvino", precision="int8")
