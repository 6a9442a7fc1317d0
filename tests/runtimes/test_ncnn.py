"""mclab.runtimes.ncnn: a PyTorch model converted with pnnx and run with ncnn's Python bindings.

FP32 must agree with PyTorch eager to 1e-4; ncnn's defaults (fp16 weights and arithmetic) must differ
measurably and say so."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mclab import runtimes
from mclab.runtimes import ncnn as rncnn

SHAPE = (3, 16, 16)  # the toy CNN's input (conftest)


@pytest.fixture(scope="module")
def ncnn_files(tmp_path_factory, toy_cnn):
    m = toy_cnn()
    d = tmp_path_factory.mktemp("ncnn")
    example = torch.randn(1, *SHAPE)
    return m, {w: rncnn.export(m, example, d / f"w{int(w)}", fp16_weights=w) for w in (False, True)}


def test_ncnn_fp32_matches_and_defaults_differ(ncnn_files, x, reference):
    m, files = ncnn_files
    ref = reference(m, x)
    fp32 = rncnn.runner_for_files(*files[False], (2, *SHAPE), precision="fp32", threads=1)
    assert fp32.precision == "fp32" and not fp32.info["use_fp16_storage"]
    assert np.abs(fp32.run(x) - ref).max() < 1e-4
    default = rncnn.runner_for_files(*files[True], (2, *SHAPE), precision="default", threads=1)
    err = np.abs(default.run(x) - ref).max()
    assert default.info["use_fp16_storage"] and err > 1e-4, f"ncnn defaults gave error {err}"
    assert default.info["bin_bytes"] < 0.6 * fp32.info["bin_bytes"]  # fp16 weights from pnnx


def test_ncnn_through_load_and_errors(tmp_path, ncnn_files, x, reference):
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


def test_packing_knob_is_recorded_and_keeps_the_answer(ncnn_files, x):
    _, files = ncnn_files
    on = rncnn.runner_for_files(*files[False], (2, *SHAPE), threads=1)
    off = rncnn.runner_for_files(*files[False], (2, *SHAPE), threads=1, packing=False)
    assert on.info["use_packing_layout"] and not off.info["use_packing_layout"]
    assert np.abs(on.run(x) - off.run(x)).max() < 1e-4
