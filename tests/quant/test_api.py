"""mclab.quant.api: weight-only fake quantisation and QAT (pure PyTorch)."""
from __future__ import annotations

import pytest
import torch

from mclab import quant


def test_weight_only_quantisation_report(small):
    import copy

    m = copy.deepcopy(small)
    rep = quant.quantize_weights_(m, quant.WeightOnlyConfig(bits=8))
    assert set(rep.sqnr_db) == {"0", "4", "8", "14"} and rep.min_sqnr_db > 35
    assert 0.25 < rep.weight_bytes / rep.fp32_weight_bytes < 0.30  # 1 byte per weight + a scale per channel
    w0 = small[8].weight.detach()
    qp = quant.qparams(w0, 8, symmetric=True, axis=0)
    assert torch.equal(m[8].weight, quant.dequantize(quant.quantize(w0, qp), qp))  # replaced by its grid values
    rep4 = quant.quantize_weights_(copy.deepcopy(small), quant.WeightOnlyConfig(bits=4, group_size=8))
    assert rep4.weight_bytes < rep.weight_bytes and rep4.min_sqnr_db < rep.min_sqnr_db


def test_fold_batchnorm_keeps_outputs(small):
    x = torch.randn(4, 1, 16, 16)
    folded = quant.fold_batchnorm(small)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        assert torch.allclose(folded(x), small(x), atol=1e-5)


def test_fake_quant_model_and_qat(small):
    from mclab import data

    x = data.digits("val", size=16).x[:64]
    fq = quant.fake_quant_model(small, 8, calibration=[x])
    with torch.no_grad():
        assert quant.sqnr_db(small(x), fq(x)) > 20
    res = quant.qat(small, quant.QATConfig(epochs=1, lr=1e-3), size=16)
    assert len(res.loss) == 1 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in res.float.modules())
    with torch.no_grad():
        assert quant.sqnr_db(res.fake(x), res.float(x)) > 20  # the same weights, with and without fake quantisation


@pytest.mark.parametrize("call, match", [
    (lambda: quant.WeightOnlyConfig(bits=0), "bits=0"),
    (lambda: quant.WeightOnlyConfig(method="kl"), "method='kl'"),
    (lambda: quant.QATConfig(bits=20), "bits=20"),
    (lambda: quant.QATConfig(epochs=0), "epochs=0"),
])
def test_model_level_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
