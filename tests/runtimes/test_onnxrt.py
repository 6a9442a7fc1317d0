"""mclab.runtimes.onnxrt: session options, and INT8 built by this runtime's own quantiser (calibrate ->
quantize_static, on mclab.quant's arithmetic)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from mclab import quant, runtimes
from mclab.runtimes import onnxrt

SHAPE = (3, 16, 16)


def test_session_options_set_the_threads():
    so = onnxrt.session_options(2)
    assert so.intra_op_num_threads == 2 and so.inter_op_num_threads == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=f"threads={bad!r} must be an int >= 1"):
            onnxrt.session_options(bad)


def test_session_uses_the_thread_count(tiny_onnx):
    _, path = tiny_onnx
    assert onnxrt.session(str(path), 1).get_session_options().intra_op_num_threads == 1
    assert runtimes.load(str(path), "onnxruntime", threads=1).threads == 1


def test_int8_is_built_by_quant_quantize_static_with_uint8_activations(toy_cnn, x, reference, tmp_path):
    m = toy_cnn()
    r = runtimes.load(m, "onnxruntime", input_shape=SHAPE, batch=2, precision="int8")
    assert r.precision == "int8" and r.requested == "int8"
    assert r.info["activation_type"] == "uint8" and r.info["weight_type"] == "int8"
    assert r.info["calibration"] == {"data": "random N(0, 1), seed 0", "batches": 8, "images": 16, "method": "minmax"}
    ops = runtimes.int8_op_counts(r)
    assert ops.get("QLinearConv", 0) >= 2, ops  # the convolutions really run in INT8
    assert quant.sqnr_db(torch.from_numpy(reference(m, x)), torch.from_numpy(r.run(x))) > 15
    # the same file, built by hand with mclab.quant: identical outputs (one builder, one recipe)
    pre = onnxrt.prepare_onnx(m, str(tmp_path / "m.onnx"), SHAPE)
    rng = np.random.default_rng(0)
    cal = onnxrt.calibrate(pre, [rng.standard_normal((2, *SHAPE), dtype=np.float32) for _ in range(8)])
    by_hand = onnxrt.quantize_static(pre, str(tmp_path / "int8.onnx"), cal)
    mine = runtimes.load(by_hand, "onnxruntime", input_shape=SHAPE, batch=2)
    assert np.array_equal(mine.run(x), r.run(x))


def test_onnxruntime_runner_matches_torch(tiny_onnx):
    model, path = tiny_onnx
    r = runtimes.load(str(path), "onnxruntime", batch=3, threads=1)
    assert r.input_shape == (3, 3, 32, 32) and r.precision == "fp32" and r.threads == 1
    x = r.example_input()
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(r.run(x), expected, rtol=1e-4, atol=1e-5)


def test_graph_optimisation_levels_fold_and_fuse(tmp_path, tiny_module):
    from mclab.runtimes import export, onnxrt

    res = export.export_onnx(tiny_module(), tmp_path / "bn.onnx",
                             export.ExportConfig(input_shape=(3, 16, 16), fold_batchnorm=False))
    assert res.ops["BatchNormalization"] == 1  # kept by the exporter when asked
    folded = export.export_onnx(tiny_module(), tmp_path / "f.onnx", export.ExportConfig(input_shape=(3, 16, 16)))
    assert "BatchNormalization" not in folded.ops  # the exporter's default folds it into the Conv
    levels = {g.level: g for g in onnxrt.optimize_levels(res.path, tmp_path / "opt")}
    assert list(levels) == list(onnxrt.LEVELS)
    assert levels["disable"].ops == export.op_counts(res.path) and not levels["disable"].removed
    assert levels["basic"].removed.get("BatchNormalization") == 1  # Conv+BN folded
    assert levels["extended"].added.get("com.microsoft:FusedConv") == 1  # Conv+ReLU fused
    assert levels["extended"].n_nodes < levels["basic"].n_nodes < levels["disable"].n_nodes
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16), dtype=np.float32)
    outs = [onnxrt.session(g.path, 1, level="disable").run(None, {"input": x})[0] for g in levels.values()]
    assert all(np.abs(o - outs[0]).max() < 1e-4 for o in outs)  # every optimised graph computes the same
    with pytest.raises(ValueError, match="levels="):
        onnxrt.optimize_levels(res.path, tmp_path, levels=("fastest",))
    with pytest.raises(ValueError, match="does not exist"):
        onnxrt.optimize_levels(tmp_path / "nope.onnx", tmp_path)

@pytest.mark.parametrize("call, match", [
    (lambda: onnxrt.prepare_onnx("/nonexistent/model.onnx", "/tmp/x", (1, 8, 8)), "does not exist"),
    (lambda: onnxrt.calibrate("unused.onnx", [], method="minmax"), "batches is empty"),
    (lambda: onnxrt.calibrate("unused.onnx", [np.zeros(1)], method="entropy"), "method='entropy'"),
])
def test_int8_builder_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_static_int8_runs_for_real_on_onnxruntime_and_openvino(small, tmp_path):
    pre = onnxrt.prepare_onnx(small, str(tmp_path / "m.onnx"), (1, 16, 16))
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(8, 1, 16, 16, generator=g) for _ in range(3)]
    cal = onnxrt.calibrate(pre, batches)
    assert cal.n_images == 24 and all(lo <= 0 <= hi for lo, hi in cal.ranges.values())
    pct = onnxrt.calibrate(pre, batches, method="percentile", percentile=99.0)
    assert all(pct.ranges[n][1] <= cal.ranges[n][1] + 1e-6 for n in cal.ranges)
    q = onnxrt.quantize_static(pre, str(tmp_path / "int8.onnx"), cal)
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
    dyn = onnxrt.quantize_dynamic(pre, str(tmp_path / "dyn.onnx"))
    assert "ConvInteger" in runtimes.int8_op_counts(runtimes.load(dyn, "onnxruntime", input_shape=(1, 16, 16)))


def test_corrupt_model_file_is_a_value_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ValueError, match="bad.onnx"):
        onnxrt.prepare_onnx(str(bad), str(tmp_path / "out"), (1, 8, 8))
    with pytest.raises(TypeError, match="Calibration"):
        onnxrt.quantize_static(str(bad), str(tmp_path / "q.onnx"), {"x": (0, 1)})


def _activation_zero_point_types(path) -> set[int]:
    """ONNX element types of the zero points of every QuantizeLinear (activations: QDQ weights need none)."""
    m = onnx.load(str(path))
    inits = {i.name: i.data_type for i in m.graph.initializer}
    return {inits[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear"}


def test_activation_type_is_a_parameter_with_uint8_default(small, tmp_path):
    pre = onnxrt.prepare_onnx(small, str(tmp_path / "m.onnx"), (1, 16, 16))
    cal = onnxrt.calibrate(pre, [torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))])
    u8 = onnxrt.quantize_static(pre, str(tmp_path / "u8.onnx"), cal)
    s8 = onnxrt.quantize_static(pre, str(tmp_path / "s8.onnx"), cal, activation_type="int8")
    assert _activation_zero_point_types(u8) == {onnx.TensorProto.UINT8}
    assert _activation_zero_point_types(s8) == {onnx.TensorProto.INT8}
    assert onnxrt.ACTIVATION_TYPES == ("uint8", "int8")
    with pytest.raises(ValueError, match=r"activation_type='s8' is not allowed; allowed: 'uint8' \| 'int8'"):
        onnxrt.quantize_static(pre, str(tmp_path / "x.onnx"), cal, activation_type="s8")


def test_execution_mode_knob_is_recorded(tiny_onnx):
    _, path = tiny_onnx
    r = runtimes.load(str(path), "onnxruntime", execution_mode="parallel")
    assert r.info["execution_mode"] == "parallel"
    assert r.handle.get_session_options().execution_mode.name == "ORT_PARALLEL"
    with pytest.raises(ValueError, match="execution_mode='fast'"):
        runtimes.load(str(path), "onnxruntime", execution_mode="fast")
