"""mclab.runtimes.profile: one per-operator profile shape from each runtime's own profiler."""
from __future__ import annotations

import pytest

from mclab import runtimes
from mclab.runtimes import onnxrt, profile

SHAPE = (3, 16, 16)


def _check(p: profile.Profile, runtime: str) -> None:
    assert p.runtime == runtime and p.runs == 3 and p.total_ms > 0 and p.wall_ms > 0
    assert p.ops and abs(sum(o.share for o in p.ops) - 1) < 1e-6
    assert [o.ms for o in p.ops] == sorted((o.ms for o in p.ops), reverse=True)  # largest first
    rows = profile.table([p], top=2)
    assert rows[0]["runtime"] == runtime and rows[0]["#1"].startswith(p.ops[0].op)
    assert p.records(1)[0]["op"] == p.ops[0].op


def test_torch_profile_names_aten_ops(toy_cnn):
    p = profile.profile(runtimes.load(toy_cnn(), "torch", input_shape=SHAPE, threads=1), runs=3)
    _check(p, "torch")
    assert any("conv" in o.op for o in p.ops)


def test_onnxruntime_profile_reads_int8_kernels_and_their_input_dtype(toy_cnn):
    r = runtimes.load(toy_cnn(), "onnxruntime", input_shape=SHAPE, threads=1, precision="int8")
    p = profile.profile(r, runs=3)
    _check(p, "onnxruntime")
    ops = {o.op: o for o in p.ops}
    assert "QLinearConv" in ops and ops["QLinearConv"].detail == "uint8"  # U8 activations run the INT8 kernel
    nodes = onnxrt.profile_nodes(r, r.example_input(), runs=2, warmup=1)
    assert {n["op"] for n in nodes} == set(ops) and all(n["us"] >= 0 for n in nodes)
    assert sum(1 for n in nodes if n["op"] == "QLinearConv") == ops["QLinearConv"].calls


def test_openvino_profile_reads_the_performance_counters(toy_cnn):
    if not runtimes.available("openvino")[0]:
        pytest.skip("openvino is not installed")
    p = profile.profile(runtimes.load(toy_cnn(), "openvino", input_shape=SHAPE, threads=1), runs=3)
    _check(p, "openvino")
    conv = next(o for o in p.ops if o.op == "Convolution")
    assert conv.detail and conv.calls >= 1  # the kernel the CPU plugin chose, e.g. brgconv_avx512_f32


def test_bad_arguments_are_named(toy_cnn, tiny_onnx):
    with pytest.raises(TypeError, match="Runner"):
        profile.profile("resnet18")
    r = runtimes.load(toy_cnn(), "torch", input_shape=SHAPE, threads=1)
    with pytest.raises(ValueError, match="runs=0"):
        profile.profile(r, runs=0)
    with pytest.raises(ValueError, match="input is"):
        profile.profile(r, r.example_input()[:, :1])
    with pytest.raises(ValueError, match="profile_nodes reads ONNX Runtime"):
        onnxrt.profile_nodes(r, r.example_input())
