"""mclab.nas.latency: the lookup table's arithmetic, and a real (small) table built and checked on torch."""
from __future__ import annotations

import pytest

from mclab import nas


def test_lut_predict_counts_the_overhead_once(make_lut, space):
    lut = make_lut()
    arch = nas.Arch((((3, 2),), ((5, 4), (3, 3)), ((3, 2),)))
    parts = [0.2, 0.3, lut.entries["s0/first/k3e2"], lut.entries["s1/first/k5e4"], lut.entries["s1/rest/k3e3"],
             lut.entries["s2/first/k3e2"]]
    assert lut.predict(arch) == pytest.approx(sum(parts) - 5 * 0.01)
    assert lut.predict(nas.smallest(space)) < lut.predict(arch) < lut.predict(nas.largest(space))


def test_lut_and_predictor_on_torch_rank_networks():
    """A real, small measurement: a three-point check that the table is built and ranks smallest < largest."""
    cfg = nas.SupernetConfig(widths=(4, 8), strides=(1, 2), stem=4, head=8, kernels=(3,), expands=(2,),
                                depths=(1, 3))
    lut = nas.build_lut(cfg, "torch", min_time_s=0.01)
    assert len(lut.entries) == 2 * 2 and lut.overhead_ms > 0
    check = nas.check_predictor(nas.Supernet(cfg), lut, n=3, min_time_s=0.01)
    assert check.predicted_ms[0] < check.predicted_ms[-1]
    with pytest.raises(ValueError, match="runtime"):
        nas.build_lut(cfg, "nonesuch")
    with pytest.raises(ValueError, match="threads"):
        nas.build_lut(cfg, "torch", threads=0)
