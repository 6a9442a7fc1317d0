"""mclab.runtimes.compare: the same model on every runtime, in one fair table."""
from __future__ import annotations

import json

import pytest

from mclab import runtimes


def test_compare_runtimes_table_manifest_and_skips(tiny_module):
    cmp = runtimes.compare_runtimes(tiny_module(), runtimes.CompareConfig(
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
