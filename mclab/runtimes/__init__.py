"""One small interface over inference runtimes: ``load(model, runtime, precision=...)`` -> :class:`Runner`.

The interface, the plug-in registry, :func:`load` and the model resolver live in :mod:`mclab.runtimes.base`; each
runtime is a plug-in in its own module (``torch_eager``, ``torch_compile``, ``onnxrt``, ``openvino``, ``executorch``,
``tflite``, ``ncnn``, ``tensorrt``), imported only when it is used; :mod:`mclab.runtimes.profile` reads back
where each runtime spends its time; :func:`compare_runtimes` (:mod:`mclab.runtimes.compare`) sets
them side by side; :func:`audit_defaults` (:mod:`mclab.runtimes.audit`) times each plug-in's defaults against its
other documented settings (``KNOBS``). This package only re-exports: its modules import from ``.base``, never
from the package.
Introduced in notebook 01 (``mclab bench``); notebooks 09-12 add runtimes.
"""
from __future__ import annotations

from .audit import AuditRow, DefaultsAudit, audit_defaults
from .base import (
    PRECISIONS,
    RUNTIMES,
    Resolved,
    Runner,
    Spec,
    available,
    batched,
    build_options,
    int8_op_counts,
    load,
    model_label,
    model_suffixes,
    plugin,
    precisions,
    provides,
    resolve,
    runtimes_for_file,
)
from .compare import CompareConfig, RuntimeComparison, compare_runtimes

__all__ = [
    # the interface and the registry
    "Runner", "Spec", "RUNTIMES", "PRECISIONS", "load", "available", "precisions", "model_label",
    # asking the registry
    "plugin", "provides", "build_options", "runtimes_for_file", "model_suffixes",
    # a torchvision name or a torch module -> (module, input shape, label)
    "Resolved", "resolve",
    # using and inspecting a runner
    "batched", "int8_op_counts",
    # side by side
    "CompareConfig", "RuntimeComparison", "compare_runtimes",
    # are the defaults the fast settings here?
    "audit_defaults", "DefaultsAudit", "AuditRow",
]
