from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from mclab import data, flops, models, prune

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


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


def test_layer_scope_masks_survive_training_and_become_permanent():
    m = models.small_cnn(8, seed=0)
    rep = prune.prune_(m, prune.PruneConfig(0.6))
    for r in rep.layers:
        assert r["zeros"] == round(0.6 * r["params"]), r
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    x, y = example_inputs(8, 16), torch.arange(8) % 10
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    m(x)  # the forward pre-hook recomputes weight = weight_orig * weight_mask
    assert prune.sparsity(m).prunable_zeros == rep.prunable_zeros
    assert prune.make_permanent_(m) == len(rep.layers)
    assert prune.make_permanent_(m) == 0
    for mod in prune.prunable_layers(m).values():
        assert isinstance(mod.weight, nn.Parameter) and not hasattr(mod, "weight_mask") and not mod._forward_pre_hooks
    assert prune.sparsity(m).prunable_zeros == rep.prunable_zeros


def test_pruned_weights_never_come_back_and_amount_is_the_final_sparsity():
    m = models.lenet5()
    assert prune.prune_(m, prune.PruneConfig(0.5)).sparsity == pytest.approx(0.5, abs=1e-3)
    before = {n: mod.weight_mask.clone() for n, mod in prune.prunable_layers(m).items()}
    assert prune.prune_(m, prune.PruneConfig(0.3)).sparsity == pytest.approx(0.5, abs=1e-3)  # no regrowth
    rep = prune.prune_(m, prune.PruneConfig(0.7))
    assert rep.sparsity == pytest.approx(0.7, abs=1e-3)
    for n, mod in prune.prunable_layers(m).items():
        assert bool(((before[n] == 0) <= (mod.weight_mask == 0)).all()), n  # the old zeros are a subset
    assert prune.prune_(m, prune.PruneConfig(0.2, permanent=True)).sparsity == pytest.approx(0.7, abs=1e-3)
    assert not any(hasattr(mod, "weight_mask") for mod in m.modules())


def test_layers_option_prunes_only_those():
    m = models.lenet5()
    rep = prune.prune_(m, prune.PruneConfig(0.5, layers=["3", "7"]))
    by = {r["name"]: r["sparsity"] for r in rep.layers}
    assert by["3"] == pytest.approx(0.5, abs=1e-3) and by["7"] == pytest.approx(0.5, abs=1e-3)
    assert by["0"] == 0 and by["9"] == 0 and by["11"] == 0


def test_sparsity_report_counts_and_views():
    m = models.small_cnn(4)
    rep = prune.sparsity(m)
    assert rep.prunable_zeros == 0 and rep.total_params == sum(p.numel() for p in m.parameters())
    prune.prune_(m, prune.PruneConfig(0.5, permanent=True))
    rep = prune.sparsity(m)
    assert rep.total_zeros >= rep.prunable_zeros > 0
    assert rep.nonzero_params == rep.total_params - rep.total_zeros
    df = rep.to_frame()
    assert len(df) == len(rep.layers) + 1 and df.loc["(all prunable weights)", "zeros"] == rep.prunable_zeros
    d = rep.as_dict()
    assert d["sparsity"] == rep.sparsity and d["layers"][0]["name"] == "0"


def test_nonzero_macs_scale_with_density_dense_macs_do_not():
    m, x = models.lenet5(), example_inputs(1)
    dense = flops.count(m, x).macs
    prune.prune_(m, prune.PruneConfig(0.5, permanent=True))
    assert flops.count(m, x).macs == dense  # a dense kernel does all the multiplications
    layer = flops.count(m, x).layers
    expect = sum(r["macs"] * (1 - round(0.5 * r["params_w"]) / r["params_w"]) for r in
                 [{**r, "params_w": dict(m.named_modules())[r["name"]].weight.numel()} for r in layer if r["macs"]])
    assert prune.nonzero_macs(m, x) == pytest.approx(expect, rel=1e-6)
    assert prune.nonzero_macs(m, x) == pytest.approx(dense / 2, rel=0.01)


# ----------------------------------------------------------------------------- storage formats


@pytest.mark.parametrize("density", [1.0, 0.5, 0.1, 0.0])
def test_storage_matches_real_csr_tensor_and_packed_bits(density):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 8, 3, 3, generator=g)
    w[torch.rand(w.shape, generator=g) >= density] = 0
    rep = prune.storage(w, value_bytes=4, index_bytes=8)  # torch's CSR uses int64 indices
    csr = w.reshape(16, -1).to_sparse_csr()
    real = sum(t.numel() * t.element_size() for t in (csr.crow_indices(), csr.col_indices(), csr.values()))
    assert rep.csr_bytes == real
    nnz = int((w != 0).sum())
    assert rep.bitmask_bytes == np.packbits((w != 0).numpy().reshape(-1)).nbytes + 4 * nnz
    assert rep.dense_bytes == w.numel() * 4 and rep.nnz == nnz and rep.density == pytest.approx(nnz / w.numel())
    rep32 = prune.storage(w)
    assert rep32.csr_break_even == 0.5 and rep32.bitmask_break_even == pytest.approx(31 / 32)
    if density == 0.5:  # at 50 % zeros CSR with int32 indices saves nothing, a bitmask about half
        assert rep32.csr_bytes > rep32.dense_bytes and rep32.bitmask_bytes < 0.6 * rep32.dense_bytes


def test_storage_of_a_model_sums_its_layers():
    m = models.lenet5()
    prune.prune_(m, prune.PruneConfig(0.9, permanent=True))
    rep = prune.storage(m)
    weights = sum(mod.weight.numel() for mod in prune.prunable_layers(m).values())
    assert len(rep.layers) == 5 and rep.dense_bytes == 4 * weights
    assert rep.csr_bytes < 0.25 * rep.dense_bytes and rep.bitmask_bytes < rep.csr_bytes
    assert set(rep.to_frame().columns) >= {"dense_bytes", "bitmask_bytes", "csr_bytes"}
    assert rep.as_dict()["density"] < 0.11


# ----------------------------------------------------------------------------- structured


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("amount", [0.25, 0.5, 0.8])
def test_channels_kept_are_the_ones_ln_structured_keeps(n, amount):
    conv = nn.Conv2d(16, 40, 3)
    tprune.ln_structured(conv, "weight", amount=amount, n=n, dim=0)
    kept_by_torch = [i for i in range(40) if conv.weight_mask[i].any()]
    assert prune.channels_to_keep(conv.weight_orig, amount, norm=n) == kept_by_torch


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
