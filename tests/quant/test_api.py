"""mclab.quant.api: weight-only fake quantisation, static/dynamic INT8 on ONNX Runtime and OpenVINO, QAT."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from mclab import quant, runtimes


@pytest.fixture(scope="module")
def small():
    from mclab import models

    torch.manual_seed(0)
    m = models.small_cnn(8).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding has something to fold
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
    return m


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


def test_static_int8_runs_for_real_on_onnxruntime_and_openvino(small, tmp_path):
    pre = quant.prepare_onnx(small, str(tmp_path / "m.onnx"), (1, 16, 16))
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(8, 1, 16, 16, generator=g) for _ in range(3)]
    cal = quant.calibrate(pre, batches)
    assert cal.n_images == 24 and all(lo <= 0 <= hi for lo, hi in cal.ranges.values())
    pct = quant.calibrate(pre, batches, method="percentile", percentile=99.0)
    assert all(pct.ranges[n][1] <= cal.ranges[n][1] + 1e-6 for n in cal.ranges)
    q = quant.quantize_static(pre, str(tmp_path / "int8.onnx"), cal)
    x = torch.randn(4, 1, 16, 16, generator=g)
    with torch.no_grad():
        ref = small(x)
    ort = runtimes.load(q, "onnxruntime", input_shape=(1, 16, 16), batch=4)
    assert runtimes.int8_op_counts(ort).get("QLinearConv") == 3
    assert quant.sqnr_db(ref, torch.from_numpy(ort.run(x.numpy()))) > 20
    ov = runtimes.load(q, "openvino", input_shape=(1, 16, 16), batch=4)
    ov_ops = runtimes.int8_op_counts(ov)
    assert ov_ops.get("Convolution u8", 0) + ov_ops.get("Convolution i8", 0) == 3
    assert quant.sqnr_db(ref, torch.from_numpy(ov.run(x.numpy()))) > 20
    assert runtimes.batched(ort)(torch.cat([x, x[:1]])).shape == (5, 10)
    dyn = quant.quantize_dynamic(pre, str(tmp_path / "dyn.onnx"))
    assert "ConvInteger" in runtimes.int8_op_counts(runtimes.load(dyn, "onnxruntime", input_shape=(1, 16, 16)))


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
    (lambda: quant.prepare_onnx("/nonexistent/model.onnx", "/tmp/x", (1, 8, 8)), "does not exist"),
    (lambda: quant.calibrate("unused.onnx", [], method="minmax"), "batches is empty"),
    (lambda: quant.calibrate("unused.onnx", [np.zeros(1)], method="entropy"), "method='entropy'"),
])
def test_model_level_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_corrupt_model_file_is_a_value_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ValueError, match="bad.onnx"):
        quant.prepare_onnx(str(bad), str(tmp_path / "out"), (1, 8, 8))
    with pytest.raises(TypeError, match="Calibration"):
        quant.quantize_static(str(bad), str(tmp_path / "q.onnx"), {"x": (0, 1)})


def _activation_zero_point_types(path) -> set[int]:
    """ONNX element types of the zero points of every QuantizeLinear (activations: QDQ weights need none)."""
    m = onnx.load(str(path))
    inits = {i.name: i.data_type for i in m.graph.initializer}
    return {inits[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear"}


def test_activation_type_is_a_parameter_with_uint8_default(small, tmp_path):
    pre = quant.prepare_onnx(small, str(tmp_path / "m.onnx"), (1, 16, 16))
    cal = quant.calibrate(pre, [torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))])
    u8 = quant.quantize_static(pre, str(tmp_path / "u8.onnx"), cal)
    s8 = quant.quantize_static(pre, str(tmp_path / "s8.onnx"), cal, activation_type="int8")
    assert _activation_zero_point_types(u8) == {onnx.TensorProto.UINT8}
    assert _activation_zero_point_types(s8) == {onnx.TensorProto.INT8}
    assert quant.ACTIVATION_TYPES == ("uint8", "int8")
    with pytest.raises(ValueError, match=r"activation_type='s8' is not allowed; allowed: 'uint8' \| 'int8'"):
        quant.quantize_static(pre, str(tmp_path / "x.onnx"), cal, activation_type="s8")
