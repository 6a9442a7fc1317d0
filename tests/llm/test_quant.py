"""mclab.llm.quant: group-wise INT8/INT4 on mclab.quant's arithmetic (identical integers and fp16 scales),
packed layers, AWQ-style and GPTQ-style algorithms, model-level bytes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mclab import llm, quant
from mclab.llm import quant as Q


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group", [32, 64, 128])
def test_round_trip_within_half_a_step(bits, group):
    torch.manual_seed(0)
    w = torch.randn(48, 256) * torch.rand(48, 1) * 3
    q, qp = Q._rtn(w, Q.LLMQuantConfig(bits=bits, group_size=group))
    assert q.dtype == torch.uint8 and int(q.max()) <= 2**bits - 1
    assert qp.scale.dtype == torch.float16 and qp.scale.shape == (48, 256 // group)
    layer = Q.QuantLinear(q, qp)
    err = (layer.weight_dequantized() - w).abs().unflatten(-1, (-1, group))
    bound = qp.scale.float()[..., None] / 2 * (1 + 1e-6)  # half a step (the fp16 scale is rounded up: nothing clips)
    assert (err <= bound).all(), float((err - bound).max())
    # SQNR grows ~6 dB per bit: 8-bit must be far better than 4-bit
    assert quant.sqnr_db(w, layer.weight_dequantized()) > (40 if bits == 8 else 15)


def _awkward_weight(out=64, width=64, seed=0):
    """Random weights with an all-zero group, a constant group, a positive-only group, an outlier and tiny values."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, width, generator=g) * 0.05
    w[0, :32] = 0
    w[1, :32] = 0.25
    w[2, :32] = w[2, :32].abs()
    w[3, 5] = 8.0
    w[4] *= 1e-6
    return w


@pytest.mark.parametrize("bits, group", [(4, 32), (4, 64), (8, 32)])
def test_llm_path_and_mclab_quant_give_identical_integers_and_fp16_scales(tiny_model, bits, group):
    m = tiny_model()
    with torch.no_grad():
        m.layers[0].attention.wq.weight.copy_(_awkward_weight())
    floats = {n: lin.weight.detach().clone() for n, lin in llm.quant_linears(m).items()}
    qm = llm.quantized(m, llm.LLMQuantConfig(bits=bits, group_size=group)).model  # RTN
    for name, w in floats.items():
        layer = qm.get_submodule(name)
        assert isinstance(layer, Q.QuantLinear)
        direct = quant.qparams(w, bits, axis=1, group_size=group, scale_dtype=torch.float16)
        assert torch.equal(layer.integers(), quant.quantize(w, direct)), name
        assert layer.scales.dtype == torch.float16 and torch.equal(layer.scales, direct.scale), name
        assert torch.equal(layer.zeros.long(), direct.zero_point), name
        assert torch.equal(layer.weight_dequantized(), quant.dequantize(quant.quantize(w, direct), direct)), name


def test_config_rejects_bad_bits_group_and_algorithm(tiny_model):
    with pytest.raises(ValueError, match="bits=3 is not supported; allowed: 4 or 8"):
        Q.LLMQuantConfig(bits=3)
    with pytest.raises(ValueError, match="algorithm='hqq' is not known; allowed: rtn, awq, gptq"):
        Q.LLMQuantConfig(algorithm="hqq")
    with pytest.raises(ValueError, match="group_size=1"):
        Q.LLMQuantConfig(group_size=1)
    with pytest.raises(ValueError, match="awq_clip_grid=-1 must be an int >= 0"):
        Q.LLMQuantConfig(awq_clip_grid=-1)
    m = tiny_model()
    with pytest.raises(ValueError, match=r"group_size=48 does not divide the layers\.0\.attention\.wq input width 64"):
        Q.quantize_(m, Q.LLMQuantConfig(group_size=48))
    with pytest.raises(ValueError, match="algorithm='gptq' needs calibration inputs"):
        Q.quantize_(m, Q.LLMQuantConfig(algorithm="gptq"))
    with pytest.raises(TypeError, match="config must be a LLMQuantConfig"):
        Q.quantize_(m, quant.WeightOnlyConfig())


def test_quant_linear_matches_its_dequantised_weight_and_counts_bytes():
    torch.manual_seed(0)
    w, x = torch.randn(512, 192), torch.randn(3, 192)
    layer = Q.QuantLinear(*Q._rtn(w, Q.LLMQuantConfig(bits=4, group_size=32)))
    assert torch.allclose(layer(x), F.linear(x, layer.weight_dequantized()), atol=1e-5)
    # 4 bits + fp16 scale + uint8 zero per 32 weights = 4.75 bits = 0.148 x FP32
    assert layer.nbytes == 512 * 96 + 512 * 6 * 2 + 512 * 6
    assert layer.nbytes / w.nbytes == pytest.approx(4.75 / 32)
    with pytest.raises(ValueError, match="unsigned 4- or 8-bit integers in groups"):
        Q.QuantLinear(torch.zeros(4, 32, dtype=torch.uint8), quant.qparams(w[:4, :32], 8, symmetric=True, axis=0))


def _synthetic_layer(seed=0, n=1024, d_in=256, d_out=128):
    """Inputs with a few salient channels and correlated features, as in LLM activations."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d_in, d_in, generator=g) / d_in**0.5 + torch.eye(d_in)
    x = torch.randn(n, d_in, generator=g) @ mix
    x[:, :8] *= 20  # salient channels
    w = torch.randn(d_out, d_in, generator=g) * 0.05
    return w, x


@pytest.mark.parametrize("algorithm", ["awq", "gptq"])
def test_awq_and_gptq_beat_rtn_on_the_layer_output(algorithm):
    w, x = _synthetic_layer()
    cfg = Q.LLMQuantConfig(bits=4, group_size=32, algorithm=algorithm)
    q, qp = Q._rtn(w, cfg)
    rtn_err = (x @ (quant.dequantize(q, qp) - w).T).pow(2).mean()
    if algorithm == "awq":
        q, qp, s, alpha = Q._awq(w, x, cfg)
        w_eff = quant.dequantize(q, qp) / s
        assert 0 < alpha <= 1
    else:
        q, qp = Q._gptq(w, 2 * x.T @ x / len(x), cfg)
        w_eff = quant.dequantize(q, qp)
        assert qp.scale.dtype == torch.float16 and qp.scale.shape == (128, 8)
    err = (x @ (w_eff - w).T).pow(2).mean()
    assert err < 0.8 * rtn_err, (float(err), float(rtn_err))


def test_quantize_model_reports_real_bytes_and_keeps_working(tiny_model):
    m = tiny_model()
    tokens = llm.corpus().train[:4096]
    inputs = Q.capture_inputs(m, tokens, n_tokens=1024, seq_len=64)
    assert inputs.n_tokens == 1024 and inputs.inputs["layers.0.attention.wq"].shape == (1024, 64)
    assert inputs.as_dict()["layers"]["layers.0.attention.wq"] == [1024, 64]
    fp32 = Q.linear_weight_bytes(m)
    x = torch.randint(0, 256, (1, 32))
    for bits, group, algorithm, max_ratio in ((4, 32, "rtn", 0.16), (4, 32, "awq", 0.16), (4, 32, "gptq", 0.16),
                                              (8, 64, "rtn", 0.27)):
        res = Q.quantized(m, Q.LLMQuantConfig(bits=bits, group_size=group, algorithm=algorithm), inputs)
        qm, rep = res.model, res.report
        assert res.as_dict() == rep.as_dict() and rep.algorithm == algorithm
        assert rep.fp32_bytes == fp32 and rep.layers == 14
        assert rep.packed_bytes == Q.linear_weight_bytes(qm) and rep.ratio <= max_ratio
        assert sum(isinstance(mod, Q.QuantLinear) for mod in qm.modules()) == 14
        with torch.no_grad():
            rel = ((qm(x) - m(x)).norm() / m(x).norm()).item()
        assert rel < (0.25 if bits == 4 else 0.02), (rep.label, rel)
    assert not any(isinstance(mod, Q.QuantLinear) for mod in m.modules())  # quantized() left the original alone


def test_cast_keeps_rope_tables_float32(tiny_model):
    m = tiny_model()
    b = Q.cast(m, torch.bfloat16)
    assert b.output.weight.dtype == torch.bfloat16 and b.rope_cos.dtype == torch.float32
    assert Q.linear_weight_bytes(b) * 2 == Q.linear_weight_bytes(m)
    with pytest.raises(ValueError, match="floating-point"):
        Q.cast(m, torch.int8)


def test_awq_clipping_search_narrows_ranges_and_lowers_the_layer_error():
    w, x = _synthetic_layer()
    full = Q._group_qparams(w, 4, 32)
    narrow = Q._group_qparams(w, 4, 32, torch.full(full.scale.shape, 0.5))
    assert torch.allclose(narrow.scale.float(), full.scale.float() * 0.5, rtol=2e-3)  # half the range, half the step

    def layer_err(clip_grid):
        cfg = Q.LLMQuantConfig(bits=4, group_size=32, algorithm="awq", awq_clip_grid=clip_grid)
        q, qp, s, _ = Q._awq(w, x, cfg)
        return float((x @ (quant.dequantize(q, qp) / s - w).T).pow(2).mean())

    assert layer_err(10) < layer_err(0)  # ratio 1 is in the grid, so the search can only keep or lower the error
