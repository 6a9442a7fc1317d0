"""mclab.prune.primitives: masks and kept channels equal torch.nn.utils.prune's; bad input is refused at the
boundary with the argument, the value and what is allowed."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from mclab import models, prune

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


# ----------------------------------------------------------------------------- unstructured, against torch


@pytest.mark.parametrize("amount", [0.0, 0.1, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("layer", [nn.Conv2d(8, 16, 3), nn.Linear(50, 7)], ids=["conv", "linear"])
def test_layer_mask_is_torch_l1_unstructured(layer, amount):
    ref = copy.deepcopy(layer)
    tprune.l1_unstructured(ref, "weight", amount=amount)
    ours = prune.magnitude_mask(layer.weight, amount)
    assert torch.equal(ours, ref.weight_mask)
    assert int((ours == 0).sum()) == round(amount * layer.weight.numel())


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.8])
def test_global_masks_are_torch_global_unstructured(amount):
    m, ref = models.lenet5(seed=2), models.lenet5(seed=2)
    rep = prune.prune_(m, prune.PruneConfig(amount, scope="global"))
    layers = prune.prunable_layers(ref)
    tprune.global_unstructured([(mod, "weight") for mod in layers.values()], tprune.L1Unstructured, amount=amount)
    for name, mod in prune.prunable_layers(m).items():
        assert torch.equal(mod.weight_mask, layers[name].weight_mask), name
    total = sum(mod.weight.numel() for mod in layers.values())
    assert rep.prunable_zeros == round(amount * total)
    per_layer = [r["sparsity"] for r in rep.layers]
    assert max(per_layer) - min(per_layer) > 0.05  # one threshold: layers end up with different sparsity


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.9])
def test_magnitude_threshold_is_the_largest_weight_the_mask_removes(amount):
    w = torch.randn(64, 32, generator=torch.Generator().manual_seed(3))
    thr = prune.magnitude_threshold(w, amount)
    mask = prune.magnitude_mask(w, amount)
    removed = w.abs()[mask == 0]
    assert thr == (float(removed.max()) if removed.numel() else 0.0)
    assert bool((mask[w.abs() < thr] == 0).all())  # nothing smaller survives
    with pytest.raises(ValueError, match=r"amount=1 is outside \[0, 1\)"):
        prune.magnitude_threshold(w, 1)


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("amount", [0.25, 0.5, 0.8])
def test_channels_kept_are_the_ones_ln_structured_keeps(n, amount):
    conv = nn.Conv2d(16, 40, 3)
    tprune.ln_structured(conv, "weight", amount=amount, n=n, dim=0)
    kept_by_torch = [i for i in range(40) if conv.weight_mask[i].any()]
    assert prune.channels_to_keep(conv.weight_orig, amount, norm=n) == kept_by_torch


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("amount", [1.0, -0.1, 1.5])
def test_amount_outside_range_names_argument_and_range(amount):
    for cfg in (prune.PruneConfig, prune.ChannelConfig):
        with pytest.raises(ValueError, match=r"amount=.*outside \[0, 1\)"):
            cfg(amount=amount)
    with pytest.raises(ValueError, match=r"final_amount=.*\[0, 1\)"):
        prune.IterativeConfig(final_amount=amount)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        prune.SensitivityConfig(amounts=(0.5, amount))
    with pytest.raises(ValueError, match=r"amount=.*\[0, 1\)"):
        prune.magnitude_mask(torch.ones(3), amount)


@pytest.mark.parametrize("bad", ["0.5", True, None, [0.5]])
def test_amount_of_wrong_type(bad):
    with pytest.raises(TypeError, match="amount must be a number"):
        prune.PruneConfig(amount=bad)


def test_unknown_layer_lists_close_names():
    m = models.resnet18_digits()
    with pytest.raises(ValueError, match=r"'layer1.0.conv' .*close names: \[.*'layer1.0.conv1'"):
        prune.prune_(m, prune.PruneConfig(0.5, layers=["layer1.0.conv"]))
    with pytest.raises(ValueError, match="is a BatchNorm2d; prunable: Conv2d, Linear"):
        prune.prune_(m, prune.PruneConfig(0.5, layers=["layer1.0.bn1"]))
    with pytest.raises(ValueError, match=r"close names: \[.*'layer2.1.conv1'"):
        prune.plan_channels(m, prune.ChannelConfig(0.5, layers=["layer2.1.conv"]))
    with pytest.raises(ValueError, match="cannot be removed safely .*residual"):
        prune.plan_channels(m, prune.ChannelConfig(0.5, layers=["layer2.1.conv2"]))


@pytest.mark.parametrize("call, error, match", [
    (lambda m: prune.prune_("resnet18", prune.PruneConfig()), TypeError, "model must be a torch.nn.Module"),
    (lambda m: prune.prune_(m, prune.ChannelConfig()), TypeError, "config must be a PruneConfig"),
    (lambda m: prune.prune_channels(m, {"amount": 0.5}), TypeError, "config must be a ChannelConfig"),
    (lambda m: prune.iterative_prune_(m, None, prune.PruneConfig()), TypeError, "config must be an IterativeConfig"),
    (lambda m: prune.PruneConfig(layers=[3]), TypeError, "layers must be"),
    (lambda m: prune.PruneConfig(scope="local"), ValueError, "scope='local'"),
    (lambda m: prune.ChannelConfig(norm=3), ValueError, "norm=3"),
    (lambda m: prune.SensitivityConfig(kind="filter"), ValueError, "kind='filter'"),
    (lambda m: prune.IterativeConfig(steps=2.0), TypeError, "steps must be an int"),
    (lambda m: prune.storage([1, 2]), TypeError, "model_or_weight"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_wrong_types_and_choices(call, error, match):
    with pytest.raises(error, match=match):
        call(models.lenet5())


def test_masked_model_must_be_made_permanent_before_removing_channels():
    m = models.lenet5()
    prune.prune_(m, prune.PruneConfig(0.5))
    with pytest.raises(ValueError, match="make_permanent_"):
        prune.plan_channels(m)
