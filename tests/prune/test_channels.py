"""mclab.prune.channels: the channel groups that can go, removal that equals silencing, plans that replay,
BatchNorm recalibration."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mclab import data, flops, models, prune


def _resnet(seed: int = 0) -> nn.Module:
    """The reference architecture (random weights) with BatchNorm statistics that are not the identity."""
    m = models.resnet18_digits(seed=seed)
    g = torch.Generator().manual_seed(seed)
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.normal_(0, 0.1, generator=g)
            bn.running_var.uniform_(0.5, 1.5, generator=g)
            bn.weight.data.uniform_(0.5, 1.5, generator=g)
            bn.bias.data.normal_(0, 0.1, generator=g)
    return m.eval()


def example_inputs(batch: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(1))


def test_groups_found_are_the_safe_ones():
    r18 = prune.find_channel_groups(models.resnet18_digits())
    assert [g.producer for g in r18] == [f"layer{i}.{j}.conv1" for i in range(1, 5) for j in range(2)]
    assert all(g.bn == g.producer.replace("conv1", "bn1") and g.consumer == g.producer.replace("conv1", "conv2")
               for g in r18)
    from torchvision.models import resnet50

    r50 = prune.find_channel_groups(resnet50())
    assert len(r50) == 32 and not any(g.producer.endswith("conv3") or "downsample" in g.producer for g in r50)
    lenet = {g.producer: g for g in prune.find_channel_groups(models.lenet5())}
    assert set(lenet) == {"0", "3", "7", "9"} and lenet["3"].per_channel == 25 and lenet["3"].consumer == "7"
    cnn = {g.producer: g for g in prune.find_channel_groups(models.small_cnn(8))}
    assert set(cnn) == {"0", "4", "8"} and cnn["8"].consumer == "14" and cnn["0"].bn == "1"


def _zero_removed(model: nn.Module, plan: prune.ChannelPlan) -> nn.Module:
    """The same model with the removed channels silenced in place: weights, bias, BN shift and mean set so the
    channel is exactly 0 after BatchNorm — the dense twin of physical removal."""
    m = copy.deepcopy(model)
    mods = dict(m.named_modules())
    with torch.no_grad():
        for g in plan.groups:
            gone = sorted(set(range(plan.channels[g.producer])) - set(plan.keep[g.producer]))
            mods[g.producer].weight[gone] = 0
            if mods[g.producer].bias is not None:
                mods[g.producer].bias[gone] = 0
            if g.bn:
                mods[g.bn].bias[gone] = 0
                mods[g.bn].running_mean[gone] = 0
    return m


@pytest.mark.parametrize("arch", ["resnet18", "lenet5", "small_cnn"])
def test_removing_channels_equals_silencing_them_and_keeps_output_shape(arch):
    model = _resnet() if arch == "resnet18" else models.ARCHITECTURES[arch]().eval()
    x = example_inputs(3)
    plan = prune.plan_channels(model, prune.ChannelConfig(0.5))
    small = prune.apply_channels_(copy.deepcopy(model), plan)
    with torch.no_grad():
        out, ref, orig = small(x), _zero_removed(model, plan)(x), model(x)
    assert out.shape == orig.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert plan.removed == sum(c - len(plan.keep[p]) for p, c in plan.channels.items()) > 0


def test_structured_resnet_counts_exactly_and_exports_to_onnx(tmp_path):
    from mclab.runtimes.export import ExportConfig, export_onnx

    model, x = _resnet(), example_inputs(1)
    plan = prune.plan_channels(model, prune.ChannelConfig(0.5))
    small = prune.prune_channels(model, prune.ChannelConfig(0.5))
    dense_rep, small_rep = flops.count(model, x), flops.count(small, x)
    rows = {r["name"]: r for r in dense_rep.layers}
    removed_macs = removed_params = 0
    for g in plan.groups:
        c, k = plan.channels[g.producer], len(plan.keep[g.producer])
        removed_macs += rows[g.producer]["macs"] * (c - k) // c + rows[g.consumer]["macs"] * (c - k) // c
        removed_params += (rows[g.producer]["params"] + rows[g.consumer]["params"]) * (c - k) // c + 2 * (c - k)
    assert small_rep.macs == dense_rep.macs - removed_macs
    assert small_rep.params == dense_rep.params - removed_params
    assert 0.45 < small_rep.macs / dense_rep.macs < 0.6  # most of ResNet-18's MACs sit in the blocks
    res = export_onnx(small, tmp_path / "small.onnx", ExportConfig(input_shape=(1, 32, 32)))
    assert res.max_abs_err < 1e-4
    assert flops.count_onnx(tmp_path / "small.onnx", (1, 1, 32, 32)).macs == small_rep.macs
    assert sum(p.numel() for p in model.parameters()) == dense_rep.params  # the original is untouched


def test_plan_round_trips_and_replays():
    model = models.small_cnn(8)
    plan = prune.plan_channels(model, prune.ChannelConfig(0.25, norm=2, layers=["4"]))
    again = prune.ChannelPlan.from_dict(plan.as_dict())
    assert again == plan and list(plan.to_frame()["channels after"]) == [12]
    small = prune.apply_channels_(copy.deepcopy(model), again)
    assert small[4].out_channels == 12 and small[5].num_features == 12 and small[8].in_channels == 12
    with pytest.raises(ValueError, match="plan expects 16 output channels"):
        prune.apply_channels_(small, plan)


def test_recalibrate_bn_matches_batch_statistics():
    conv, bn = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)
    m = nn.Sequential(conv, bn).eval()
    ds = data.digits("val", size=16)
    assert prune.recalibrate_bn_(m, ds, batch_size=len(ds)) == 1
    with torch.no_grad():
        h = conv(ds.x)
    torch.testing.assert_close(bn.running_mean, h.mean((0, 2, 3)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bn.running_var, h.var((0, 2, 3), unbiased=True), atol=1e-5, rtol=1e-4)
    assert not m.training and bn.momentum == 0.1
    assert prune.recalibrate_bn_(m, [ds.x[:10]], max_images=4) == 1 and int(bn.num_batches_tracked) == 1
    prune.recalibrate_bn_(m, ds, batch_size=len(ds), augment=1.0)
    # distorted images, other statistics
    assert not torch.allclose(bn.running_var, h.var((0, 2, 3), unbiased=True), rtol=1e-2)
