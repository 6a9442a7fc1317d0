"""mclab.runtimes.export: PyTorch -> ONNX that checks its own work and names what fails."""
from __future__ import annotations

import pytest
import torch

from mclab.runtimes import export


def test_export_checks_and_verifies(tmp_path, tiny_module):
    res = export.export_onnx(tiny_module(), tmp_path / "m.onnx", export.ExportConfig(input_shape=(3, 16, 16)))
    assert res.checker_ok and res.max_abs_err is not None and res.max_abs_err < 1e-5
    assert res.verified_batches == [1, 2]  # the dynamic batch really runs
    assert res.ops["Conv"] == 1 and res.n_nodes == sum(res.ops.values()) and res.size_bytes > 0
    with pytest.raises(ValueError, match="opset=3"):
        export.ExportConfig(opset=3)
    with pytest.raises(ValueError, match="input_shape is required"):
        export.export_onnx(tiny_module(), tmp_path / "x.onnx")


class _Unexportable(torch.nn.Module):
    def forward(self, x):
        return torch.fft.fft2(x).abs()  # no ONNX symbolic for aten::fft_fft2 in the TorchScript exporter


def test_export_failure_names_the_operator(tmp_path):
    with pytest.raises(ValueError, match="cannot export _Unexportable.*fft"):
        export.export_onnx(_Unexportable(), tmp_path / "f.onnx", export.ExportConfig(input_shape=(3, 8, 8)))


def test_export_failure_of_a_tracing_error_is_a_value_error(tmp_path):
    layer = torch.nn.TransformerEncoderLayer(64, 4, 128, activation="gelu", batch_first=True).eval()
    with pytest.raises(ValueError, match="cannot export TransformerEncoderLayer.*is_causal"):
        export.export_onnx(layer, tmp_path / "a.onnx", export.ExportConfig(input_shape=(16, 64)))
