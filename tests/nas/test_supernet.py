"""mclab.nas.supernet: weight sharing is exact slicing; extraction, BatchNorm recalibration, the space's checks."""
from __future__ import annotations

import random

import pytest
import torch

from mclab import nas

CFG = nas.SupernetConfig()


def example_inputs(n: int = 8) -> torch.Tensor:
    return torch.randn(n, 1, CFG.size, CFG.size, generator=torch.Generator().manual_seed(0))


def test_sub_block_is_a_slice_of_the_largest():
    torch.manual_seed(0)
    blk = nas.MBBlock(8, 8, kernel=5, expand=4).train()
    x = torch.randn(4, 8, 6, 6)
    for k, e in [(3, 2), (5, 3), (5, 4)]:
        small = blk.sliced(k, e).train()       # train mode: batch statistics, as forward_sub uses
        assert small.dw[0].weight.shape == (8 * e, 1, k, k)
        torch.testing.assert_close(small(x), blk.forward_sub(x, k, e))
    assert torch.equal(blk.sliced(3, 2).dw[0].weight, blk.dw[0].weight[:16, :, 1:4, 1:4])  # centre, first channels


def test_extract_equals_the_supernet_and_runs_alone():
    net = nas.Supernet(CFG).train()
    x = example_inputs()
    for arch in (nas.largest(CFG), nas.smallest(CFG), nas.sample_arch(CFG, random.Random(3))):
        sub = nas.extract(net, arch).train()
        torch.testing.assert_close(sub(x), net(x, arch))
        n_blocks = sum(isinstance(m, nas.MBBlock) for m in sub)
        assert n_blocks == sum(arch.depths)
    small, big = nas.extract(net, nas.smallest(CFG)), nas.extract(net, nas.largest(CFG))
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in big.parameters())


def test_recalibrate_fixes_stale_batchnorm():
    net = nas.Supernet(CFG)
    sub = nas.extract(net, nas.largest(CFG))
    x = example_inputs(64) * 3 + 1
    nas.recalibrate(sub, [x])
    bn = sub[0][1]
    h = sub[0][0](x)
    torch.testing.assert_close(bn.running_mean, h.mean((0, 2, 3)), atol=1e-5, rtol=1e-4)
    assert not sub.training


def test_arch_validation_and_space_size():
    with pytest.raises(ValueError, match="depth"):
        nas.Arch((((3, 2),) * 4, ((3, 2),), ((3, 2),))).check(CFG)
    with pytest.raises(ValueError, match="kernel=7"):
        nas.Arch((((7, 2),), ((3, 2),), ((3, 2),))).check(CFG)
    with pytest.raises(ValueError, match="stages"):
        nas.Arch((((3, 2),),)).check(CFG)
    with pytest.raises(ValueError, match="odd"):
        nas.SupernetConfig(kernels=(3, 4))
    with pytest.raises(ValueError, match="widths"):
        nas.SupernetConfig(widths=(8, 16), strides=(1, 2, 2))
    a = nas.sample_arch(CFG, random.Random(0))
    assert nas.Arch.from_dict(a.as_dict()) == a
    rng = random.Random(1)
    seen = {nas.sample_arch(CFG, rng) for _ in range(300)}
    assert len(seen) > 250        # the space is large: draws rarely repeat


def test_supernet_keeps_running_statistics_and_extract_carries_them():
    net = nas.Supernet(CFG).train()
    x = example_inputs(32) * 2 + 0.5
    small = nas.smallest(CFG)
    blk = net.stages[0][0]
    h = small.stages[0][0][1] * blk.cin              # hidden channels of the smallest slice
    before = blk.pw[1].running_mean.clone()
    net(x, small)                                    # training mode: the slice's channels move, the others do not
    after = blk.pw[1].running_mean
    assert not torch.equal(after[:h], before[:h])
    assert torch.equal(after[h:], before[h:])
    net.eval()
    frozen = after.clone()
    net(x, small)                                    # eval mode: batch statistics, the buffers stay
    assert torch.equal(blk.pw[1].running_mean, frozen)
    sub = nas.extract(net, nas.largest(CFG))         # the supernet's statistics, not a fresh mean 0 / variance 1
    torch.testing.assert_close(sub[1].pw[1].running_mean, blk.pw[1].running_mean)
    torch.testing.assert_close(sub[1].pw[1].running_var, blk.pw[1].running_var)
