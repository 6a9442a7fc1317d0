"""mclab.llm.quant: group-wise INT8/INT4 round trips, packing, AWQ-style and GPTQ-style layers, model-level bytes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mclab import llm
from mclab.llm import quant as Q

TINY = llm.LlamaConfig(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=128, max_seq_len=96)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group", [32, 64, 128])
def test_round_trip_within_half_a_step(bits, group):
    torch.manual_seed(0)
    w = torch.randn(48, 256) * torch.rand(48, 1) * 3
    scale, zero = Q.qparams(w, bits, group)
    q = Q.quantize(w, scale, zero, bits, group)
    assert q.dtype == torch.uint8 and int(q.max()) <= 2**bits - 1
    err = (Q.dequantize(q, scale, zero, group) - w).abs().unflatten(-1, (-1, group))
    bound = scale[..., None] / 2 * (1 + 1e-6)  # half a step (the fp16 scale is rounded up, so nothing clips)
    assert (err <= bound).all(), float((err - bound).max())
    # SQNR grows ~6 dB per bit: 8-bit must be far better than 4-bit
    sqnr = 10 * torch.log10(w.pow(2).mean() / (Q.dequantize(q, scale, zero, group) - w).pow(2).mean())
    assert sqnr > (40 if bits == 8 else 15)


def test_pack_int4_round_trip_and_errors():
    q = torch.randint(0, 16, (5, 64), dtype=torch.uint8)
    p = Q.pack_int4(q)
    assert p.shape == (5, 32) and torch.equal(Q.unpack_int4(p), q)
    with pytest.raises(ValueError, match="even last dimension"):
        Q.pack_int4(q[:, :3])
    with pytest.raises(ValueError, match="0..15"):
        Q.pack_int4(q + 16)


def test_config_rejects_bad_bits_group_and_method():
    with pytest.raises(ValueError, match="bits=3 is not supported; allowed: 4 or 8"):
        Q.WeightQuantConfig(bits=3)
    with pytest.raises(ValueError, match="method='hqq' is not known"):
        Q.WeightQuantConfig(method="hqq")
    with pytest.raises(ValueError, match="group_size=1"):
        Q.WeightQuantConfig(group_size=1)
    m = llm.TinyLlama(TINY)
    with pytest.raises(ValueError, match=r"group_size=48 does not divide the layers\.0\.attention\.wq input width 64"):
        Q.quantize_(m, Q.WeightQuantConfig(group_size=48))
    with pytest.raises(ValueError, match="method='gptq' needs calibration data"):
        Q.quantize_(m, Q.WeightQuantConfig(method="gptq"))
    with pytest.raises(ValueError, match="bits=2"):
        Q.qparams(torch.randn(4, 32), 2, 32)
    with pytest.raises(ValueError, match="awq_clip_grid=-1 must be an int >= 0"):
        Q.WeightQuantConfig(awq_clip_grid=-1)


def test_quant_linear_matches_its_dequantised_weight_and_counts_bytes():
    torch.manual_seed(0)
    w, x = torch.randn(512, 192), torch.randn(3, 192)
    scale, zero = Q.qparams(w, 4, 32)
    layer = Q.QuantLinear(Q.quantize(w, scale, zero, 4, 32), scale, zero, 4, 32)
    assert torch.allclose(layer(x), F.linear(x, layer.weight_dequantized()), atol=1e-5)
    # 4 bits + fp16 scale + uint8 zero per 32 weights = 4.75 bits = 0.148 x FP32
    assert layer.nbytes == 512 * 96 + 512 * 6 * 2 + 512 * 6
    assert layer.nbytes / w.nbytes == pytest.approx(4.75 / 32)


def _synthetic_layer(seed=0, n=1024, d_in=256, d_out=128):
    """Inputs with a few salient channels and correlated features, as in LLM activations."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d_in, d_in, generator=g) / d_in**0.5 + torch.eye(d_in)
    x = torch.randn(n, d_in, generator=g) @ mix
    x[:, :8] *= 20  # salient channels
    w = torch.randn(d_out, d_in, generator=g) * 0.05
    return w, x


@pytest.mark.parametrize("method", ["awq", "gptq"])
def test_awq_and_gptq_beat_rtn_on_the_layer_output(method):
    w, x = _synthetic_layer()
    cfg = Q.WeightQuantConfig(bits=4, group_size=32, method=method)
    q, scale, zero = Q._rtn(w, cfg)
    rtn_err = (x @ (Q.dequantize(q, scale, zero, 32) - w).T).pow(2).mean()
    if method == "awq":
        q, scale, zero, s, alpha = Q._awq(w, x, cfg)
        w_eff = Q.dequantize(q, scale, zero, 32) / s
        assert 0 < alpha <= 1
    else:
        q, scale, zero = Q._gptq(w, 2 * x.T @ x / len(x), cfg)
        w_eff = Q.dequantize(q, scale, zero, 32)
    err = (x @ (w_eff - w).T).pow(2).mean()
    assert err < 0.8 * rtn_err, (float(err), float(rtn_err))


def test_quantize_model_reports_real_bytes_and_keeps_working():
    torch.manual_seed(0)
    m = llm.TinyLlama(TINY).eval()
    tokens = llm.corpus().train[:4096]
    calib = Q.calibrate(m, tokens, n_tokens=1024, seq_len=64)
    assert calib.n_tokens == 1024 and calib.inputs["layers.0.attention.wq"].shape == (1024, 64)
    fp32 = Q.linear_weight_bytes(m)
    x = torch.randint(0, 256, (1, 32))
    for bits, group, method, max_ratio in ((4, 32, "rtn", 0.16), (4, 32, "awq", 0.16), (4, 32, "gptq", 0.16),
                                           (8, 64, "rtn", 0.27)):
        qm, rep = Q.quantized(m, Q.WeightQuantConfig(bits=bits, group_size=group, method=method), calib)
        assert rep.fp32_bytes == fp32 and rep.layers == 14
        assert rep.packed_bytes == Q.linear_weight_bytes(qm) and rep.ratio <= max_ratio
        assert sum(isinstance(mod, Q.QuantLinear) for mod in qm.modules()) == 14
        with torch.no_grad():
            rel = ((qm(x) - m(x)).norm() / m(x).norm()).item()
        assert rel < (0.25 if bits == 4 else 0.02), (rep.label, rel)
    assert not any(isinstance(mod, Q.QuantLinear) for mod in m.modules())  # quantized() left the original alone


def test_cast_keeps_rope_tables_float32():
    m = llm.TinyLlama(TINY)
    b = Q.cast(m, torch.bfloat16)
    assert b.output.weight.dtype == torch.bfloat16 and b.rope_cos.dtype == torch.float32
    assert Q.linear_weight_bytes(b) * 2 == Q.linear_weight_bytes(m)
    with pytest.raises(ValueError, match="floating-point"):
        Q.cast(m, torch.int8)


def test_awq_clipping_search_narrows_ranges_and_lowers_the_layer_error():
    w, x = _synthetic_layer()
    scale, _ = Q.qparams(w, 4, 32)
    narrow, _ = Q.qparams(w, 4, 32, clip=torch.full(scale.shape, 0.5))
    assert torch.allclose(narrow, scale * 0.5, rtol=2e-3)  # half the range, half the step (fp16-stored)

    def layer_err(clip_grid):
        q, sc, z, s, _ = Q._awq(w, x, Q.WeightQuantConfig(bits=4, group_size=32, method="awq", awq_clip_grid=clip_grid))
        return float((x @ (Q.dequantize(q, sc, z, 32) / s - w).T).pow(2).mean())
    assert layer_err(10) < layer_err(0)  # ratio 1 is in the grid, so the search can only keep or lower the error


def test_compare_formats_scores_match_perplexity_and_kl_divergence():
    torch.manual_seed(0)
    m = llm.TinyLlama(TINY).eval()
    val = llm.corpus().val[:1500]
    cfg = Q.WeightQuantConfig(bits=4, group_size=32)
    table = llm.compare_formats(m, ["fp16", cfg], val, decode_tokens=4)
    assert [r.name for r in table.rows] == ["fp32", "fp16", cfg.label]
    assert table["fp32"].perplexity == pytest.approx(llm.perplexity(m, val, seq_len=96), rel=1e-6) and table["fp32"].kld == 0
    qm, _ = Q.quantized(m, cfg)
    assert table[cfg.label].perplexity == pytest.approx(llm.perplexity(qm, val, seq_len=96), rel=1e-6)
    assert table[cfg.label].kld == pytest.approx(llm.kl_divergence(qm, m, val, seq_len=96), rel=1e-4) and table[cfg.label].kld > 0
