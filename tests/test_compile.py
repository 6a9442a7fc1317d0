"""mclab.compile: the exported graph, guards, generated kernels, recompiles, BN folding, torchao INT8."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mclab import compile as mc
from mclab import models
from mclab.runtimes import torch_compile as rtc


def test_export_ops_counts_aten_ops_and_a_dynamic_batch():
    m, x = mc.conv_bn_relu(4, 2), torch.randn(2, 4, 8, 8)
    g = mc.export_ops(m, x)
    assert g.aten_ops == {"aten.conv2d.default": 2, "aten.batch_norm.default": 2, "aten.relu.default": 2}
    assert g.core_aten_ops["aten.convolution.default"] == 2 and g.input_shape == [2, 4, 8, 8] and g.ranges == {}
    assert g.inputs == {"PARAMETER": 8, "BUFFER": 6, "USER_INPUT": 1}  # conv w, b, BN gamma, beta; mean, var, count
    d = mc.export_ops(m, x, dynamic_batch=(1, 16))
    sym = d.input_shape[0]
    assert isinstance(sym, str) and d.input_shape[1:] == [4, 8, 8] and d.ranges == {sym: "VR[1, 16]"}
    assert d.program.module()(torch.randn(5, 4, 8, 8)).shape == (5, 4, 8, 8)
    with pytest.raises(ValueError, match="batch >= 2"):
        mc.export_ops(m, x[:1], dynamic_batch=(1, 16))


def test_guard_kinds_include_the_input_tensor():
    kinds = mc.guard_kinds(nn.Linear(4, 2), torch.randn(3, 4))
    assert kinds.get("TENSOR_MATCH", 0) >= 1 and kinds.get("GLOBAL_STATE", 0) == 1


def test_fold_bn_matches_and_removes_batchnorm():
    m = nn.Sequential(mc.conv_bn_relu(4, 2), nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))).eval()
    f = mc.fold_bn(m)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert (f(x) - m(x)).abs().max() < 1e-4
    assert not any(isinstance(s, nn.BatchNorm2d) for s in f.modules())
    assert sum(isinstance(s, nn.BatchNorm2d) for s in m.modules()) == 3  # the original is untouched
    with pytest.raises(ValueError, match="depth"):
        mc.conv_bn_relu(4, 0)


def test_kernels_reads_fused_loops_and_library_calls():
    code = ["cpp_fused__native_batch_norm_legit_no_training_relu_1 = async_compile.cpp_pybinding(a)\n"
            "cpp_fused_2 = async_compile.cpp_pybinding(b)\n"
            "buf0 = torch.ops.mkldnn._convolution_pointwise.default(x)\nextern_kernels.addmm(y)\n"
            "extern_kernels.addmm(z)\ntorch.ops.inductor._alloc_from_pool(w)"]
    ks = mc.kernels(code)
    assert [(k.name, k.generated, k.fused) for k in ks] == [
        ("cpp_fused__native_batch_norm_legit_no_training_relu_1", True,
         ["native_batch_norm_legit_no_training", "relu"]),
        ("cpp_fused_2", True, []), ("mkldnn._convolution_pointwise", False, []), ("extern_kernels.addmm", False, [])]
    frozen = rtc.compile_module(mc.conv_bn_relu(4, 1), torch.randn(1, 4, 8, 8), freezing=True, code=True)
    real = mc.kernels(frozen.code)
    assert any(not k.generated and "convolution" in k.name for k in real)
    assert not any("batch_norm" in op for k in real for op in k.fused)  # freezing folded BN into the conv


def test_recompiles_counts_new_graphs():
    rows = mc.recompiles(nn.ReLU(), [(2, 3), (4, 3), (4, 3)], dynamic=False)
    assert [r.compiled for r in rows] == [True, True, False] and rows[-1].graphs_so_far == 2
    assert rows[0].as_dict() == {"shape": [2, 3], "graphs_so_far": 1, "compiled": True, "ms": rows[0].ms}


def test_torchao_int8_rewrites_linear_layers():
    torch.manual_seed(0)
    m, x = models.MLPBlock(32).eval(), torch.randn(2, 8, 32)
    for kind in mc.TORCHAO_INT8:
        q = mc.torchao_int8(m, kind)
        assert type(q.fc1.weight) is not type(m.fc1.weight) and type(m.fc1.weight) is nn.Parameter
        with torch.inference_mode():
            assert (q(x) - m(x)).abs().max() < 0.05 * m(x).abs().max()
    with pytest.raises(ValueError, match="kind="):
        mc.torchao_int8(m, "int4")
