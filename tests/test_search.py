"""mclab.search: weight sharing is exact slicing, the latency table's arithmetic, search at equal evaluations under a
budget, and the bit allocator."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from mclab import search

CFG = search.SupernetConfig()


def example_inputs(n: int = 8) -> torch.Tensor:
    return torch.randn(n, 1, CFG.size, CFG.size, generator=torch.Generator().manual_seed(0))


def test_sub_block_is_a_slice_of_the_largest():
    torch.manual_seed(0)
    blk = search.MBBlock(8, 8, kernel=5, expand=4).train()
    x = torch.randn(4, 8, 6, 6)
    for k, e in [(3, 2), (5, 3), (5, 4)]:
        small = blk.sliced(k, e).train()       # train mode: batch statistics, as forward_sub uses
        assert small.dw[0].weight.shape == (8 * e, 1, k, k)
        torch.testing.assert_close(small(x), blk.forward_sub(x, k, e))
    assert torch.equal(blk.sliced(3, 2).dw[0].weight, blk.dw[0].weight[:16, :, 1:4, 1:4])  # centre, first channels


def test_extract_equals_the_supernet_and_runs_alone():
    net = search.Supernet(CFG).train()
    x = example_inputs()
    for arch in (search.largest(CFG), search.smallest(CFG), search.sample_arch(CFG, random.Random(3))):
        sub = search.extract(net, arch).train()
        torch.testing.assert_close(sub(x), net(x, arch))
        n_blocks = sum(isinstance(m, search.MBBlock) for m in sub)
        assert n_blocks == sum(arch.depths)
    small, big = search.extract(net, search.smallest(CFG)), search.extract(net, search.largest(CFG))
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in big.parameters())


def test_recalibrate_fixes_stale_batchnorm():
    net = search.Supernet(CFG)
    sub = search.extract(net, search.largest(CFG))
    x = example_inputs(64) * 3 + 1
    search.recalibrate(sub, [x])
    bn = sub[0][1]
    h = sub[0][0](x)
    torch.testing.assert_close(bn.running_mean, h.mean((0, 2, 3)), atol=1e-5, rtol=1e-4)
    assert not sub.training


def test_arch_validation_and_space_size():
    with pytest.raises(ValueError, match="depth"):
        search.Arch((((3, 2),) * 4, ((3, 2),), ((3, 2),))).check(CFG)
    with pytest.raises(ValueError, match="kernel=7"):
        search.Arch((((7, 2),), ((3, 2),), ((3, 2),))).check(CFG)
    with pytest.raises(ValueError, match="stages"):
        search.Arch((((3, 2),),)).check(CFG)
    with pytest.raises(ValueError, match="odd"):
        search.SupernetConfig(kernels=(3, 4))
    with pytest.raises(ValueError, match="widths"):
        search.SupernetConfig(widths=(8, 16), strides=(1, 2, 2))
    a = search.sample_arch(CFG, random.Random(0))
    assert search.Arch.from_dict(a.as_dict()) == a
    rng = random.Random(1)
    seen = {search.sample_arch(CFG, rng) for _ in range(300)}
    assert len(seen) > 250        # the space is large: draws rarely repeat


def _lut(overhead=0.01) -> search.LatencyLUT:
    entries = {search.LatencyLUT.key(s, b, k, e): 0.1 * (s + 1) + 0.01 * k * e + (0.05 if b == 0 else 0)
               for s in range(CFG.n_stages) for b in (0, 1) for k in CFG.kernels for e in CFG.expands}
    return search.LatencyLUT("torch", 1, entries, 0.2, 0.3, overhead, 0.0)


def test_lut_predict_counts_the_overhead_once():
    lut = _lut()
    arch = search.Arch((((3, 2),), ((5, 4), (3, 3)), ((3, 2),)))
    parts = [0.2, 0.3, lut.entries["s0/first/k3e2"], lut.entries["s1/first/k5e4"], lut.entries["s1/rest/k3e3"],
             lut.entries["s2/first/k3e2"]]
    assert lut.predict(arch) == pytest.approx(sum(parts) - 5 * 0.01)
    assert lut.predict(search.smallest(CFG)) < lut.predict(arch) < lut.predict(search.largest(CFG))


def test_spearman_against_known_values():
    assert search.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert search.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert search.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        search.spearman([1, 2], [1, 2])


class _Scored(search.Evaluator):
    """A synthetic accuracy: more, wider, larger-kernel blocks score higher (no data needed)."""

    def __init__(self) -> None:
        super().__init__(search.Supernet(CFG), None, None)

    def __call__(self, arch):
        if arch not in self.cache:
            self.cache[arch] = sum(k * e for s in arch.stages for k, e in s) / 200
        return self.cache[arch]


@pytest.mark.parametrize("method", ["evolution", "random"])
def test_search_spends_exactly_the_evaluations_within_budget(method):
    lut = _lut()
    budget = lut.predict(search.smallest(CFG)) + 0.5 * (lut.predict(search.largest(CFG)) -
                                                        lut.predict(search.smallest(CFG)))
    ev = _Scored()
    res = search.search(ev, lut, budget, search.SearchConfig(method, evaluations=20, population=6, seed=0))
    assert len(res.history) == 20 == ev.evaluations            # distinct, and exactly as many as allowed
    assert all(ms <= budget for _, _, ms in res.history)
    assert res.accuracy == max(a for _, a, _ in res.history) and lut.predict(res.best) <= budget
    assert res.best_so_far() == sorted(res.best_so_far())


def test_evolution_beats_random_on_a_smooth_objective():
    lut = _lut()
    budget = lut.predict(search.smallest(CFG)) + 0.5 * (lut.predict(search.largest(CFG)) -
                                                        lut.predict(search.smallest(CFG)))
    evo = [search.search(_Scored(), lut, budget, search.SearchConfig("evolution", 40, seed=s)).accuracy
           for s in range(8)]
    rnd = [search.search(_Scored(), lut, budget, search.SearchConfig("random", 40, seed=s)).accuracy
           for s in range(8)]
    assert np.mean(evo) >= np.mean(rnd)


def test_compare_methods_runs_every_seed_at_equal_evaluations():
    lut = _lut()
    budget = lut.predict(search.smallest(CFG)) + 0.5 * (lut.predict(search.largest(CFG)) -
                                                        lut.predict(search.smallest(CFG)))
    cmp = search.compare_methods(_Scored(), lut, budget, evaluations=15, seeds=[3, 4, 5],
                                 config=search.SearchConfig(population=5, parents=2))
    assert set(cmp.runs) == {"evolution", "random"} and cmp.seeds == [3, 4, 5]
    for m, rs in cmp.runs.items():
        assert [r.config.seed for r in rs] == [3, 4, 5] and all(r.config.method == m for r in rs)
        assert all(len(r.history) == 15 for r in rs)                     # equal evaluations, shared cache or not
        assert all(r.config.population == 5 and r.config.parents == 2 for r in rs)
        alone = [search.search(_Scored(), lut, budget, r.config).accuracy for r in rs]
        np.testing.assert_allclose(cmp.best(m), alone)                   # the shared cache changes nothing
    np.testing.assert_allclose(cmp.diff(), cmp.best("evolution") - cmp.best("random"))
    assert cmp.mean("random") == pytest.approx(cmp.best("random").mean())
    assert cmp.sd("random") == pytest.approx(cmp.best("random").std(ddof=1))
    frame = cmp.to_frame()
    assert list(frame.index) == ["seed 3", "seed 4", "seed 5"]
    np.testing.assert_allclose(frame["evolution - random"], 100 * cmp.diff())
    assert cmp.as_dict()["best"]["evolution"] == cmp.best("evolution").tolist()
    one = search.compare_methods(_Scored(), lut, budget, evaluations=5, seeds=[0], methods=["random"])
    assert one.sd("random") == 0.0 and "evolution - random" not in one.to_frame()
    with pytest.raises(ValueError, match="was not run"):
        one.best("evolution")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"seeds": []}, ValueError, "seeds"),
    ({"seeds": [0, 0]}, ValueError, "distinct"),
    ({"seeds": [0.5]}, ValueError, "seeds"),
    ({"evaluations": 0}, ValueError, "evaluations=0"),
    ({"methods": ["grid"]}, ValueError, "method='grid'"),
    ({"methods": []}, ValueError, "methods"),
    ({"config": {"population": 4}}, TypeError, "SearchConfig"),
])
def test_compare_methods_rejects_bad_input(kwargs, error, match):
    lut = _lut()
    args = {"evaluations": 5, "seeds": [0], **kwargs}
    with pytest.raises(error, match=match):
        search.compare_methods(_Scored(), lut, 10.0, **args)


def test_search_rejects_bad_budgets_and_configs():
    lut = _lut()
    with pytest.raises(ValueError, match="below the smallest"):
        search.search(_Scored(), lut, 0.01)
    with pytest.raises(ValueError, match="budget_ms"):
        search.search(_Scored(), lut, -1)
    with pytest.raises(ValueError, match="method"):
        search.SearchConfig("grid")
    with pytest.raises(ValueError, match="evaluations"):
        search.SearchConfig(evaluations=0)
    with pytest.raises(TypeError, match="Evaluator"):
        search.search(lambda a: 0.5, lut, 10.0)


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
    sens = search.bit_sensitivity(model, d, bits=(8, 4, 2))
    assert set(sens.kl) == {"0", "2", "4"} and sens.kinds == {"0": "first", "2": "depthwise", "4": "last"}
    for name, by_bits in sens.weight_bytes.items():
        out_ch = dict(model.named_modules())[name].weight.shape[0]
        assert by_bits[8] == sens.params[name] + 4 * out_ch                 # integers + one float32 scale each
        assert by_bits[8] > by_bits[4] > by_bits[2]
    assert sens.kl["4"][2] > sens.kl["4"][8] >= 0                # fewer bits move the outputs more
    uni4 = search.uniform_bits(sens, 4)
    mixed = search.allocate_bits(sens, uni4.weight_bytes)
    assert mixed.weight_bytes <= uni4.weight_bytes
    clamped = sum(max(sens.kl[n][4], 0.0) for n in sens.kl)
    assert sum(max(sens.kl[n][b], 0.0) for n, b in mixed.bits.items()) <= clamped + 1e-9  # optimal in its model
    top = search.allocate_bits(sens, 10**9)            # no budget: the least loss, at the smallest size reaching it
    least = sum(min(max(v, 0.0) for v in d.values()) for d in sens.kl.values())
    assert sum(max(sens.kl[n][b], 0.0) for n, b in top.bits.items()) == pytest.approx(least)
    w_before = model[4].weight.detach().clone()
    search.apply_bits_(model, search.uniform_bits(sens, 2))
    assert len(model[4].weight.unique()) <= 4 * 10 and not torch.equal(w_before, model[4].weight)
    with pytest.raises(ValueError, match="narrowest"):
        search.allocate_bits(sens, 10)
    with pytest.raises(ValueError, match="bits"):
        search.bit_sensitivity(model, d, bits=(8, 1))
    with pytest.raises(ValueError, match="was not measured"):
        search.uniform_bits(sens, 3)


def test_lut_and_predictor_on_torch_rank_networks():
    """A real, small measurement: a three-point check that the table is built and ranks smallest < largest."""
    cfg = search.SupernetConfig(widths=(4, 8), strides=(1, 2), stem=4, head=8, kernels=(3,), expands=(2,),
                                depths=(1, 3))
    lut = search.build_lut(cfg, "torch", min_time_s=0.01)
    assert len(lut.entries) == 2 * 2 and lut.overhead_ms > 0
    check = search.check_predictor(search.Supernet(cfg), lut, n=3, min_time_s=0.01)
    assert check.predicted_ms[0] < check.predicted_ms[-1]
    with pytest.raises(ValueError, match="runtime"):
        search.build_lut(cfg, "nonesuch")
    with pytest.raises(ValueError, match="threads"):
        search.build_lut(cfg, "torch", threads=0)
