"""Toy models the runtime tests share: a tiny ONNX file with a dynamic batch, a tiny conv net, a toy CNN with
the patterns of ResNet and MobileNetV2, and PyTorch eager outputs as the reference.

The module builders are fixtures that return a factory, so each test builds its own fresh copy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

SHAPE = (3, 16, 16)  # (C, H, W) of the toy CNN and of the x fixture


class Block(nn.Module):
    """Residual block with a depthwise conv: the patterns of ResNet and MobileNetV2."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.pw = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return torch.relu(x + self.pw(nn.functional.relu6(self.bn(self.dw(x)))))


def _toy_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                      nn.MaxPool2d(3, 2, padding=1), Block(8), nn.Flatten(), nn.Linear(8 * 4 * 4, 256), nn.ReLU(),
                      nn.Linear(256, 10))
    with torch.no_grad():  # non-trivial BN statistics so the copy of running stats is tested
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 2.0)
    return m.eval()


def _tiny_module() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 4)).eval()


def _reference(m: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return m(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="session")
def toy_cnn():
    """``toy_cnn(seed=0)`` -> a fresh toy CNN in eval mode taking :data:`SHAPE`, 10 outputs."""
    return _toy_cnn


@pytest.fixture(scope="session")
def tiny_module():
    """``tiny_module()`` -> a fresh Conv-BN-ReLU-pool-Linear net (3 channels in, 4 outputs), seed 0."""
    return _tiny_module


@pytest.fixture(scope="session")
def reference():
    """``reference(module, x)`` -> PyTorch eager output of a numpy batch, as numpy."""
    return _reference


@pytest.fixture(scope="session")
def x():
    """A (2, *SHAPE) float32 batch, seed 0."""
    return np.random.default_rng(0).standard_normal((2, *SHAPE), dtype=np.float32)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """A small conv net exported with a dynamic batch dimension (input "x", 3x32x32): (module, path)."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return model, path
