"""mclab.llm.outliers: function-preserving outlier channels, W8A8 with and without SmoothQuant."""
from __future__ import annotations

import pytest
import torch

from mclab import llm


def _tokens(n: int = 2048, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("scale", [0.25, 8.0, 64.0])
def test_outliers_preserve_the_function(tiny_model, scale):
    m = tiny_model(1)
    res = llm.with_outliers(m, llm.OutlierConfig(scale=scale, channels=3))
    assert isinstance(res, llm.ModelCopy) and res.as_dict() == res.report.as_dict()
    mo, rep = res.model, res.report
    x = _tokens(96).reshape(1, -1)
    assert llm.max_logit_difference(m, mo, x) <= 1e-3
    n_layers = m.config.n_layers
    assert len(rep.channels) == 3 and len(rep.norms) == 2 * n_layers and len(rep.linears) == 5 * n_layers
    ch = torch.tensor(rep.channels)
    for i, (a, b) in enumerate(zip(m.layers, mo.layers, strict=True)):  # gains x s, the reading columns / s
        assert torch.allclose(b.attention_norm.weight[ch], a.attention_norm.weight[ch] * scale), i
        assert torch.allclose(b.feed_forward.w1.weight[:, ch], a.feed_forward.w1.weight[:, ch] / scale), i
        others = torch.ones(m.config.dim, dtype=torch.bool)
        others[ch] = False
        assert torch.equal(b.ffn_norm.weight[others], a.ffn_norm.weight[others])
    # the original is untouched
    assert torch.equal(m.layers[0].attention_norm.weight, tiny_model(1).layers[0].attention_norm.weight)


def test_outliers_make_salient_channels(tiny_model):
    m = tiny_model()
    base = llm.channel_salience(llm.capture_inputs(m, _tokens(), n_tokens=1024, seq_len=64))
    res = llm.with_outliers(m, llm.OutlierConfig(scale=20.0, channels=(1, 5)))
    mo, rep = res.model, res.report
    after = llm.capture_inputs(mo, _tokens(), n_tokens=1024, seq_len=64)
    sal = llm.channel_salience(after)
    name = "layers.0.attention.wq"
    assert sal[name] > 10 * base[name]
    assert set(after.inputs[name].abs().mean(0).topk(2).indices.tolist()) == {1, 5}
    assert rep.channels == [1, 5]


def test_rtn_loses_outliers_and_awq_finds_them_back(tiny_model):
    m = tiny_model()
    mo = llm.with_outliers(m, llm.OutlierConfig(scale=32.0, channels=2)).model
    tokens = _tokens(4096)
    inputs = llm.capture_inputs(mo, tokens, n_tokens=1024, seq_len=64)
    cfg = dict(bits=4, group_size=64)
    rtn = llm.kl_divergence(llm.quantized(mo, llm.LLMQuantConfig(**cfg)).model, mo, tokens, seq_len=64)
    awq = llm.kl_divergence(llm.quantized(mo, llm.LLMQuantConfig(**cfg, algorithm="awq"), inputs).model, mo,
                            tokens, seq_len=64)
    plain = llm.kl_divergence(llm.quantized(m, llm.LLMQuantConfig(**cfg)).model, m, tokens, seq_len=64)
    assert rtn > 2 * plain  # the outliers hurt round-to-nearest
    assert awq < rtn / 2  # the activation-aware search recovers most of it


def test_smoothquant_repairs_per_tensor_w8a8(tiny_model):
    m = tiny_model()
    mo = llm.with_outliers(m, llm.OutlierConfig(scale=64.0, channels=2)).model
    tokens = _tokens(4096)
    inputs = llm.capture_inputs(mo, tokens, n_tokens=1024, seq_len=64)
    res_n, res_s = llm.w8a8(mo, llm.W8A8Config(alpha=None), inputs), llm.w8a8(mo, llm.W8A8Config(alpha=0.5), inputs)
    assert isinstance(res_n, llm.ModelCopy) and res_n.as_dict() == res_n.report.as_dict()
    (naive, rep_n), (smooth, rep_s) = (res_n.model, res_n.report), (res_s.model, res_s.report)
    assert isinstance(naive.layers[0].attention.wq, llm.W8A8Linear) and rep_n.layers == 7 * m.config.n_layers
    kl_n = llm.kl_divergence(naive, mo, tokens, seq_len=64)
    kl_s = llm.kl_divergence(smooth, mo, tokens, seq_len=64)
    assert kl_s < kl_n / 2
    name = "layers.0.attention.wq"
    assert rep_s.act_absmax[name] < rep_n.act_absmax[name] / 4  # migration shrank the activation range


def test_smooth_scales_formula():
    x = torch.tensor([1.0, 4.0, 100.0])
    w = torch.tensor([[0.5, -2.0, 0.1], [0.25, 1.0, -0.2]])
    s = llm.smooth_scales(x, w, 0.5)
    assert torch.allclose(s, (x ** 0.5) / (w.abs().amax(0) ** 0.5))
    assert torch.allclose(llm.smooth_scales(x, w, 1.0), x)


def test_w8a8_linear_integers(tiny_model):
    lin = torch.nn.Linear(64, 16, bias=False)
    q = llm.W8A8Linear(lin.weight, act_absmax=3.0)
    assert q.qweight.dtype == torch.int8 and q.w_scale.shape == (16,)
    x = torch.randn(5, 64).clamp(-3, 3)
    assert torch.allclose(q(x), lin(x), atol=0.05)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_outlier_scale_must_be_positive(bad):
    with pytest.raises(ValueError, match=r"scale=.* must be a finite number > 0"):
        llm.OutlierConfig(scale=bad)


def test_outlier_bad_input(tiny_model):
    with pytest.raises(ValueError, match="channels=0"):
        llm.OutlierConfig(channels=0)
    with pytest.raises(ValueError, match="must be < the model width dim=64"):
        llm.with_outliers(tiny_model(), llm.OutlierConfig(channels=(3, 64)))
    with pytest.raises(TypeError, match="must be a mclab.llm.TinyLlama"):
        llm.add_outliers_(torch.nn.Linear(2, 2), llm.OutlierConfig())
    with pytest.raises(ValueError, match=r"alpha=1.5 must be None"):
        llm.W8A8Config(alpha=1.5)
    with pytest.raises(TypeError, match="LayerInputs"):
        llm.w8a8(tiny_model(), llm.W8A8Config(), inputs={})


def test_largest_channels(tiny_model):
    m = tiny_model()
    inputs = llm.capture_inputs(m, _tokens(), n_tokens=512, seq_len=64)
    mean = torch.stack([inputs.inputs[f"layers.{i}.{n}"].abs().mean(0) for i in range(2)
                        for n in ("attention.wq", "feed_forward.w1")]).mean(0)
    ch = llm.largest_channels(inputs, 3)
    assert ch == tuple(sorted(mean.topk(3).indices.tolist()))
    mo = llm.with_outliers(m, llm.OutlierConfig(scale=8.0, channels=ch)).model
    assert llm.largest_channels(llm.capture_inputs(mo, _tokens(), n_tokens=512, seq_len=64), 3) == ch
    with pytest.raises(ValueError, match="n=0 must be an int between 1 and the model width 64"):
        llm.largest_channels(inputs, 0)
