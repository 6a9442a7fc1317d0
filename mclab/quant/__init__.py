"""mclab.quant — quantisation: the arithmetic from scratch, then model-level INT8 that really runs.

Two layers, as torchao separates ``quant_primitives`` from ``quantize_``:

- :mod:`mclab.quant.primitives` — the arithmetic on tensors, bit-exact with PyTorch: :class:`QParams`
  (per tensor, channel or group; float32 or float16 scales), :func:`quantize`, :func:`dequantize`,
  :func:`fake_quantize`, error metrics, k-means codebooks, integer-only linear layers, INT4 packing.
  Every quantiser in the kit (``mclab.llm.quant`` included) takes its scales and integers from here.
- :mod:`mclab.quant.api` — the model-level verbs on ``torch.nn.Module``: weight-only fake quantisation and
  quantisation-aware training.
- :mod:`mclab.quant.mixed` — mixed precision on top of weight-only quantisation: per-layer bit sensitivity and an
  exact bit allocator under a size budget (notebook 19).

The package is pure PyTorch and independent of :mod:`mclab.runtimes`: INT8 files for a runtime are built by that
runtime's plug-in (ONNX Runtime's QDQ ``calibrate`` -> ``quantize_static`` in :mod:`mclab.runtimes.onnxrt`,
OpenVINO's NNCF, ExecuTorch's and Inductor's PT2E), on this package's arithmetic.

All are re-exported here: ``from mclab import quant; quant.qparams(...)``. Introduced in notebooks 04 and 05.
"""
from __future__ import annotations

from .api import (
    QATConfig,
    QATResult,
    WeightOnlyConfig,
    WeightReport,
    fake_quant_model,
    fold_batchnorm,
    qat,
    quantizable_layers,
    quantize_weights_,
)
from .mixed import BIT_CHOICES, Allocation, Sensitivity, allocate_bits, apply_bits_, bit_sensitivity, uniform_bits
from .primitives import (
    METHODS,
    SCALE_DTYPES,
    Codebook,
    QParams,
    QuantError,
    dequantize,
    error,
    fake_quantize,
    int_linear,
    kmeans,
    observe_range,
    pack_int4,
    qparams,
    qparams_from_range,
    quantize,
    quantize_multiplier,
    requantize,
    sqnr_by_bits,
    sqnr_db,
    unpack_int4,
)

__all__ = [
    # parameters and primitives
    "QParams", "METHODS", "SCALE_DTYPES", "qparams", "qparams_from_range", "observe_range", "quantize", "dequantize",
    "fake_quantize", "pack_int4", "unpack_int4",
    # error and alternatives
    "QuantError", "error", "sqnr_db", "sqnr_by_bits", "Codebook", "kmeans",
    # integer-only arithmetic
    "quantize_multiplier", "requantize", "int_linear",
    # model level: weight-only
    "WeightOnlyConfig", "WeightReport", "quantize_weights_", "quantizable_layers",
    # model level: mixed precision (notebook 19)
    "BIT_CHOICES", "Sensitivity", "bit_sensitivity", "Allocation", "uniform_bits", "allocate_bits", "apply_bits_",
    # model level: QAT
    "QATConfig", "QATResult", "fold_batchnorm", "fake_quant_model", "qat",
]
