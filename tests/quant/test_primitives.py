"""mclab.quant.primitives: scales, zero points and integers bit-exact with PyTorch; float16 scales; error
metrics, k-means, integer-only arithmetic and INT4 packing."""
from __future__ import annotations

import math

import pytest
import torch
from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver

from mclab import quant

pytestmark = pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")

# (dtype, qscheme) of the PyTorch observer <-> our (symmetric, signed)
SCHEMES = {
    "affine-u8": (torch.quint8, False, False),
    "affine-s8": (torch.qint8, False, True),
    "symmetric-s8": (torch.qint8, True, True),
    "symmetric-u8": (torch.quint8, True, False),
}


def _tensors():
    g = torch.Generator().manual_seed(0)
    yield "normal", torch.randn(4, 33, 5, generator=g) * 3 + 0.5
    yield "positive", torch.rand(6, 7, generator=g) * 10
    yield "negative", -torch.rand(3, 50, generator=g)
    yield "outlier", torch.cat([torch.randn(2, 40, generator=g), torch.full((2, 1), 80.0)], 1)
    yield "constant", torch.full((3, 4), 2.5)
    yield "zeros", torch.zeros(2, 8)
    yield "single", torch.tensor([[-0.7]])
    yield "tiny", torch.randn(5, 9, generator=g) * 1e-9


def _with_halves(x: torch.Tensor, scale: torch.Tensor, axis: int | None) -> torch.Tensor:
    """Put values that land exactly on .5 of a grid step into x (the rounding-mode test)."""
    x = x.clone()
    flat = x.movedim(axis, 0) if axis is not None else x.reshape(1, -1)
    s = scale.reshape(-1, *([1] * (flat.dim() - 1))) if axis is not None else scale.reshape(1)
    halves = (torch.arange(flat[0].numel()).reshape(flat[0].shape) % 7 - 3).float() + 0.5
    flat[...] = torch.where(torch.arange(flat[0].numel()).reshape(flat[0].shape) % 2 == 0, halves * s, flat)
    return flat.movedim(0, axis) if axis is not None else flat.reshape(x.shape)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name, x", list(_tensors()), ids=[n for n, _ in _tensors()])
def test_per_tensor_matches_pytorch_observer_and_integers(scheme, name, x):
    dtype, sym, signed = SCHEMES[scheme]
    obs = MinMaxObserver(dtype=dtype, qscheme=torch.per_tensor_symmetric if sym else torch.per_tensor_affine)
    obs(x)
    ref_s, ref_z = obs.calculate_qparams()
    qp = quant.qparams(x, 8, symmetric=sym, signed=signed)
    assert qp.scale.shape == () and qp.scale.dtype == torch.float32
    assert torch.equal(qp.scale.reshape(1), ref_s) and torch.equal(qp.zero_point.reshape(1), ref_z)
    for xx in (x, _with_halves(x, qp.scale, None)):
        ref = torch.quantize_per_tensor(xx, float(ref_s), int(ref_z), dtype)
        q = quant.quantize(xx, qp)
        assert q.dtype == (torch.int8 if signed else torch.uint8)
        assert torch.equal(q, ref.int_repr())
        assert torch.equal(quant.dequantize(q, qp), ref.dequantize())


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("name, x", list(_tensors()), ids=[n for n, _ in _tensors()])
def test_per_channel_matches_pytorch_observer_and_integers(scheme, axis, name, x):
    dtype, sym, signed = SCHEMES[scheme]
    obs = PerChannelMinMaxObserver(ch_axis=axis % x.dim(), dtype=dtype,
                                   qscheme=torch.per_channel_symmetric if sym else torch.per_channel_affine)
    obs(x)
    ref_s, ref_z = obs.calculate_qparams()
    qp = quant.qparams(x, 8, symmetric=sym, signed=signed, axis=axis)
    assert torch.equal(qp.scale, ref_s) and torch.equal(qp.zero_point, ref_z)
    for xx in (x, _with_halves(x, qp.scale, axis % x.dim())):
        ref = torch.quantize_per_channel(xx, ref_s, ref_z, axis % x.dim(), dtype)
        assert torch.equal(quant.quantize(xx, qp), ref.int_repr())
        assert torch.equal(quant.dequantize(quant.quantize(xx, qp), qp), ref.dequantize())


def test_narrow_range_matches_a_custom_observer_range():
    w = torch.randn(16, 3, 3, 3)
    obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                   quant_min=-127, quant_max=127)
    obs(w)
    s, z = obs.calculate_qparams()
    qp = quant.qparams(w, 8, symmetric=True, axis=0, narrow=True)
    assert torch.equal(qp.scale, s) and torch.equal(qp.zero_point, z) and qp.qmin == -127
    assert torch.allclose(qp.scale, w.abs().amax((1, 2, 3)) / 127)  # ONNX Runtime's weight scale
    assert int(quant.quantize(w, qp).min()) >= -127


def test_fake_quantize_matches_pytorch_values_and_straight_through_gradient():
    x = (torch.randn(200) * 4).requires_grad_()
    qp = quant.qparams(x.detach().clamp(-3, 3), 8)  # a range that clips the tails
    y = quant.fake_quantize(x, qp)
    x2 = x.detach().clone().requires_grad_()
    ref = torch.fake_quantize_per_tensor_affine(x2, float(qp.scale), int(qp.zero_point), 0, 255)
    assert torch.equal(y, ref)
    y.sum().backward()
    ref.sum().backward()
    assert torch.equal(x.grad, x2.grad) and 0 < int(x.grad.sum()) < 200  # clipped values get no gradient


def test_fake_quantize_per_channel_matches_pytorch():
    w = torch.randn(8, 20)
    qp = quant.qparams(w, 8, symmetric=True, axis=0)
    ref = torch.fake_quantize_per_channel_affine(w, qp.scale, qp.zero_point.int(), 0, -128, 127)
    assert torch.equal(quant.fake_quantize(w, qp), ref)


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8, 12, 16])
@pytest.mark.parametrize("symmetric", [False, True])
def test_all_bit_widths_round_trip_within_half_a_step(bits, symmetric):
    x = torch.randn(64, 32)
    qp = quant.qparams(x, bits, symmetric=symmetric, axis=0)
    q = quant.quantize(x, qp)
    assert int(q.min()) >= qp.qmin and int(q.max()) <= qp.qmax and qp.qmax - qp.qmin == 2**bits - 1
    err = (quant.dequantize(q, qp) - x).abs()
    step = qp.scale[:, None]
    inside = x.abs() <= (qp.qmax - qp.zero_point[:, None]).float() * step  # not clipped
    assert bool((err[inside] <= step.expand_as(x)[inside] / 2 + 1e-6).all())


def test_sqnr_grows_about_six_db_per_bit():
    x = torch.rand(200_000) * 2 - 1  # uniform: the textbook 6.02 dB/bit case
    sq = [quant.error(x, quant.dequantize(quant.quantize(x, qp := quant.qparams(x, b)), qp)).sqnr_db
          for b in range(4, 13)]
    slope = (sq[-1] - sq[0]) / 8
    assert 5.8 < slope < 6.2, sq
    assert quant.sqnr_db(x, x) == math.inf


def test_per_group_scales_shape_and_beat_per_channel():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(8, 64, generator=g) * torch.logspace(-2, 1, 64)  # input columns of very different size
    qg = quant.qparams(w, 4, symmetric=True, group_size=16)
    assert qg.scale.shape == (8, 4) and qg.granularity == "per-group" and qg.axis == 1
    assert torch.equal(qg.scale[:, 1], quant.qparams(w[:, 16:32], 4, symmetric=True, axis=0).scale)
    qc = quant.qparams(w, 4, symmetric=True, axis=0)
    small = slice(0, 16)  # the columns of small weights: one scale per row rounds them all to zero
    e_g = quant.error(w[:, small], quant.dequantize(quant.quantize(w, qg), qg)[:, small]).sqnr_db
    e_c = quant.error(w[:, small], quant.dequantize(quant.quantize(w, qc), qc)[:, small]).sqnr_db
    assert e_g > e_c + 10, (e_g, e_c)
    # groups along axis 0 too
    q0 = quant.qparams(w, 8, axis=0, group_size=4)
    assert q0.scale.shape == (2, 64) and quant.quantize(w, q0).shape == w.shape


def test_percentile_and_mse_beat_minmax_with_an_outlier():
    g = torch.Generator().manual_seed(2)
    x = torch.cat([torch.randn(10_000, generator=g), torch.tensor([60.0])])
    sq = {}
    for m in quant.METHODS:
        qp = quant.qparams(x, 4, method=m, percentile=99.9)
        sq[m] = quant.sqnr_db(x, quant.dequantize(quant.quantize(x, qp), qp))
    assert sq["percentile"] > sq["minmax"] + 3 and sq["mse"] >= sq["minmax"] and sq["mse"] >= sq["percentile"] - 0.5, sq
    lo, hi = quant.observe_range(x, method="percentile", percentile=99.9)
    assert float(hi) < 4 and float(lo) > -4


def test_kmeans_beats_linear_on_bell_shaped_weights():
    w = torch.randn(4096, generator=torch.Generator().manual_seed(3))
    cb = quant.kmeans(w, 3)
    assert cb.centroids.shape == (8,) and bool((cb.centroids.diff() > 0).all()) and cb.indices.dtype == torch.uint8
    qp = quant.qparams(w, 3, symmetric=True, signed=True)
    lin = quant.sqnr_db(w, quant.dequantize(quant.quantize(w, qp), qp))
    assert quant.sqnr_db(w, cb.dequantize()) > lin + 2
    assert torch.equal(quant.kmeans(w, 3).centroids, cb.centroids)  # deterministic


def test_integer_only_linear_matches_float_within_one_step():
    g = torch.Generator().manual_seed(4)
    x, w = torch.randn(32, 256, generator=g), torch.randn(64, 256, generator=g) * 0.05
    b = torch.randn(64, generator=g) * 0.1
    y = x @ w.T + b
    xq_p, wq_p, yq_p = quant.qparams(x, 8), quant.qparams(w, 8, symmetric=True, axis=0), quant.qparams(y, 8)
    yq, acc = quant.int_linear(quant.quantize(x, xq_p), xq_p, quant.quantize(w, wq_p), wq_p, b, yq_p)
    assert acc.dtype == torch.int32 and yq.dtype == torch.uint8
    # the reference: the same integer inputs, computed in float64, rounded once
    xd = quant.dequantize(quant.quantize(x, xq_p), xq_p).double()
    wd = quant.dequantize(quant.quantize(w, wq_p), wq_p).double()
    exact = torch.round((xd @ wd.T + b.double()) / yq_p.scale.double()) + yq_p.zero_point
    assert int((yq.long() - exact.clamp(0, 255).long()).abs().max()) <= 1
    assert quant.sqnr_db(y, quant.dequantize(yq, yq_p)) > 30


def test_quantize_multiplier_is_exact_enough():
    m = torch.tensor([0.3, 1e-4, 0.999999999, 2.0**-20, 7.5], dtype=torch.float64)
    m0, shift = quant.quantize_multiplier(m)
    assert bool(((m0 >= 2**30) & (m0 < 2**31)).all())
    assert torch.allclose(m0.double() / 2.0 ** (31 + shift).double(), m.double(), rtol=1e-9)
    with pytest.raises(ValueError, match="multiplier"):
        quant.quantize_multiplier(torch.tensor([0.0]))


def _qp(**kw):
    base = dict(scale=torch.tensor(0.1), zero_point=torch.tensor(0), bits=8)
    return quant.QParams(**{**base, **kw})


@pytest.mark.parametrize("call, match", [
    (lambda: quant.qparams(torch.randn(4), bits=1), "bits=1"),
    (lambda: quant.qparams(torch.randn(4), bits=17), "bits=17"),
    (lambda: quant.qparams(torch.randn(4), bits=8.0), "bits=8.0"),
    (lambda: _qp(scale=torch.tensor(0.0)), "scale must be finite and > 0"),
    (lambda: _qp(scale=torch.tensor(-1.0)), "scale must be finite and > 0"),
    (lambda: _qp(zero_point=torch.tensor(300)), "zero_point range .300, 300. lies outside .*0, 255"),
    (lambda: _qp(zero_point=torch.tensor(-1)), "outside"),
    (lambda: quant.qparams(torch.randn(4, 5), axis=2), "axis=2 does not exist"),
    (lambda: quant.qparams(torch.randn(4, 5), group_size=3), "group_size=3 does not divide"),
    (lambda: quant.qparams(torch.tensor([1.0, float("nan")])), "NaN"),
    (lambda: quant.quantize(torch.tensor([float("nan")]), _qp()), "NaN"),
    (lambda: quant.qparams(torch.randn(4), method="entropy"), "method='entropy'"),
    (lambda: quant.qparams(torch.randn(4), method="percentile", percentile=30), "percentile=30"),
    (lambda: quant.quantize(torch.randn(3, 4), quant.qparams(torch.randn(5, 4), axis=0)), "channels"),
    (lambda: quant.kmeans(torch.randn(10), 0), "bits=0"),
])
def test_bad_input_raises_value_error_naming_it(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="floating-point torch tensor"):
        quant.qparams([1.0, 2.0])
    with pytest.raises(TypeError, match="floating-point"):
        quant.qparams(torch.arange(4))
    with pytest.raises(TypeError, match="QParams"):
        quant.quantize(torch.randn(3), (0.1, 0))


def test_trained_reference_weights_keep_35_db_at_8_bit_per_channel():
    from mclab import models

    m = models.reference(fast=True, progress=False)
    for name, p in m.named_parameters():
        if p.dim() >= 2:
            qp = quant.qparams(p.detach(), 8, symmetric=True, axis=0)
            assert quant.sqnr_db(p, quant.dequantize(quant.quantize(p.detach(), qp), qp)) >= 35, name


# ----------------------------------------------------------------------------- float16 scales and INT4 packing


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group", [16, 64])
def test_float16_scales_are_stored_rounded_up_so_nothing_clips(bits, group):
    g = torch.Generator().manual_seed(5)
    w = torch.randn(24, 128, generator=g) * torch.rand(24, 1, generator=g) * 3
    qp = quant.qparams(w, bits, axis=1, group_size=group, scale_dtype=torch.float16)
    assert qp.scale.dtype == torch.float16 and qp.scale.shape == (24, 128 // group)
    ref = quant.qparams(w, bits, axis=1, group_size=group)  # float32 scales of the same ranges
    assert bool((qp.scale.float() >= ref.scale).all())  # rounded up, never down ...
    assert bool((qp.scale.float() <= ref.scale * (1 + 2**-9)).all())  # ... by about one float16 step at most
    lo, _ = quant.observe_range(w, axis=1, group_size=group)
    assert torch.equal(qp.zero_point, torch.round(-lo.clamp(max=0) / qp.scale.float()).long())  # from the stored scale
    err = (quant.dequantize(quant.quantize(w, qp), qp) - w).abs().unflatten(-1, (-1, group))
    assert bool((err <= qp.scale.float()[..., None] / 2 * (1 + 1e-6)).all())  # half a step: no value clipped


def test_float16_scale_floor_is_the_smallest_normal():
    qp = quant.qparams(torch.zeros(2, 32), 4, axis=1, group_size=32, scale_dtype=torch.float16)
    assert bool((qp.scale == torch.finfo(torch.float16).tiny).all()) and bool((qp.zero_point == 0).all())
    with pytest.raises(ValueError, match=r"scale_dtype=torch.bfloat16 is not allowed; allowed: torch.float32 or"):
        quant.qparams(torch.randn(4), scale_dtype=torch.bfloat16)


def test_pack_int4_round_trip_and_errors():
    q = torch.randint(0, 16, (5, 64), dtype=torch.uint8)
    p = quant.pack_int4(q)
    assert p.shape == (5, 32) and torch.equal(quant.unpack_int4(p), q)
    assert torch.equal(p[0, 0], q[0, 0] | (q[0, 1] << 4))  # byte j = q[2j] | q[2j+1] << 4
    with pytest.raises(ValueError, match="even last dimension"):
        quant.pack_int4(q[:, :3])
    with pytest.raises(ValueError, match="0..15"):
        quant.pack_int4(q + 16)
    with pytest.raises(TypeError, match="uint8"):
        quant.unpack_int4(p.long())
