"""mclab — the Model Compilation Lab's helper library.

Importing ``mclab`` is cheap: it loads no deep-learning framework. Each technique lives in
its own module (``from mclab import hw, plots``) and imports torch, TensorFlow, OpenVINO or
ONNX Runtime only inside the functions that need them. The kit's own machinery (the notebook runner, the
report, exercises, widgets) is in ``mclab.lab``; only its ``record`` is imported here, as ``mclab.record``.
"""
from __future__ import annotations

from .lab.record import record

__version__ = "0.1.0"

__all__ = [
    # recording metrics from notebooks
    "record",
    # metadata
    "__version__",
]
