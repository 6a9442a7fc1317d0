"""OpenVINO's own INT8: post-training quantisation with NNCF (``nncf.quantize``: FakeQuantize ops with ranges from
calibration, INT8 weights, bias correction), saved as IR with what was done recorded in its rt_info. Part of the
OpenVINO plug-in (:mod:`mclab.runtimes.openvino`, whose ``build(..., precision="int8")`` calls
:func:`quantize_nncf`). Introduced in notebook 10.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Sequence

from ..base import RANDOM_CALIBRATION, random_batches

__all__ = ["NNCF_PRESETS", "NNCF_MODEL_TYPES", "NNCFResult", "quantize_nncf", "nncf_info"]

NNCF_PRESETS = ("performance", "mixed")  # NNCF: symmetric activations / asymmetric activations (weights symmetric)
NNCF_MODEL_TYPES = (None, "cnn", "transformer")  # NNCF's rules for FakeQuantize placement (None = "cnn", its default)


def _as_batches(batches: Any) -> list[Any]:
    """Calibration batches as C-contiguous float32 arrays (N, C, H, W …); torch tensors are accepted."""
    import numpy as np

    if batches is None or isinstance(batches, (str, bytes)) or not hasattr(batches, "__iter__"):
        raise TypeError(f"batches must be a list of (N, C, H, W) arrays or tensors, got {type(batches).__name__}")
    out = []
    for i, b in enumerate(batches):
        b = b.detach().cpu().numpy() if hasattr(b, "detach") else b
        a = np.ascontiguousarray(np.asarray(b, dtype=np.float32))
        if a.ndim < 2 or a.shape[0] < 1:
            raise ValueError(f"batches[{i}] has shape {a.shape}; each batch is (N, C, H, W …) with N >= 1")
        if out and a.shape[1:] != out[0].shape[1:]:
            raise ValueError(f"batches[{i}] has shape {a.shape}; batches[0] has {out[0].shape}: the sizes after "
                             "the batch must agree")
        out.append(a)
    if not out:
        raise ValueError("batches is empty; pass at least one calibration batch")
    return out


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF without its notices (log level ERROR) and without its progress bars, which rich draws on its global
    console: on stdout (breaking ``mclab bench --json``) or, in Jupyter, in an ipywidgets Output (which headless
    notebook runs avoid). Both are restored afterwards."""
    import logging

    import nncf
    import rich

    level, console = logging.getLogger("nncf").level, rich.get_console()
    state = dict(console.__dict__)
    nncf.set_log_level(logging.ERROR)
    rich.reconfigure(quiet=True, file=io.StringIO(), force_jupyter=False, force_terminal=False)
    try:
        yield
    finally:
        console.__dict__ = state
        nncf.set_log_level(level)


@dataclass
class NNCFResult:
    """What :func:`quantize_nncf` wrote: the IR, its size, NNCF's settings and the calibration it used."""

    xml: str
    bin: str
    bytes: int                   # .xml + .bin
    preset: str                  # NNCF_PRESETS
    subset_size: int             # calibration batches NNCF read
    fake_quantize: int           # FakeQuantize ops inserted
    calibration: dict[str, Any]  # data, batches, images, input_shape, model_type, ignored_types (also in rt_info)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def quantize_nncf(model_path: str | os.PathLike, out_xml: str | os.PathLike, batches: Any = None, *,
                  input_shape: tuple[int, ...] | None = None, preset: str = "performance",
                  subset_size: int | None = None, fast_bias_correction: bool = True, model_type: str | None = None,
                  ignored_types: Sequence[str] = ()) -> NNCFResult:
    """Quantise an ONNX file or OpenVINO IR to INT8 with NNCF (``nncf.quantize``: FakeQuantize ops with ranges
    from calibration, INT8 weights, bias correction) and save it as IR (``out_xml`` + ``.bin``, weights not
    compressed to FP16). The saved model keeps a dynamic batch, so :func:`build` can compile it at any batch.

    ``batches``: calibration inputs, a list of (N, C, H, W …) arrays or tensors (e.g.
    :func:`mclab.data.calibration_batches`). None: 8 random N(0, 1) batches of one image (seed 0) of
    ``input_shape`` (or the file's static sizes) — enough for speed, meaningless for accuracy.
    ``preset``: "performance" (NNCF's default for CNNs: symmetric activations) or "mixed" (asymmetric
    activations). ``subset_size``: how many batches NNCF reads (default: all of them). ``model_type``: None
    or ``"cnn"`` (NNCF's CNN rules: a FakeQuantize before every op that can take INT8, element-wise ones included) or
    ``"transformer"`` (only the inputs of convolutions and matrix products are quantised). ``ignored_types``:
    OpenVINO op types left in float, e.g. ``("GroupConvolution",)`` for depthwise convolutions (notebook 18).

    Returns an :class:`NNCFResult` (files, bytes, preset, subset size, FakeQuantize count, calibration); the same
    facts are stored in the IR's rt_info (NNCF writes its parameters there; the calibration data goes under
    ``mclab``), which :func:`build` reads back into ``Runner.info``."""
    import openvino as ov

    if preset not in NNCF_PRESETS:
        raise ValueError(f"preset={preset!r}; NNCF's presets are {list(NNCF_PRESETS)}")
    if subset_size is not None and (not isinstance(subset_size, int) or isinstance(subset_size, bool)
                                    or subset_size < 1):
        raise ValueError(f"subset_size={subset_size!r} must be an int >= 1 or None (all batches)")
    if model_type not in NNCF_MODEL_TYPES:
        raise ValueError(f"model_type={model_type!r}; allowed: {list(NNCF_MODEL_TYPES)}")
    if not isinstance(ignored_types, (list, tuple, set, frozenset)) or not all(isinstance(t, str) and t
                                                                             for t in ignored_types):
        raise ValueError(f"ignored_types={ignored_types!r} must be a sequence of OpenVINO op type names, "
                         "e.g. ('GroupConvolution',)")
    src, xml = os.fspath(model_path), os.fspath(out_xml)
    if not os.path.isfile(src):
        raise ValueError(f"model_path={src!r} does not exist")
    if not xml.endswith(".xml"):
        raise ValueError(f"out_xml={xml!r} must end in .xml (OpenVINO IR)")
    try:
        m = ov.Core().read_model(src)
    except RuntimeError as e:
        first = next((ln for ln in str(e).splitlines() if ln.strip() and "Exception from" not in ln), str(e))
        raise ValueError(f"cannot load {src!r} as an OpenVINO model: {first.strip()[:200]}") from None
    if any(op.get_type_name() == "FakeQuantize" for op in m.get_ops()):
        raise ValueError(f"{src!r} is already quantised (it has FakeQuantize ops); quantise its FP32 source")
    declared = m.inputs[0].get_partial_shape()
    rank = declared.rank.get_length()
    if batches is not None:
        data = _as_batches(batches)
        rest = tuple(data[0].shape[1:])
        source = f"{len(data)} given batches"
    else:
        if input_shape is None:
            if not all(declared[i].is_static for i in range(1, rank)):
                raise ValueError(f"{src} has dynamic dims {declared}; pass input_shape or batches")
            input_shape = tuple(declared[i].get_length() for i in range(1, rank))
        rest = tuple(int(d) for d in input_shape)
        data = random_batches((1, *rest))
        source = RANDOM_CALIBRATION["data"]
    if len(rest) != rank - 1 or any(d.is_static and d.get_length() != w
                                    for d, w in zip(list(declared)[1:], rest, strict=True)):
        raise ValueError(f"calibration input sizes {rest} do not fit {src}: it declares {declared}")
    m.reshape({m.inputs[0].get_any_name(): ov.PartialShape([-1, *rest])})
    import nncf

    used = min(subset_size or len(data), len(data))
    present = {op.get_type_name() for op in m.get_ops()}
    missing = sorted(set(ignored_types) - present)
    if missing:
        raise ValueError(f"ignored_types {missing} name no op of {src} (its compute ops: "
                         f"{sorted(present & {'Convolution', 'GroupConvolution', 'MatMul'})})")
    extra: dict[str, Any] = {}
    if model_type == "transformer":
        extra["model_type"] = nncf.ModelType.TRANSFORMER
    if ignored_types:
        extra["ignored_scope"] = nncf.IgnoredScope(types=list(ignored_types))
    with _quiet_nncf():
        q = nncf.quantize(m, nncf.Dataset(data), preset=nncf.QuantizationPreset(preset), subset_size=used,
                          fast_bias_correction=fast_bias_correction, **extra)
    calibration = {"data": source, "batches": used, "images": int(sum(len(b) for b in data[:used])),
                   "input_shape": list(rest), "model_type": model_type or "cnn", "ignored_types": list(ignored_types)}
    q.set_rt_info(json.dumps(calibration), ["mclab", "calibration"])
    os.makedirs(os.path.dirname(os.path.abspath(xml)), exist_ok=True)
    ov.save_model(q, xml, compress_to_fp16=False)
    binf = xml[:-4] + ".bin"
    return NNCFResult(xml, binf, os.path.getsize(xml) + os.path.getsize(binf), preset, used,
                      sum(op.get_type_name() == "FakeQuantize" for op in q.get_ops()), calibration)


def nncf_info(m: Any) -> dict[str, Any]:
    """What a quantised model says about how it was made: NNCF's preset and subset size (its rt_info) and
    the calibration data mclab recorded; a QDQ ONNX file says nothing of either."""
    info: dict[str, Any] = {}
    if m.has_rt_info(["nncf", "quantization"]):
        info["quantiser"] = "nncf " + (m.get_rt_info(["nncf", "version"]).astype(str)
                                       if m.has_rt_info(["nncf", "version"]) else "?")
        for key in ("preset", "subset_size", "fast_bias_correction"):
            if m.has_rt_info(["nncf", "quantization", key]):
                info[key] = m.get_rt_info(["nncf", "quantization", key]).astype(str)
    else:
        info["quantiser"] = "the file's own FakeQuantize / QuantizeLinear ops (not NNCF)"
    if m.has_rt_info(["mclab", "calibration"]):
        info["calibration"] = json.loads(m.get_rt_info(["mclab", "calibration"]).astype(str))
    else:
        info["calibration"] = "not recorded in the file"
    return info
