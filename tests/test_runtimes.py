"""mclab.runtimes and the `mclab bench` command built on it."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mclab import runtimes


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """A small conv net exported with a dynamic batch dimension."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 4)).eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return model, path


def test_onnxruntime_runner_matches_torch(tiny_onnx):
    model, path = tiny_onnx
    r = runtimes.load(str(path), "onnxruntime", batch=3, threads=1)
    assert r.input_shape == (3, 3, 32, 32) and r.precision == "fp32" and r.threads == 1
    x = r.example_input()
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(r.run(x), expected, rtol=1e-4, atol=1e-5)


def test_torch_runner():
    r = runtimes.load("mobilenet_v3_small", "torch", batch=2, input_shape=(3, 96, 96))
    assert r.run(r.example_input()).shape == (2, 1000)


def test_bad_input_is_named(tiny_onnx, tmp_path):
    _, path = tiny_onnx
    with pytest.raises(ValueError, match="expects 3 after the batch"):
        runtimes.load(str(path), "onnxruntime", input_shape=(3, 32))
    with pytest.raises(ValueError, match="does not exist"):
        runtimes.load(str(tmp_path / "nope.onnx"), "onnxruntime")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a model")
    with pytest.raises(ValueError, match="cannot load"):
        runtimes.load(str(bad), "onnxruntime")
    with pytest.raises(ValueError, match="unknown; available runtimes"):
        runtimes.load("resnet18", "tensorrt-nope")
    with pytest.raises(ValueError, match="does not fit resnet18"):
        runtimes.load("resnet18", "torch", input_shape=(1, 224, 224))
    assert runtimes.available("onnxruntime")[0]


def _mclab(*args):
    return subprocess.run([sys.executable, "-m", "mclab.cli", *args], capture_output=True, text=True)


def test_cli_bench_json(tiny_onnx):
    _, path = tiny_onnx
    r = _mclab("bench", str(path), "--batch", "2", "--threads", "1", "--iters", "30", "--min-time", "0", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_per_s", "samples", "flags"} <= set(d)
    assert d["samples"] == 30 and d["runtime"] == "onnxruntime" and d["input_shape"] == [2, 3, 32, 32]
    assert d["p50_ms"] <= d["p90_ms"] <= d["p99_ms"] and "p99_few_samples" in d["flags"]
    assert d["throughput_per_s"] == pytest.approx(2e3 / d["mean_ms"])


@pytest.mark.parametrize("args, match", [
    (["resnet19"], "not a torchvision classifier"),
    (["resnet18", "--runtime", "openvino-nope"], "unknown; available runtimes"),
    (["resnet18", "--input-shape", "3,7"], "does not fit resnet18"),
    (["resnet18", "--iters", "0"], "min_iters=0"),
    (["resnet18", "--input-shape", "a,b"], "not a shape"),
])
def test_cli_bench_errors_are_one_line(args, match):
    r = _mclab("bench", *args)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr


def test_cli_ab_json_and_errors(tiny_onnx, tmp_path):
    _, path = tiny_onnx
    r = subprocess.run([sys.executable, "-m", "mclab", "ab", str(path), str(path), "--threads", "1", "--rounds", "3",
                        "--calls", "2", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["runtime"] == "onnxruntime" and d["rounds"] == 3 and len(d["ratios"]) == 3 and d["input_shape"] == [1, 3, 32, 32]
    assert d["speedup_b_vs_a"] == pytest.approx(1 / d["ratio_b_over_a"]) and "kernels" not in d
    other = tmp_path / "other.onnx"
    torch.onnx.export(torch.nn.Linear(5, 2).eval(), (torch.randn(1, 5),), str(other), dynamo=False)
    r = _mclab("ab", str(path), str(other))
    assert r.returncode == 2 and "different inputs" in r.stderr and "Traceback" not in r.stderr


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


# ----------------------------------------------------------------------------- export, OpenVINO, compare

def _tiny_module():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4)).eval()


def test_export_checks_and_verifies(tmp_path):
    from mclab.runtimes import export

    res = export.export_onnx(_tiny_module(), tmp_path / "m.onnx", export.ExportConfig(input_shape=(3, 16, 16)))
    assert res.checker_ok and res.max_abs_err is not None and res.max_abs_err < 1e-5
    assert res.verified_batches == [1, 2]  # the dynamic batch really runs
    assert res.ops["Conv"] == 1 and res.n_nodes == sum(res.ops.values()) and res.size_bytes > 0
    with pytest.raises(ValueError, match="opset=3"):
        export.ExportConfig(opset=3)
    with pytest.raises(ValueError, match="input_shape is required"):
        export.export_onnx(_tiny_module(), tmp_path / "x.onnx")


class _Unexportable(torch.nn.Module):
    def forward(self, x):
        return torch.fft.fft2(x).abs()  # no ONNX symbolic for aten::fft_fft2 in the TorchScript exporter


def test_export_failure_names_the_operator(tmp_path):
    from mclab.runtimes import export

    with pytest.raises(ValueError, match="cannot export _Unexportable.*fft"):
        export.export_onnx(_Unexportable(), tmp_path / "f.onnx", export.ExportConfig(input_shape=(3, 8, 8)))


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
    with pytest.raises(ValueError, match="cannot load"):
        runtimes.load(str(bad), "openvino", input_shape=(3, 32, 32))
    with pytest.raises(ValueError, match="float32 array of shape"):
        r.run(x.astype(np.float64))
    with pytest.raises(ValueError, match="precision='int8' is not supported by runtime='openvino'"):
        runtimes.load(str(path), "openvino", precision="int8")


def test_compare_runtimes_table_manifest_and_skips():
    cmp = runtimes.compare_runtimes(_tiny_module(), runtimes.CompareConfig(
        targets=("onnxruntime", "openvino", "tensorrt", "onnxruntime:bf16"), input_shape=(3, 16, 16), threads=1,
        rounds=2, calls_per_round=3, warmup=1))
    assert [r.label for r in cmp.rows] == ["torch:fp32", "onnxruntime:fp32", "openvino:fp32", "tensorrt:fp32",
                                           "onnxruntime:bf16"]
    ref, ort_, ov_ = cmp.rows[:3]
    assert ref.max_abs_err == 0 and ref.speedup == 1 and ref.top1_agreement == 1
    for row in (ort_, ov_):
        assert row.ok and row.precision == "fp32" and row.max_abs_err < 1e-4 and row.samples == 6
        assert row.p50_ms <= row.p99_ms and row.size_bytes > 0
    assert cmp.rows[4].status.startswith("skipped: onnxruntime does not take precision bf16")
    if not runtimes.available("tensorrt")[0]:
        assert cmp.rows[3].status.startswith("skipped:") and any("tensorrt" in w for w in cmp.warnings)
    assert cmp.manifest["threads"] == 1 and cmp.manifest["same_input_for_all"]
    assert json.loads(json.dumps(cmp.as_dict()))["rows"][1]["runtime"] == "onnxruntime"
    with pytest.raises(ValueError, match="runtime 'onnx' is unknown"):
        runtimes.CompareConfig(targets=("onnx",))


def test_graph_optimisation_levels_fold_and_fuse(tmp_path):
    from mclab.runtimes import export, onnxrt

    res = export.export_onnx(_tiny_module(), tmp_path / "bn.onnx",
                             export.ExportConfig(input_shape=(3, 16, 16), fold_batchnorm=False))
    assert res.ops["BatchNormalization"] == 1  # kept by the exporter when asked
    folded = export.export_onnx(_tiny_module(), tmp_path / "f.onnx", export.ExportConfig(input_shape=(3, 16, 16)))
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


def test_export_failure_of_a_tracing_error_is_a_value_error(tmp_path):
    from mclab.runtimes import export

    layer = torch.nn.TransformerEncoderLayer(64, 4, 128, activation="gelu", batch_first=True).eval()
    with pytest.raises(ValueError, match="cannot export TransformerEncoderLayer.*is_causal"):
        export.export_onnx(layer, tmp_path / "a.onnx", export.ExportConfig(input_shape=(16, 64)))
