from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from mclab import lowrank, models


def _mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))


def example_inputs(batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("rank", [1, 5, 17, 40])
def test_linear_error_is_eckart_young(rank):
    layer = nn.Linear(64, 40)
    f = lowrank.factorize_layer(layer, rank=rank)
    pair, info = f.module, f.report
    assert f.as_dict() == info.as_dict()
    s = torch.linalg.svdvals(layer.weight.detach().double()).numpy()
    closed = float(np.sqrt((s[rank:] ** 2).sum()))  # sqrt of the sum of the discarded sigma^2
    product = (pair[1].weight @ pair[0].weight).detach().double()  # (m, r) @ (r, n)
    measured = float(torch.linalg.matrix_norm(layer.weight.detach().double() - product))
    assert abs(measured - closed) < 1e-5 and abs(info.error_fro - closed) < 1e-5
    assert info.error_closed_form == pytest.approx(closed, abs=1e-12)
    # the truncated SVD is the best rank-r approximation: a random rank-r product is never closer
    rand = torch.randn(40, rank, dtype=torch.float64) @ torch.randn(rank, 64, dtype=torch.float64) * 0.01
    assert float(torch.linalg.matrix_norm(layer.weight.double() - rand)) >= closed - 1e-9
    if rank == 40:  # full rank reproduces the layer, bias included
        x = torch.randn(3, 64)
        assert torch.allclose(pair(x), layer(x), atol=1e-5)


def test_conv_matrix_view_factorisation():
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=True)
    f = lowrank.factorize_layer(conv, rank=6, name="c")
    pair, info = f.module, f.report
    first, second = pair
    assert (first.kernel_size, first.stride, first.padding, first.out_channels) == ((3, 3), (2, 2), (1, 1), 6)
    assert second.kernel_size == (1, 1) and second.bias is not None and first.bias is None
    s = lowrank.singular_values(conv)
    assert (info.m, info.n, info.kind) == (16, 72, "Conv2d 3x3")
    assert abs(info.error_fro - np.sqrt((s[6:] ** 2).sum())) < 1e-5
    x = torch.randn(2, 8, 10, 10)
    assert pair(x).shape == conv(x).shape
    full = lowrank.factorize_layer(conv, rank=16).module  # full rank reproduces the convolution
    assert torch.allclose(full(x), conv(x), atol=1e-5)
    # the output error is the matrix error applied to the im2col patches: W x - A B x
    W, AB = lowrank.matrix_view(conv), (second.weight.reshape(16, 6) @ first.weight.reshape(6, -1))
    patches = nn.functional.unfold(x, 3, padding=1, stride=2)  # (N, 72, L)
    expected = torch.einsum("mn,bnl->bml", W - AB, patches).reshape(2, 16, 5, 5)
    assert torch.allclose(conv(x) - pair(x), expected, atol=1e-4)


def test_break_even_rank():
    assert lowrank.break_even_rank(1000, 1000) == 500  # the source's 1000 x 1000 example
    assert lowrank.break_even_rank(10, 512) == pytest.approx(5120 / 522)
    for m, n in ((64, 48), (120, 400), (16, 72)):
        be = lowrank.break_even_rank(m, n)
        layer = nn.Linear(n, m, bias=False)
        for r in range(1, min(m, n) + 1):
            info = lowrank.factorize_layer(layer, rank=r).report
            assert info.params_after == r * (m + n)
            assert info.smaller == (r < be), (m, n, r)


def test_energy_picks_the_fewest_singular_values():
    s = [4.0, 2.0, 1.0, 1.0]  # squares 16, 4, 1, 1 of 22
    assert lowrank.rank_for_energy(s, 16 / 22) == 1
    assert lowrank.rank_for_energy(s, 0.75) == 2
    assert lowrank.rank_for_energy(s, 1.0) == 4
    layer = nn.Linear(30, 20)
    info = lowrank.factorize_layer(layer, energy=0.9).report
    assert info.energy_kept >= 0.9
    smaller = lowrank.factorize_layer(layer, rank=info.rank - 1).report
    assert smaller.energy_kept < 0.9


def test_factorize_in_place_by_name_keeps_the_model_working():
    model = _mlp()
    ref = copy.deepcopy(model)
    x = example_inputs()
    report = lowrank.factorize_(model, lowrank.LowRankConfig(layers=("1", "3"), rank=8))
    assert isinstance(model[1], nn.Sequential) and model[1][0].out_features == 8
    assert [f.name for f in report.layers] == ["1", "3"] and report.params_after < report.params_before
    assert model(x).shape == ref(x).shape == (4, 10)
    assert set(report.table().columns) >= {"name", "rank", "rel_error", "smaller"}
    # ResNet-18's convolutions inside blocks, by dotted name
    net = models.resnet18_digits()
    lowrank.factorize_(net, lowrank.LowRankConfig(layers="layer4.1.conv2", energy=0.5))
    assert isinstance(net.layer4[1].conv2, nn.Sequential)
    assert net.eval()(torch.randn(1, 1, 32, 32)).shape == (1, 10)


def test_spectra_and_sweep():
    model = _mlp().eval()
    sv = lowrank.spectra(model)
    assert list(sv) == ["1", "3"] and np.all(np.diff(sv["1"]) <= 1e-9)
    data = [(torch.randn(1, 8, 8), torch.tensor(i % 10)) for i in range(20)]
    sweep = lowrank.rank_sweep(model, "1", [2, 8, 48], data=data, example_inputs=example_inputs(1), latency_iters=3)
    errs = [r["rel_error"] for r in sweep.rows]
    assert errs == sorted(errs, reverse=True) and errs[-1] < 1e-5
    assert sweep.break_even == pytest.approx(64 * 48 / 112)
    assert sweep.row(48)["params"] > sweep.dense["params"] > sweep.row(2)["params"]
    assert sweep.row(2)["macs"] < sweep.dense["macs"] and all(r["p50_ms"] > 0 for r in sweep.rows)
    assert all(0 <= r["accuracy"] <= 1 for r in sweep.rows) and len(sweep.table()) == 4
    with pytest.raises(ValueError, match="rank=3 was not swept"):
        sweep.row(3)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("rank, match", [(0, r"rank=0 .*1 to 40"), (41, r"rank=41 .*1 to 40"), (2.5, "rank=2.5")])
def test_bad_rank(rank, match):
    with pytest.raises(ValueError, match=match):
        lowrank.factorize_layer(nn.Linear(64, 40), rank=rank)


def test_bad_rank_in_model_names_the_layer():
    with pytest.raises(ValueError, match=r"rank=11 for layer '3' .*1 to 10"):
        lowrank.factorize_(_mlp(), lowrank.LowRankConfig(layers=("1", "3"), rank=11))


@pytest.mark.parametrize("kw, match", [({"rank": 0}, "rank=0"), ({"energy": 0.0}, r"energy=0.0 .*\(0, 1\]"),
                                       ({"energy": 1.5}, "energy=1.5"), ({}, "exactly one of rank or energy"),
                                       ({"rank": 2, "energy": 0.5}, "exactly one")])
def test_bad_config(kw, match):
    with pytest.raises(ValueError, match=match):
        lowrank.LowRankConfig(layers=("fc",), **kw)


def test_unknown_layer_suggests_close_names_and_changes_nothing():
    model = _mlp()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"layer 'layer4.1.conv3' does not exist.*layer4.1.conv2"):
        lowrank.factorize_(models.resnet18_digits(), lowrank.LowRankConfig(layers=("layer4.1.conv3",), rank=4))
    with pytest.raises(ValueError, match="'4' does not exist"):
        lowrank.factorize_(model, lowrank.LowRankConfig(layers=("1", "4"), rank=4))
    assert isinstance(model[1], nn.Linear)  # checked before anything changed
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_wrong_layer_type():
    with pytest.raises(TypeError, match="ReLU; low-rank factorisation takes nn.Linear or nn.Conv2d"):
        lowrank.factorize_(_mlp(), lowrank.LowRankConfig(layers=("2",), rank=4))
    with pytest.raises(TypeError, match="groups=4"):
        lowrank.factorize_layer(nn.Conv2d(4, 4, 3, groups=4), rank=1)


def test_rank_slider_draws_the_swept_values():
    import matplotlib

    from mclab.lab import widgets

    matplotlib.use("Agg")
    model = _mlp().eval()
    data = [(torch.randn(1, 8, 8), torch.tensor(i % 10)) for i in range(10)]
    sweep = lowrank.rank_sweep(model, "1", [4, 16], data=data, example_inputs=example_inputs(1), latency_iters=2)
    r = widgets.draw_rank(sweep, 4)
    assert r["rank"] == 4 and r["rel_error"] == sweep.row(4)["rel_error"] and len(r["fig"].axes) >= 4
    box = widgets.rank_slider(sweep, 16)
    slider = box.children[0].children[0]
    assert list(slider.options) == [4, 16] and slider.value == 16 and not slider.continuous_update
    slider.value = 4  # redraws into the Output widget
    with pytest.raises(ValueError, match="rank=5 was not swept"):
        widgets.draw_rank(sweep, 5)
