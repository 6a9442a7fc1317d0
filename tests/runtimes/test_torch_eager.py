"""mclab.runtimes.torch_eager: PyTorch eager mode, the baseline every other runtime is compared with."""
from __future__ import annotations

from mclab import runtimes


def test_torch_runner():
    r = runtimes.load("mobilenet_v3_small", "torch", batch=2, input_shape=(3, 96, 96))
    assert r.run(r.example_input()).shape == (2, 1000)


def test_channels_last_knob_is_recorded_and_keeps_the_answer(tiny_module):
    import numpy as np

    base = runtimes.load(tiny_module(), "torch", input_shape=(3, 16, 16))  # PyTorch's NCHW: the kit's reference
    cl = runtimes.load(tiny_module(), "torch", input_shape=(3, 16, 16), channels_last=True)
    assert cl.info["channels_last"] is True and base.info["channels_last"] is False
    x = base.example_input()
    assert np.allclose(cl.run(x), base.run(x), atol=1e-5)
