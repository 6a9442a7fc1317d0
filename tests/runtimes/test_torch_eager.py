"""mclab.runtimes.torch_eager: PyTorch eager mode, the baseline every other runtime is compared with."""
from __future__ import annotations

from mclab import runtimes


def test_torch_runner():
    r = runtimes.load("mobilenet_v3_small", "torch", batch=2, input_shape=(3, 96, 96))
    assert r.run(r.example_input()).shape == (2, 1000)
