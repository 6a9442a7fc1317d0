from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def python() -> str:
    """The interpreter running the tests (the kit's .venv under `make test`)."""
    return sys.executable


@pytest.fixture(scope="module")
def small():
    """mclab's small digits CNN (8 channels, 1x16x16 or larger inputs) with non-trivial BatchNorm statistics, so
    that folding and quantisation have something to work on (tests/quant, tests/runtimes)."""
    import torch

    from mclab import models

    torch.manual_seed(0)
    m = models.small_cnn(8).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
    return m
