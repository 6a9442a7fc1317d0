"""mclab.flops: counts checked against torchvision's published metadata and closed forms."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mclab import bench, flops, models

# a representative set: classic CNN, mobile nets, a vision transformer, a Swin transformer
PUBLISHED = ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x1_0", "vit_b_16", "swin_t"]


@pytest.mark.parametrize("name", PUBLISHED)
def test_macs_and_params_match_torchvision_metadata(name):
    from torchvision.models import get_model_weights

    meta = get_model_weights(name).DEFAULT.meta
    r = flops.count_named(name)
    assert r.params == meta["num_params"]
    assert r.macs / 1e9 == pytest.approx(meta["_ops"], rel=0.02), r
    assert r.flops == 2 * r.macs
    assert sum(row["macs"] for row in r.layers) == r.macs  # the table adds up to the total


class Attn(nn.Module):
    """Functional matmuls outside any leaf module, plus nn.MultiheadAttention."""

    def __init__(self, e=32, heads=4):
        super().__init__()
        self.w = nn.Parameter(torch.randn(e, e))
        self.mha = nn.MultiheadAttention(e, heads, batch_first=True)

    def forward(self, x):  # (B, T, E)
        y = x @ self.w
        y = torch.matmul(y, self.w)
        q = y.view(y.shape[0], y.shape[1], 4, -1).transpose(1, 2)  # (B, H, T, E/H)
        y = F.scaled_dot_product_attention(q, q, q).transpose(1, 2).reshape_as(y)
        return self.mha(y, y, y, need_weights=False)[0]


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_functional_matmuls_and_attention_are_counted(mode):
    b, t, e = 2, 10, 32
    m = Attn(e).train(mode == "train")  # eval takes MHA's fused inference kernel, train the unfused path
    r = flops.count(m, torch.randn(b, t, e))
    matmuls = 2 * b * t * e * e
    sdpa = 2 * b * t * t * e  # QKᵀ and AV over all heads
    mha = 4 * b * t * e * e + 2 * b * t * t * e
    assert r.macs == matmuls + sdpa + mha
    assert any(row["name"] == "(outside leaf modules)" for row in r.layers)


def test_thop_misses_functional_matmuls_of_a_vision_transformer():
    zm = models.zoo("vit_b_16")
    thop = flops.thop_count(zm.module, zm.example_inputs())
    ours = flops.count(zm.module, zm.example_inputs())
    assert thop.macs < 0.7 * ours.macs  # attention's matmuls are invisible to module hooks
    assert thop.params < ours.params    # and so are MultiheadAttention's in_proj parameters
    assert thop.as_dict() == {"macs": thop.macs, "params": thop.params}
    assert not any(isinstance(b, torch.Tensor) for n, b in zm.module.named_buffers() if "total_ops" in n)


def test_elementwise_ops_are_listed_not_hidden():
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()).eval()
    r = flops.count(m, torch.randn(1, 3, 10, 10))
    assert r.macs == 8 * 8 * 8 * 3 * 3 * 3
    assert {"relu", "native_batch_norm"} <= set(r.uncounted), r.uncounted
    assert not {"view", "t", "clone"} & set(r.uncounted)


def test_onnx_count_matches_torch(tmp_path):
    zm = models.zoo("resnet18")
    x = torch.randn(1, 3, 64, 64)
    path = tmp_path / "r18.onnx"
    torch.onnx.export(zm.module, (x,), str(path), input_names=["x"], dynamic_axes={"x": {0: "batch"}},
                      dynamo=False)
    a, b = flops.count(zm.module, x), flops.count_onnx(path)
    assert b.input_shape == (1, 3, 64, 64)
    assert b.macs == a.macs
    assert b.params <= a.params  # BatchNorm folded into the convolutions by the exporter
    assert flops.count_onnx(path, (4, 3, 64, 64)).macs == 4 * a.macs


def test_size_closed_form_and_resnet50_claim():
    lin = nn.Linear(64, 10)
    s = flops.size(lin, group_size=32)
    assert s.bytes["fp32"] == 4 * (640 + 10) and s.bytes["fp16"] == 2 * 650
    assert s.bytes["int8"] == 640 + 4 * 10 + 4 * 10          # INT8 weights, FP32 scale per row, FP32 bias
    assert s.bytes["int4"] == 320 + 2 * 10 * 2 + 4 * 10      # two groups of 32 per row, FP16 scales
    r50 = flops.size(models.zoo("resnet50").module)
    assert r50.params == 25_557_032
    # the source material: ~102 / 51 / 26 MB at FP32 / FP16 / INT8
    assert [round(r50.mb(p)) for p in ("fp32", "fp16", "int8")] == [102, 51, 26]
    assert r50.file_bytes == pytest.approx(r50.bytes["fp32"], rel=0.01)


def test_memory_closed_form():
    m = nn.Sequential(nn.Linear(100, 1000), nn.ReLU(), nn.Linear(1000, 1000), nn.ReLU(), nn.Linear(1000, 10))
    for batch in (1, 8):
        r = flops.memory(m, torch.randn(batch, 100))
        h = 4 * batch * 1000
        assert r.activation_bytes == 4 * h + 4 * batch * 10
        assert r.peak_activation_bytes == 2 * h   # a layer's input and output are alive together
        assert r.weights_bytes == 4 * sum(p.numel() for p in m.parameters())
        assert r.peak_bytes == r.weights_bytes + r.input_bytes + r.peak_activation_bytes


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (peak from CUDA's allocator)")
def test_memory_on_cuda_agrees_with_cpu_accounting():
    m = nn.Sequential(nn.Linear(100, 1000), nn.ReLU(), nn.Linear(1000, 10))
    cpu = flops.memory(m, torch.randn(64, 100))
    gpu = flops.memory(m.cuda(), torch.randn(64, 100, device="cuda"))
    assert gpu.method.startswith("torch.cuda") and gpu.peak_activation_bytes >= cpu.peak_activation_bytes


def test_roofline():
    rl = flops.roofline(100.0, 10.0)
    assert rl.ridge == 10.0
    assert rl.attainable_gflops(1.0) == 10.0 and rl.attainable_gflops(1000.0) == 100.0
    assert rl.predict_ms(1e9, 1e6) == pytest.approx(10.0)   # compute-bound: 1 GFLOP at 100 GFLOP/s
    assert rl.predict_ms(1e6, 1e9) == pytest.approx(100.0)  # memory-bound: 1 GB at 10 GB/s
    for bad in (0, -1.0, math.nan, "fast"):
        with pytest.raises(ValueError, match="peak_gflops"):
            flops.roofline(bad, 10.0)


def test_memory_bandwidth_is_measured():
    assert 0.1 < bench.memory_bandwidth(mb=32, min_time_s=0.05) < 10_000
    with pytest.raises(ValueError, match="mb=0"):
        bench.memory_bandwidth(mb=0)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"resnet5.*did you mean.*resnet50"):
        flops.count_named("resnet5")
    with pytest.raises(ValueError, match=r"do not fit VisionTransformer.*224"):
        flops.count_named("vit_b_16", input_shape=(3, 100, 100))
    with pytest.raises(ValueError, match="input_shape"):
        flops.count_named("resnet18", input_shape=(3, 0, 224))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot read .* as an ONNX model"):
        flops.count_named(str(bad))
    with pytest.raises(ValueError, match="does not exist"):
        flops.count_onnx(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="example_inputs"):
        flops.count(nn.Linear(2, 2), [1, 2])
    with pytest.raises(ValueError, match="group_size"):
        flops.size(nn.Linear(2, 2), group_size=0)
