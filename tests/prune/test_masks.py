"""mclab.prune.masks: unstructured pruning keeps masks through training and folds them in; sparsity reports,
non-zero MACs and the sparse storage formats' bytes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mclab import flops, models, prune

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


def example_inputs(batch: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(1))


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
