"""PyTorch -> ONNX export that checks its own work: dynamic batch, the ONNX checker, and a numerical
comparison with PyTorch on the same input. A failing export names the operator that failed.

``export_onnx(model, path, ExportConfig(...))`` -> :class:`ExportResult`. Uses the TorchScript-based
exporter (``dynamo=False``), which needs no ``onnxscript``. Introduced in notebook 09.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import weakref
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from .base import model_label, model_suffixes, resolve

__all__ = ["ExportConfig", "ExportResult", "export_onnx", "op_counts", "check_onnx_file", "onnx_for", "build_folder",
           "remove_with", "process_folder"]

_OP = re.compile(r"operator '([^']+)'")


@dataclass
class ExportConfig:
    """How to export. Defaults suit image classifiers: one input, one output, dynamic batch."""

    input_shape: tuple[int, ...] | None = None  # (C, H, W …) without batch; None: a zoo model's own
    batch: int = 1                  # batch of the example input used for tracing and verification
    opset: int = 17                 # ONNX opset; 17 is read by every runtime the kit uses
    dynamic_batch: bool = True      # mark dim 0 of input and output as symbolic ("batch")
    fold_batchnorm: bool = True     # the exporter folds eval-mode BatchNorm into Conv; False keeps the nodes
    input_name: str = "input"
    output_name: str = "output"
    check: bool = True              # run onnx.checker (full_check infers shapes too)
    verify: bool = True             # run the file in ONNX Runtime and compare with PyTorch
    atol: float = 1e-4              # max absolute error allowed by verify (FP32 vs FP32)
    seed: int = 0                   # of the example input

    def __post_init__(self) -> None:
        if self.input_shape is not None and (not self.input_shape or any(int(d) < 1 for d in self.input_shape)):
            raise ValueError(f"input_shape={self.input_shape} must be positive sizes without the batch")
        if self.batch < 1:
            raise ValueError(f"batch={self.batch} must be >= 1")
        if not 7 <= self.opset <= 23:
            raise ValueError(f"opset={self.opset} is outside 7..23 (the range torch.onnx exports)")
        if not self.atol > 0:
            raise ValueError(f"atol={self.atol} must be > 0")


@dataclass
class ExportResult:
    """What the export produced and how well it matches PyTorch."""

    path: str
    opset: int
    input_shape: tuple[int, ...]        # (B, C, H, W) of the example input
    dynamic_batch: bool
    size_bytes: int
    n_nodes: int
    ops: dict[str, int]                 # node count per op type
    checker_ok: bool
    max_abs_err: float | None           # vs PyTorch on the example input (None when verify=False)
    verified_batches: list[int] = field(default_factory=list)  # batch sizes ONNX Runtime ran

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def op_counts(model_or_path: Any, *, with_domain: bool = False) -> dict[str, int]:
    """Node count per op type of an ONNX model (path or ``onnx.ModelProto``), most common first.
    ``with_domain=True`` prefixes ops outside the standard domain (``com.microsoft:FusedConv``)."""
    import onnx

    m = onnx.load(os.fspath(model_or_path)) if isinstance(model_or_path, (str, os.PathLike)) else model_or_path

    def name(n: Any) -> str:
        return f"{n.domain}:{n.op_type}" if with_domain and n.domain not in ("", "ai.onnx") else n.op_type

    return dict(Counter(name(n) for n in m.graph.node).most_common())


def export_onnx(model: Any, path: str | os.PathLike, config: ExportConfig | None = None) -> ExportResult:
    """Export ``model`` (a ``torch.nn.Module`` or torchvision name) to ONNX at ``path``; returns an
    :class:`ExportResult`. Raises ``ValueError`` naming the operator when the exporter cannot
    translate one, and when the checker or the numerical verification fails."""
    import numpy as np
    import torch

    cfg = config or ExportConfig()
    res = resolve(model, cfg.input_shape)
    module, shape, label = res.module.eval(), res.input_shape, res.label
    g = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn((cfg.batch, *shape), generator=g)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    dyn = {cfg.input_name: {0: "batch"}, cfg.output_name: {0: "batch"}} if cfg.dynamic_batch else None
    mode = torch.onnx.TrainingMode.EVAL if cfg.fold_batchnorm else torch.onnx.TrainingMode.PRESERVE
    try:
        torch.onnx.export(module, (x,), path, dynamo=False, opset_version=cfg.opset, input_names=[cfg.input_name],
                          output_names=[cfg.output_name], dynamic_axes=dyn, training=mode)
    except torch.onnx.errors.UnsupportedOperatorError as e:
        op = _OP.search(str(e))
        raise ValueError(f"cannot export {label} to ONNX opset {cfg.opset}: operator "
                         f"{op.group(1) if op else '?'} is not supported by the exporter") from None
    except (RuntimeError, TypeError, torch.onnx.errors.OnnxExporterError) as e:  # TypeError: tracing failed
        first = str(e).strip().splitlines()[0][:200]
        raise ValueError(f"cannot export {label} to ONNX opset {cfg.opset}: {first}") from None
    import onnx

    if cfg.check:
        try:
            onnx.checker.check_model(path, full_check=True)
        except onnx.checker.ValidationError as e:
            raise ValueError(f"the ONNX file exported from {label} fails the checker: "
                             f"{str(e).splitlines()[0]}") from None
    err, batches = None, []
    if cfg.verify:
        with torch.inference_mode():
            ref = module(x).numpy()
        err = _ort_max_abs_err(path, x.numpy(), ref)
        batches.append(cfg.batch)
        if err > cfg.atol:
            raise ValueError(f"ONNX export of {label} disagrees with PyTorch: max abs error {err:.3g} "
                             f"> atol={cfg.atol}")
        if cfg.dynamic_batch:  # the symbolic batch must really work: run another batch size
            b2 = cfg.batch + 1
            x2 = torch.randn((b2, *shape), generator=g)
            with torch.inference_mode():
                ref2 = module(x2).numpy()
            err = max(err, _ort_max_abs_err(path, x2.numpy(), ref2))
            batches.append(b2)
    ops = op_counts(path)
    return ExportResult(path, cfg.opset, (cfg.batch, *shape), cfg.dynamic_batch, os.path.getsize(path),
                        int(sum(ops.values())), ops, cfg.check, None if err is None else float(np.float64(err)),
                        batches)


def _ort_max_abs_err(path: str, x: Any, ref: Any) -> float:
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return float(np.max(np.abs(out - ref)))


def onnx_for(model: Any, batch: int, input_shape: tuple[int, ...] | None,
             folder: str) -> tuple[str, tuple[int, ...]]:
    """An ONNX file for ``model``: a path is returned as it is; a torchvision name or module is exported
    with a dynamic batch into ``folder`` (a :func:`build_folder`). Returns (path, input shape without batch, or
    ``()`` when the file decides)."""
    if isinstance(model, str) and model.endswith(model_suffixes()):  # a model file: load() checked its format
        return model, tuple(input_shape or ())
    res = export_onnx(model, os.path.join(folder, f"{model_label(model)}.onnx"),
                      ExportConfig(input_shape=input_shape, batch=batch, verify=False, check=False))
    return res.path, res.input_shape[1:]


@contextlib.contextmanager
def build_folder(prefix: str) -> Iterator[str]:
    """A fresh temporary folder for what a build writes: removed at once if the build raises; after a build that
    succeeds, the caller ties it to the runner it made with :func:`remove_with`."""
    folder = tempfile.mkdtemp(prefix=prefix)
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def remove_with(owner: Any, folder: str) -> None:
    """Delete ``folder`` when ``owner`` (a Runner) is garbage-collected or the interpreter exits."""
    weakref.finalize(owner, shutil.rmtree, folder, True)


def process_folder(prefix: str) -> str:
    """One temporary folder per ``prefix`` for this process, removed when it exits: for files that outlive a single
    runner (TFLite's reused conversions, :func:`mclab.deploy.optimise`'s artifacts)."""
    if prefix not in _KEPT:
        _KEPT[prefix] = tempfile.TemporaryDirectory(prefix=prefix)
    return _KEPT[prefix].name


_KEPT: dict[str, tempfile.TemporaryDirectory] = {}  # process_folder's folders, alive until exit


def check_onnx_file(path: str | os.PathLike) -> None:
    """``ValueError`` naming ``path`` unless it parses as a whole ONNX model with a graph (protobuf has no magic
    bytes: the file is parsed, external weights left unread). The ONNX plug-ins' ``check_file``."""
    import onnx

    path = os.fspath(path)
    try:
        graph = onnx.load(path, load_external_data=False).graph
    except Exception as e:  # protobuf's DecodeError and onnx's own errors for a corrupt or cut file
        raise ValueError(f"model file {path!r} is not a readable ONNX model ({type(e).__name__}: "
                         f"{str(e).strip()[:120]}); is it a complete .onnx file?") from None
    if not graph.node or not graph.input:
        raise ValueError(f"model file {path!r} is not an ONNX model: it has no graph nodes or inputs")
