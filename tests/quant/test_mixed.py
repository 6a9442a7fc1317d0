"""mclab.quant.mixed: per-layer bit sensitivity, the exact allocator under a size budget, and applying it."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mclab import quant


def _two_layer() -> tuple[nn.Module, object]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1, groups=4),
                          nn.Flatten(), nn.Linear(8 * 8 * 8, 10))

    class D:
        x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))

    D.y = model(D.x).argmax(1).detach()                  # labels the model gets right: loss rises with noise
    return model, D


def test_sensitivity_and_allocation_fit_the_budget():
    model, d = _two_layer()
    sens = quant.bit_sensitivity(model, d, bits=(8, 4, 2))
    assert set(sens.kl) == {"0", "2", "4"} and sens.kinds == {"0": "first", "2": "depthwise", "4": "last"}
    for name, by_bits in sens.weight_bytes.items():
        out_ch = dict(model.named_modules())[name].weight.shape[0]
        assert by_bits[8] == sens.params[name] + 4 * out_ch                 # integers + one float32 scale each
        assert by_bits[8] > by_bits[4] > by_bits[2]
    assert sens.kl["4"][2] > sens.kl["4"][8] >= 0                # fewer bits move the outputs more
    uni4 = quant.uniform_bits(sens, 4)
    mixed = quant.allocate_bits(sens, uni4.weight_bytes)
    assert mixed.weight_bytes <= uni4.weight_bytes
    clamped = sum(max(sens.kl[n][4], 0.0) for n in sens.kl)
    assert sum(max(sens.kl[n][b], 0.0) for n, b in mixed.bits.items()) <= clamped + 1e-9  # optimal in its model
    top = quant.allocate_bits(sens, 10**9)            # no budget: the least loss, at the smallest size reaching it
    least = sum(min(max(v, 0.0) for v in d.values()) for d in sens.kl.values())
    assert sum(max(sens.kl[n][b], 0.0) for n, b in top.bits.items()) == pytest.approx(least)
    w_before = model[4].weight.detach().clone()
    quant.apply_bits_(model, quant.uniform_bits(sens, 2))
    assert len(model[4].weight.unique()) <= 4 * 10 and not torch.equal(w_before, model[4].weight)
    with pytest.raises(ValueError, match="narrowest"):
        quant.allocate_bits(sens, 10)
    with pytest.raises(ValueError, match="bits"):
        quant.bit_sensitivity(model, d, bits=(8, 1))
    with pytest.raises(ValueError, match="was not measured"):
        quant.uniform_bits(sens, 3)
