"""mclab.runtimes.openvino: the compile config, FP32 pinned and read back, IR files, ISA-capped A/B runs, INT8
with NNCF (quantised, compiled and read back from the runtime graph)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mclab import runtimes
from mclab.runtimes import onnxrt, openvino

SHAPE = (3, 16, 16)  # the toy CNN's input (conftest)


def test_config_sets_the_threads():
    assert openvino.config(2) == {"INFERENCE_NUM_THREADS": 2}
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match=f"threads={bad!r} must be an int >= 1"):
            openvino.config(bad)


def test_runner_reads_the_thread_count_back(tiny_onnx):
    _, path = tiny_onnx
    r = runtimes.load(str(path), "openvino", threads=1)
    assert r.threads == 1 and int(r.handle.get_property("INFERENCE_NUM_THREADS")) == 1


def test_openvino_ab_under_an_isa_cap(tiny_onnx, tmp_path):
    from mclab import hw
    from mclab.runtimes import openvino as ovrt

    _, path = tiny_onnx
    with pytest.raises(ValueError, match="isa='SSE9'; allowed: None"):
        ovrt.ab_under_isa(path, path, (3, 32, 32), isa="SSE9")
    with pytest.raises(ValueError, match="path_b=.*does not exist"):
        ovrt.ab_under_isa(path, tmp_path / "nope.onnx", (3, 32, 32))
    if not hw.cpu_info().features.get("AVX2"):
        pytest.skip("the AVX2 cap needs an x86 CPU with AVX2")
    d = ovrt.ab_under_isa(path, path, (3, 32, 32), isa="AVX2", threads=1, rounds=2, calls=2)
    kernels = {**d["kernels"]["a"], **d["kernels"]["b"]}
    assert d["isa"] == "AVX2" and d["speedup_b_vs_a"] > 0 and kernels  # the convolution's kernel, read back
    assert not any("avx512" in k or "amx" in k for k in kernels), kernels  # the cap took effect


def test_openvino_pins_fp32_and_reads_back_its_precision(tiny_onnx, tmp_path):
    model, path = tiny_onnx
    r = runtimes.load(str(path), "openvino", batch=2, threads=1, input_shape=(3, 32, 32))
    assert r.precision == "fp32" and r.requested == "fp32" and r.input_shape == (2, 3, 32, 32)
    x = r.example_input()
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(r.run(x), expected, atol=1e-4)
    default = runtimes.load(str(path), "openvino", batch=2, threads=1, input_shape=(3, 32, 32), precision="default")
    assert default.precision in ("fp32", "bf16", "fp16")  # whatever the CPU plugin chose, read back
    from mclab.runtimes import openvino as ovrt

    ir = ovrt.to_ir(path, tmp_path / "m.xml")
    assert ir["bin_bytes"] > 0 and runtimes.load(ir["xml"], "openvino", input_shape=(3, 32, 32)).size_bytes == \
        ir["xml_bytes"] + ir["bin_bytes"]
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.onnx. is not a readable ONNX model"):
        runtimes.load(str(bad), "openvino", input_shape=(3, 32, 32))
    with pytest.raises(ValueError, match="float32 array of shape"):
        r.run(x.astype(np.float64))
    with pytest.raises(ValueError, match="precision='int4' is unknown"):
        runtimes.load(str(path), "openvino", precision="int4")
    with pytest.raises(ValueError, match="OpenVINO's CPU plugin takes"):
        ovrt.compile_model(ovrt.read_model(str(path), 1, (3, 32, 32)), precision="int8")  # int8 comes from the model


def _onnx(module, path, shape):
    from mclab.runtimes import export

    return export.export_onnx(module, path, export.ExportConfig(input_shape=shape, verify=False)).path


def test_openvino_int8_quantises_with_nncf_on_random_data(toy_cnn, reference, x):
    model = toy_cnn()
    r = runtimes.load(model, "openvino", batch=2, threads=1, input_shape=SHAPE, precision="int8")
    assert r.precision == "int8" and r.requested == "int8" and r.input_shape == (2, *SHAPE)
    assert r.info["inference_precision"] == "fp32"  # the layers left in floating point are pinned to FP32
    assert r.info["quantiser"].startswith("nncf ") and r.info["preset"] == "performance"
    cal = r.info["calibration"]
    assert cal["data"] == "random N(0, 1), seed 0" and cal["batches"] == 8 and int(r.info["subset_size"]) == 8
    layers = r.info["int8_layers"]
    counts = runtimes.int8_op_counts(r)
    assert counts.get("Convolution u8", 0) + counts.get("Convolution i8", 0) >= 2, counts  # read from the graph
    assert layers["int8"] >= 3 and layers["other"] == len(layers["fp32_layers"])
    assert all("(" in name and "u8" not in name for name in layers["fp32_layers"])
    out, ref = r.run(x), reference(model, x)
    assert out.shape == ref.shape and 0 < np.abs(out - ref).max() < 0.2 * np.abs(ref).max()
    assert r.size_bytes and r.file.endswith(".xml")


def test_quantize_nncf_on_given_batches_and_reads_it_back(tiny_module, tmp_path):
    model = tiny_module()
    src = _onnx(model, tmp_path / "tiny.onnx", (3, 16, 16))
    batches = [torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    q = openvino.quantize_nncf(src, tmp_path / "q" / "tiny_int8.xml", batches, preset="mixed", subset_size=2)
    assert q.preset == "mixed" and q.subset_size == 2 and q.fake_quantize >= 2
    assert q.calibration == {"data": "3 given batches", "batches": 2, "images": 8, "input_shape": [3, 16, 16],
                                "model_type": "cnn", "ignored_types": []}
    assert q.bytes == sum(os.path.getsize(f) for f in (q.xml, q.bin))
    for asked in ("int8", "fp32"):  # a quantised IR is compiled as it is, and says how it was made
        r = runtimes.load(q.xml, "openvino", batch=3, threads=1, precision=asked)
        assert r.precision == "int8" and r.input_shape == (3, 3, 16, 16)  # the IR keeps a dynamic batch
        assert r.info["preset"] == "mixed" and r.info["subset_size"] == "2"
        assert r.info["calibration"]["data"] == "3 given batches"
    with pytest.raises(ValueError, match="already quantised"):
        openvino.quantize_nncf(q.xml, tmp_path / "again.xml", batches)
    # transformer rules quantise only what feeds convolutions and matrix products; an ignored type stays float
    t = openvino.quantize_nncf(src, tmp_path / "t.xml", batches, model_type="transformer")
    assert 1 <= t.fake_quantize <= q.fake_quantize and t.calibration["model_type"] == "transformer"
    import openvino as ov

    kinds = sorted({op.get_type_name() for op in ov.Core().read_model(src).get_ops()} & {"MatMul", "Convolution"})
    none = openvino.quantize_nncf(src, tmp_path / "n.xml", batches, model_type="transformer", ignored_types=kinds)
    assert none.fake_quantize == 0 and none.calibration["ignored_types"] == kinds


def test_openvino_int8_of_a_qdq_file_is_compiled_as_it_is(tiny_module, tmp_path):
    src = _onnx(tiny_module(), tmp_path / "tiny.onnx", (3, 16, 16))
    pre = onnxrt.prepare_onnx(src, tmp_path / "pre", (3, 16, 16))
    cal = onnxrt.calibrate(pre, [np.random.default_rng(i).standard_normal((4, 3, 16, 16), dtype=np.float32)
                                for i in range(2)])
    qdq = onnxrt.quantize_static(pre, tmp_path / "qdq.onnx", cal)
    r = runtimes.load(qdq, "openvino", batch=1, threads=1, precision="int8")
    assert r.precision == "int8" and r.file == str(qdq) and r.info["int8_layers"]["int8"] >= 1
    assert "not NNCF" in r.info["quantiser"] and r.info["calibration"] == "not recorded in the file"


def test_quantize_nncf_bad_input_is_a_clear_error(tiny_onnx, tmp_path):
    _, path = tiny_onnx
    out = tmp_path / "q.xml"
    ok = [np.zeros((2, 3, 32, 32), np.float32)]
    cases = [
        (dict(batches=ok, preset="fast"), ValueError, "preset='fast'; NNCF's presets are"),
        (dict(batches=ok, subset_size=0), ValueError, "subset_size=0 must be an int >= 1"),
        (dict(batches=[]), ValueError, "batches is empty"),
        (dict(batches="x.npy"), TypeError, "batches must be a list"),
        (dict(batches=[np.zeros((2, 3, 32, 32)), np.zeros((2, 3, 16, 16))]), ValueError, "sizes after the batch"),
        (dict(batches=[np.zeros((2, 3, 16, 16), np.float32)]), ValueError, "do not fit"),
        (dict(batches=ok, model_type="bert"), ValueError, "model_type=.bert.; allowed"),
        (dict(batches=ok, ignored_types=3), ValueError, "sequence of OpenVINO op type names"),
        (dict(batches=ok, ignored_types="Convolution"), ValueError, "sequence of OpenVINO op type names"),
        (dict(batches=ok, ignored_types=("LSTMCell",)), ValueError, r"\['LSTMCell'\] name no op"),
    ]
    for kwargs, err, match in cases:
        with pytest.raises(err, match=match):
            openvino.quantize_nncf(path, out, **kwargs)
    with pytest.raises(ValueError, match="must end in .xml"):
        openvino.quantize_nncf(path, tmp_path / "q.onnx", ok)
    with pytest.raises(ValueError, match="does not exist"):
        openvino.quantize_nncf(tmp_path / "nope.onnx", out, ok)


def test_run_path_matches_the_dict_call_and_reads_back_what_it_set(tiny_onnx):
    _, path = tiny_onnx
    r = runtimes.load(str(path), "openvino", batch=2, threads=1, input_shape=(3, 32, 32))
    ref = r.handle.create_infer_request()  # the previous run path: a dict per call, the output copied

    def previous(a):
        return np.array(ref.infer({0: a}, share_inputs=True)[0], copy=True)

    x = r.example_input()
    first = r.run(x)
    np.testing.assert_array_equal(first, previous(x))
    x *= 2  # the same array changed in place: the shared input tensor sees it
    np.testing.assert_array_equal(r.run(x), previous(x))
    y = r.example_input(seed=1)  # another array is bound in its place
    np.testing.assert_array_equal(r.run(y), previous(y))
    ro = y.copy()
    ro.flags.writeable = False  # read-only and strided inputs cannot be shared: copied first
    strided = np.repeat(y, 2, axis=-1)[..., ::2]
    for a in (ro, strided):
        np.testing.assert_array_equal(r.run(a), previous(np.ascontiguousarray(a)))
    out = r.run(y)
    assert out is not r.run(y) and out.flags.owndata  # each output is a copy, not OpenVINO's buffer
    info = r.info
    assert (info["streams"], info["inference_threads"], info["performance_hint"]) == (1, 1, "LATENCY")
    assert info["inference_precision"] == "fp32" and isinstance(info["cpu_pinning"], bool)
    assert info["scheduling_core_type"] in ("ANY_CORE", "PCORE_ONLY", "ECORE_ONLY")
    assert info == {"version": info["version"], **openvino.compiled_facts(r.handle)}


def test_hint_and_streams_knobs_are_read_back(tiny_onnx):
    _, path = tiny_onnx
    r = runtimes.load(str(path), "openvino", threads=1, hint="THROUGHPUT", streams=1)
    assert r.info["performance_hint"] == "THROUGHPUT" and r.info["streams"] == 1
    assert runtimes.load(str(path), "openvino", threads=1).info["performance_hint"] == "LATENCY"
