"""mclab.prune.schedule: sensitivity scans restore the model; iterative pruning reaches its target."""
from __future__ import annotations

import pytest
import torch

from mclab import data, models, prune

# ----------------------------------------------------------------------------- scans and schedules


def test_sensitivity_restores_the_model_and_zero_amount_costs_nothing():
    model = models.small_cnn(4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ds = data.digits("val", size=16)
    res = prune.sensitivity(model, ds, prune.SensitivityConfig(amounts=(0.0, 0.9), layers=["0", "8"]))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    table = res.to_frame()
    assert list(table.index) == ["0", "8"] and list(table.columns) == [0.0, 0.9]
    assert (table[0.0] == 0).all() and res.max_amount(1e9) == {"0": 0.9, "8": 0.9}
    ch = prune.sensitivity(model, ds, prune.SensitivityConfig(amounts=(0.5,), kind="channel"), bn_data=ds)
    assert [r["layer"] for r in ch.rows] == ["0", "4", "8"] and ch.n == len(ds)


def test_iterative_schedule_reaches_its_target():
    cfg = prune.IterativeConfig(final_amount=0.8, steps=4)
    assert cfg.targets()[-1] == pytest.approx(0.8) and cfg.targets()[0] == pytest.approx(0.8 * (1 - 0.75 ** 3))
    assert prune.IterativeConfig(0.6, steps=3, schedule="linear").targets() == pytest.approx([0.2, 0.4, 0.6])
    model = models.small_cnn(4)
    res = prune.iterative_prune_(model, data.digits("val", size=16),
                                 prune.IterativeConfig(0.75, steps=2, epochs=1, size=16, lr=3e-3, train_images=200))
    assert [s["step"] for s in res.steps] == [1, 2] and res.steps[-1]["sparsity"] == pytest.approx(0.75, abs=1e-3)
    assert prune.sparsity(model).sparsity == pytest.approx(0.75, abs=1e-3)
    assert not any(hasattr(m, "weight_mask") for m in model.modules())
    assert res.steps[0]["train_s"] > 0 and 0 <= res.final_accuracy <= 1 and len(res.to_frame()) == 2
