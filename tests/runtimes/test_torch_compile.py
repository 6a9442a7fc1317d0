"""mclab.runtimes.torch_compile: torch.compile on CPU, its cost and its graph breaks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mclab import runtimes
from mclab.runtimes import torch_compile as rtc

SHAPE = (3, 16, 16)  # the toy CNN's input (conftest)


def test_torch_compile_matches_eager_and_reports_cost(x, toy_cnn, reference):
    m = toy_cnn()
    r = runtimes.load(m, "torch-compile", batch=2, input_shape=SHAPE, threads=1)
    assert r.precision == "fp32" and r.info["compile_s"] > 0
    assert r.info["freezing"] is True  # compiled for inference by default: weights constant, BatchNorm folded
    assert np.abs(r.run(x) - reference(m, x)).max() < 1e-4
    unfrozen = runtimes.load(m, "torch-compile", batch=2, input_shape=SHAPE, threads=1, freezing=False)
    assert unfrozen.info["freezing"] is False and np.abs(unfrozen.run(x) - reference(m, x)).max() < 1e-4
    assert runtimes.build_options("torch-compile") == ("freezing", "cpp_wrapper", "mode")

    with pytest.raises(ValueError, match="options \\['level'\\] are not settings of runtime='torch-compile'"):
        runtimes.load(m, "torch-compile", input_shape=SHAPE, level="all")
    with pytest.raises(ValueError, match="mode="):
        rtc.compile_module(m, torch.from_numpy(x), mode="fastest")
    with pytest.raises(ValueError, match="CUDA"):
        rtc.compile_module(m, torch.from_numpy(x), mode="reduce-overhead")
    with pytest.raises(ValueError, match="does not fit"):
        runtimes.load(m, "torch-compile", input_shape=(3, 8, 8))


def test_torch_compile_counts_each_compile_on_its_own():
    class Branchy(nn.Module):
        def forward(self, x):
            if x.mean().item() > 0:  # .item() breaks the graph
                x = x * 2
            return torch.relu(x)

    x = torch.randn(2, 8)
    compiled = rtc.compile_module(nn.ReLU(), x)
    assert torch.equal(compiled(x), torch.relu(x)) and compiled.as_dict() == compiled.report.as_dict()
    first = compiled.report
    second = rtc.compile_module(Branchy(), x).report
    third = rtc.compile_module(nn.ReLU(), x).report
    assert first.graphs == third.graphs == 1 and first.graph_breaks == 0
    assert second.graph_breaks >= 1 and second.graphs >= 1


def test_torch_compile_int8_runs_onednn_int8_kernels_close_to_fp32(x, toy_cnn, reference):
    m = toy_cnn()
    r = runtimes.load(m, "torch-compile", batch=2, input_shape=SHAPE, threads=1, precision="int8")
    assert r.precision == r.requested == "int8" and r.info["compile_s"] > 0 and r.info["freezing"]
    assert r.info["cpp_wrapper"] is True  # INT8 compiles with the C++ wrapper by default (KNOBS)
    assert r.info["calibration"] == {"data": "random N(0, 1), seed 0", "batches": 8, "images": 16}
    assert r.info["export"] == "strict" and r.info["int8_kernels"].get("qconv_pointwise", 0) >= 1
    ref = reference(m, x)
    err = np.abs(r.run(x) - ref).max()
    assert 0 < err < 0.1 * np.abs(ref).max()  # quantised (not bit-equal), yet close to FP32 eager
    with pytest.raises(ValueError, match="input is"):
        r.run(x[:1])
    with pytest.raises(ValueError, match="not supported by runtime='torch-compile'"):
        runtimes.load(m, "torch-compile", input_shape=SHAPE, precision="fp16")
    with pytest.raises(ValueError, match="does not fit"):
        runtimes.load(m, "torch-compile", input_shape=(3, 8, 8), precision="int8")


def test_quantize_pt2e_takes_given_batches_and_handles_a_reused_module():
    class Reused(nn.Module):  # one ReLU module called twice, as in torchvision's BasicBlock
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2, self.relu = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()

        def forward(self, x):
            y = self.relu(self.conv1(x))
            return self.relu(self.conv2(y) + y)

    torch.manual_seed(0)
    m, ex = Reused().eval(), torch.randn(2, 3, 8, 8)
    q = rtc.quantize_pt2e(m, ex, calibration=[torch.randn(2, 3, 8, 8) for _ in range(3)])
    assert q.export == "strict" and q.calibration == {"data": "given", "batches": 3, "images": 6}
    assert q.as_dict()["quantize_s"] > 0
    with torch.no_grad():
        assert (q.module(ex) - m(ex)).abs().max() < 0.1 * m(ex).abs().max()
    with pytest.raises(ValueError, match="does not fit the exported shape"):
        rtc.quantize_pt2e(m, ex, calibration=[torch.randn(4, 3, 8, 8)])
    with pytest.raises(ValueError, match="empty"):
        rtc.quantize_pt2e(m, ex, calibration=[])


def test_int8_kernels_counts_onednn_calls():
    code = ["buf = torch.ops.onednn.qconv_pointwise.default(a)\nz = torch.ops.onednn.qlinear_pointwise.tensor(b)",
            "torch.ops.onednn.qconv_pointwise.default(c); torch.ops.mkldnn._convolution_pointwise(d)"]
    assert rtc.int8_kernels(code) == {"qconv_pointwise": 2, "qlinear_pointwise": 1}
    assert rtc.int8_kernels([]) == {}


def test_a_frozen_and_an_unfrozen_compile_of_one_module_each_keep_their_graph():
    # Dynamo caches compiled graphs per forward code object: two compiles of one module with equal settings share
    # them. Freezing is part of the compile's options, so the frozen compile never runs the unfrozen graph.
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()).eval()
    with torch.no_grad():
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 16, 16)
    frozen = rtc.compile_module(m, x, freezing=True)
    first = frozen(x)
    unfrozen = rtc.compile_module(m, x)
    assert frozen.report.freezing and not unfrozen.report.freezing
    assert not torch.equal(first, unfrozen(x))  # BatchNorm folded vs computed: the rounding differs
    assert torch.equal(frozen(x), first)  # still its own, frozen graph


def test_int8_refuses_freezing_off_and_bad_knobs_are_named(toy_cnn):
    with pytest.raises(ValueError, match="INT8 always freezes"):
        runtimes.load(toy_cnn(), "torch-compile", input_shape=SHAPE, precision="int8", freezing=False)
    with pytest.raises(ValueError, match="cpp_wrapper='yes' must be True or False"):
        runtimes.load(toy_cnn(), "torch-compile", input_shape=SHAPE, cpp_wrapper="yes")
