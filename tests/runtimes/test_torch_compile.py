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
    assert np.abs(r.run(x) - reference(m, x)).max() < 1e-4
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
