"""TensorFlow Lite: a PyTorch CNN rebuilt as a Keras model (weights copied), converted to ``.tflite``.

Bottom: :func:`to_keras` walks a ``torch.fx`` trace of a CNN (Conv2d, BatchNorm2d, ReLU/ReLU6, pooling,
residual adds, flatten, Linear) and builds the same network in Keras, channels-last, with the same
weights, so its outputs match PyTorch to float rounding. :func:`convert` turns a Keras model into a
``.tflite`` file in one of TFLite's four modes (:data:`MODES`). :func:`interpreter` runs a ``.tflite``
file with a thread count and XNNPACK on or off; :func:`inspect_file` reads back which precision a file
really computes in. Top: ``build(...)`` for the runtime registry (``load(model, "tflite")``).
Introduced in notebook 11.
"""
from __future__ import annotations

import contextlib
import io
import operator
import os
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .base import Runner, resolve
from .export import process_folder

__all__ = ["MODES", "TFLiteConfig", "to_keras", "convert", "check_file", "probe", "interpreter", "inspect_file",
           "runner_for_file", "KNOBS", "build"]

# TFLite's four post-training conversions. "fp16": weights stored as float16 (dequantised to float32 on
# x86); "dynamic": int8 weights, activations quantised on the fly; "int8": weights and activations int8,
# calibrated on a representative dataset.
MODES = ("fp32", "fp16", "dynamic", "int8")


@dataclass
class TFLiteConfig:
    """How to convert a Keras model to TFLite."""

    mode: str = "fp32"                       # one of MODES
    representative: Iterable[Any] | None = None  # NHWC float32 batches for "int8" calibration (≈100 is typical)
    io_dtype: str = "float32"                # "int8": the file takes and returns int8 (only with mode="int8")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} is unknown; allowed: {list(MODES)}")
        if self.io_dtype not in ("float32", "int8"):
            raise ValueError(f"io_dtype={self.io_dtype!r}; allowed: 'float32', 'int8'")
        if self.io_dtype == "int8" and self.mode != "int8":
            raise ValueError(f"io_dtype='int8' needs mode='int8' (got mode={self.mode!r})")
        if self.mode == "int8" and self.representative is None:
            raise ValueError("mode='int8' needs representative= batches of real inputs for calibration")


def import_framework() -> Any:
    """``tensorflow``, imported after Triton when Triton is installed (torch's wheel brings it): Triton's native
    library crashes the process if it is loaded *after* TensorFlow's (both carry LLVM), and torchvision and
    ``torch.compile`` load it on demand. The registry's :func:`mclab.runtimes.available` imports through here."""
    with contextlib.suppress(ImportError):
        import triton  # noqa: F401
    import tensorflow as tf

    return tf


# ----------------------------------------------------------------------------- PyTorch -> Keras


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _nonnegative(node: Any, gm: Any) -> bool:
    """True when ``node`` is the output of a ReLU (so zero padding equals PyTorch's -inf pool padding)."""
    import torch
    import torch.nn.functional as F

    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), (torch.nn.ReLU, torch.nn.ReLU6))
    return node.op == "call_function" and node.target in (F.relu, torch.relu)


def to_keras(module: Any, input_shape: tuple[int, ...]) -> Any:
    """The Keras twin of the PyTorch CNN ``module`` with its weights copied; takes NHWC input.

    ``input_shape`` is (B, C, H, W). Supports what torchvision's ResNets and MobileNetV2 use: Conv2d
    (plain, grouped, depthwise), BatchNorm2d, ReLU/ReLU6, MaxPool2d, AvgPool2d, global average pooling,
    ``+``, flatten, Linear, Dropout. Anything else raises ``ValueError`` naming the operator.
    """
    import_framework()
    import keras
    import torch
    import torch.fx as fx
    import torch.nn.functional as F
    from keras import layers

    nn = torch.nn
    if len(input_shape) != 4:
        raise ValueError(f"input_shape={tuple(input_shape)} must be (B, C, H, W) for a CNN")
    b, c, h, w = input_shape
    try:
        gm = fx.symbolic_trace(module.eval())
    except Exception as e:  # fx raises many types for untraceable control flow
        raise ValueError(f"cannot trace {type(module).__name__} with torch.fx: {type(e).__name__}: {e}") from None
    np_ = lambda t: t.detach().cpu().numpy()  # noqa: E731
    env: dict[str, Any] = {}
    outputs = []
    inp = None

    def unsupported(what: str) -> ValueError:
        return ValueError(f"to_keras: operator {what} is not supported (Conv2d, BatchNorm2d, ReLU/ReLU6, "
                          f"MaxPool2d, AvgPool2d, global average pooling, add, flatten, Linear, Dropout are)")

    def pad(x: Any, p: tuple[int, int]) -> Any:
        return layers.ZeroPadding2D(p)(x) if any(p) else x

    for node in gm.graph.nodes:
        args = [env[a.name] if isinstance(a, fx.Node) else a for a in node.args]
        if node.op == "placeholder":
            env[node.name] = inp = keras.Input(shape=(h, w, c), batch_size=b, name="input")
        elif node.op == "output":
            outs = node.args[0] if isinstance(node.args[0], (tuple, list)) else [node.args[0]]
            outputs = [env[o.name] for o in outs]
        elif node.op == "call_module":
            m = gm.get_submodule(node.target)
            x = args[0]
            if isinstance(m, nn.Conv2d):
                if _pair(m.dilation) != (1, 1) or isinstance(m.padding, str):
                    raise unsupported(f"Conv2d with dilation={m.dilation} padding={m.padding!r} ({node.target})")
                wt = np_(m.weight)  # (O, I/g, kh, kw)
                x = pad(x, _pair(m.padding))
                common = dict(strides=_pair(m.stride), padding="valid", use_bias=m.bias is not None)
                if m.groups > 1 and m.groups == m.in_channels == m.out_channels:
                    layer = layers.DepthwiseConv2D(m.kernel_size, **common)
                    weights = [wt.transpose(2, 3, 0, 1)]  # (kh, kw, C, 1)
                else:
                    layer = layers.Conv2D(m.out_channels, m.kernel_size, groups=m.groups, **common)
                    weights = [wt.transpose(2, 3, 1, 0)]  # (kh, kw, I/g, O)
                y = layer(x)
                layer.set_weights(weights + ([np_(m.bias)] if m.bias is not None else []))
            elif isinstance(m, nn.BatchNorm2d):
                layer = layers.BatchNormalization(epsilon=m.eps)
                y = layer(x)
                layer.set_weights([np_(m.weight), np_(m.bias), np_(m.running_mean), np_(m.running_var)])
            elif isinstance(m, nn.ReLU):
                y = layers.ReLU()(x)
            elif isinstance(m, nn.ReLU6) or (isinstance(m, nn.Hardtanh) and (m.min_val, m.max_val) == (0.0, 6.0)):
                y = layers.ReLU(max_value=6.0)(x)
            elif isinstance(m, nn.MaxPool2d):
                p = _pair(m.padding)
                if m.ceil_mode or _pair(m.dilation) != (1, 1) or (any(p) and not _nonnegative(node.args[0], gm)):
                    raise unsupported(f"MaxPool2d with padding on possibly negative input or ceil_mode ({node.target})")
                y = layers.MaxPooling2D(_pair(m.kernel_size), _pair(m.stride or m.kernel_size))(pad(x, p))
            elif isinstance(m, nn.AvgPool2d) and not any(_pair(m.padding)) and not m.ceil_mode:
                y = layers.AveragePooling2D(_pair(m.kernel_size), _pair(m.stride or m.kernel_size))(x)
            elif isinstance(m, nn.AdaptiveAvgPool2d) and _pair(m.output_size) == (1, 1):
                y = layers.GlobalAveragePooling2D(keepdims=True)(x)
            elif isinstance(m, nn.Flatten):
                y = layers.Flatten()(layers.Permute((3, 1, 2))(x)) if len(x.shape) == 4 else x  # NCHW order
            elif isinstance(m, nn.Linear):
                layer = layers.Dense(m.out_features, use_bias=m.bias is not None)
                y = layer(x)
                layer.set_weights([np_(m.weight).T] + ([np_(m.bias)] if m.bias is not None else []))
            elif isinstance(m, (nn.Dropout, nn.Identity)):
                y = x
            else:
                raise unsupported(f"{type(m).__name__} ({node.target})")
            env[node.name] = y
        elif node.op in ("call_function", "call_method"):
            f = node.target
            if f in (operator.add, torch.add, "add"):
                y = layers.Add()(args[:2])
            elif f in (F.relu, torch.relu, "relu"):
                y = layers.ReLU()(args[0])
            elif f is F.relu6:
                y = layers.ReLU(max_value=6.0)(args[0])
            elif f is F.adaptive_avg_pool2d and _pair(args[1]) == (1, 1):
                y = layers.GlobalAveragePooling2D(keepdims=True)(args[0])
            elif f in (torch.flatten, "flatten") and (args[1:] or [node.kwargs.get("start_dim", 0)])[0] == 1:
                x = args[0]
                y = layers.Flatten()(layers.Permute((3, 1, 2))(x)) if len(x.shape) == 4 else x
            else:
                raise unsupported(getattr(f, "__name__", str(f)))
            env[node.name] = y
        else:
            raise unsupported(f"{node.op} {node.target}")
    return keras.Model(inp, outputs[0] if len(outputs) == 1 else outputs)


# ----------------------------------------------------------------------------- Keras -> .tflite


def convert(keras_model: Any, path: str | os.PathLike, config: TFLiteConfig | None = None) -> str:
    """Convert ``keras_model`` to a ``.tflite`` file at ``path`` in ``config.mode``; returns the path."""
    import numpy as np

    tf = import_framework()
    cfg = config or TFLiteConfig()
    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)  # freezes the weights into the file
    if cfg.mode != "fp32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if cfg.mode == "fp16":
        conv.target_spec.supported_types = [tf.float16]
    if cfg.mode == "int8":
        batches = [np.asarray(x, dtype=np.float32) for x in cfg.representative]
        if not batches:
            raise ValueError("representative= is empty; mode='int8' needs calibration batches")
        conv.representative_dataset = lambda: ([x] for x in batches)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if cfg.io_dtype == "int8":
            conv.inference_input_type = conv.inference_output_type = tf.int8
    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints the temporary SavedModel's signature
        data = conv.convert()
    path = os.fspath(path)
    with open(path, "wb") as f:
        f.write(data)
    return path


# ----------------------------------------------------------------------------- running .tflite files


def check_file(path: str | os.PathLike) -> None:
    """Raise ``ValueError`` unless ``path`` is a structurally complete ``.tflite`` flatbuffer: TFLite's C++
    loader does not bounds-check every table, and a truncated file can crash the Python process."""
    import struct

    import_framework()
    from tensorflow.lite.python import schema_py_generated as fb

    path = os.fspath(path)
    with open(path, "rb") as f:
        buf = f.read()
    n = len(buf)

    def bad(why: str) -> ValueError:
        return ValueError(f"cannot load {path!r} as a TFLite model: {why} (corrupt or truncated file?)")

    if n < 8 or buf[4:8] != b"TFL3":
        raise bad("it lacks the TFL3 file identifier")
    try:
        m = fb.Model.GetRootAs(buf, 0)
        if m.SubgraphsLength() < 1:
            raise bad("it has no subgraph")
        for i in range(m.SubgraphsLength()):
            g = m.Subgraphs(i)
            for j in range(g.TensorsLength()):
                g.Tensors(j).ShapeAsNumpy()
            for j in range(g.OperatorsLength()):
                g.Operators(j).InputsAsNumpy()
        for i in range(m.BuffersLength()):
            b = m.Buffers(i)
            o = b._tab.Offset(4)  # noqa: SLF001 — the data vector; flatbuffers' Python API has no verifier
            if o and b._tab.Vector(o) + b._tab.VectorLen(o) > n:  # noqa: SLF001
                raise bad(f"weights buffer {i} runs past the end of the file")
            if b.Offset() > 1 and b.Offset() + b.Size() > n:
                raise bad(f"weights buffer {i} points past the end of the file")
    except (struct.error, IndexError) as e:
        raise bad(f"its tables point past the end ({type(e).__module__}.{type(e).__name__})") from None


def interpreter(path: str, *, threads: int | None = None, xnnpack: bool = True) -> Any:
    """A ``tf.lite.Interpreter`` for ``path`` with tensors allocated. ``xnnpack=False`` uses TFLite's
    built-in kernels only (XNNPACK is the default CPU delegate). Raises ``ValueError`` on a corrupt file."""
    tf = import_framework()
    check_file(path)
    resolver = (tf.lite.experimental.OpResolverType.AUTO if xnnpack
                else tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    try:
        with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": still TF's own, and works
            warnings.simplefilter("ignore", UserWarning)
            it = tf.lite.Interpreter(model_path=os.fspath(path), num_threads=threads,
                                     experimental_op_resolver_type=resolver)
            it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0][:200]
        raise ValueError(f"cannot load {os.fspath(path)!r} as a TFLite model: {first}") from None
    return it


def inspect_file(path_or_interpreter: Any) -> dict[str, Any]:
    """What a ``.tflite`` file computes in, read from its tensors: ``precision`` ("fp32", "int8",
    "int8-dynamic" or "fp32 (fp16 weights)"), the input/output dtypes and quantisation (scale, zero point),
    and the operator counts."""
    import numpy as np

    it = (interpreter(path_or_interpreter) if isinstance(path_or_interpreter, (str, os.PathLike))
          else path_or_interpreter)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ops = it._get_ops_details()  # noqa: SLF001 — the only way TFLite's Python API lists operators
    counts: dict[str, int] = {}
    for op in ops:
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    heavy = [op for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    out_types = {tensors[op["outputs"][0]]["dtype"] for op in heavy if len(op["outputs"])}
    weight_types = {tensors[op["inputs"][1]]["dtype"] for op in heavy if len(op["inputs"]) > 1 and op["inputs"][1] >= 0}
    has_fp16 = any(t["dtype"] == np.float16 for t in tensors.values())
    if np.int8 in out_types:
        precision = "int8"
    elif np.int8 in weight_types:
        precision = "int8-dynamic"
    elif has_fp16:
        precision = "fp32 (fp16 weights)"
    else:
        precision = "fp32"

    def io(t: dict) -> dict[str, Any]:
        scale, zp = t["quantization"]
        return {"shape": tuple(int(d) for d in t["shape"]), "dtype": np.dtype(t["dtype"]).name,
                "scale": float(scale), "zero_point": int(zp)}

    return {"precision": precision, "input": io(it.get_input_details()[0]), "output": io(it.get_output_details()[0]),
            "ops": counts}


def runner_for_file(path: str, *, threads: int | None = None, xnnpack: bool = True, model: str | None = None) -> Runner:
    """A :class:`Runner` over a ``.tflite`` file taking NCHW input (transposed to the file's NHWC inside
    ``run``, counted in its time). An int8-I/O file takes and returns int8 (see ``info['input']``)."""
    import numpy as np

    it = interpreter(path, threads=threads, xnnpack=xnnpack)
    facts = inspect_file(it)
    shape = facts["input"]["shape"]
    if len(shape) != 4:
        raise ValueError(f"{path} takes input of shape {shape}; this runner handles NHWC images only")
    nchw = (shape[0], shape[3], shape[1], shape[2])
    i_idx, o_idx = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    set_t, invoke, get_t = it.set_tensor, it.invoke, it.get_tensor

    def run(x: Any) -> Any:
        set_t(i_idx, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        invoke()
        return get_t(o_idx)

    return Runner(model or os.fspath(path), "tflite", nchw, facts["precision"], threads, run, file=os.fspath(path),
                  input_dtype=facts["input"]["dtype"], info={**facts, "xnnpack": xnnpack, "layout": "NHWC inside"},
                  handle=it)


# ----------------------------------------------------------------------------- registry entry


# Settings of :func:`build` that leave the answer the same up to rounding (:func:`mclab.runtimes.audit.audit_defaults`
# sweeps them; the default first): ``xnnpack`` (TFLite's default CPU delegate, or its built-in kernels only).
KNOBS: dict[str, tuple] = {"xnnpack": (True, False)}

_MODE_FOR = {"fp32": "fp32", "default": "fp32", "fp16": "fp16", "int8": "int8"}
_FILE_MODE = {"fp32": "fp32", "fp32 (fp16 weights)": "fp16", "int8-dynamic": "int8", "int8": "int8"}


def build(model: Any, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None,
          precision: str = "fp32", calibration: Callable[[int], Any] | None = None, xnnpack: bool = True) -> Runner:
    """Registry entry: a ``.tflite`` file runs as it is; a torchvision name or a CNN module is rebuilt in
    Keras (:func:`to_keras`) and converted at ``precision`` ("int8" calibrates on 8 random batches unless
    ``calibration(i)`` gives NCHW batches — notebook 11 uses real images). ``xnnpack=False`` runs TFLite's
    built-in kernels without the XNNPACK delegate (:func:`interpreter`; ``Runner.info["xnnpack"]``)."""
    import numpy as np

    if isinstance(model, str) and model.endswith(".tflite"):
        r = runner_for_file(model, threads=threads, xnnpack=xnnpack)
        if precision not in ("default", _FILE_MODE[r.precision]):
            raise ValueError(f"precision={precision!r} does not match {model} (it computes in {r.precision}); "
                             f"pass precision='default' or convert the model again in that mode")
        return r
    res = resolve(model, input_shape)
    module, label, shape = res.module, res.label, (batch, *res.input_shape)
    # the same weights, shape and precision convert to the same file: reuse it (the defaults audit builds every
    # variant of one precision from one module); given calibration data is not fingerprinted, so it converts anew
    key = None if calibration is not None else _fingerprint(module, shape, precision)
    path = _CONVERTED.get(key) if key else None
    if path is None or not os.path.isfile(path):
        keras_model = to_keras(module, shape)
        rng = np.random.default_rng(0)
        make = calibration or (lambda i: rng.standard_normal(shape, dtype=np.float32))
        rep = [np.asarray(make(i), np.float32).transpose(0, 2, 3, 1) for i in range(8)] if precision == "int8" else None
        out_dir = tempfile.mkdtemp(prefix=f"{os.path.basename(label)}-", dir=process_folder(CONVERSIONS))
        path = convert(keras_model, os.path.join(out_dir, f"{os.path.basename(label)}_{precision}.tflite"),
                       TFLiteConfig(mode=_MODE_FOR[precision], representative=rep))
        if key:
            _CONVERTED[key] = path
    return runner_for_file(path, threads=threads, xnnpack=xnnpack, model=label)


_CONVERTED: dict[str, str] = {}  # fingerprint of (module, shape, precision) -> a .tflite file made in this process
CONVERSIONS = "mclab-tflite-"  # the process_folder they are written to, removed when the process exits


def _fingerprint(module: Any, shape: tuple[int, ...], precision: str) -> str:
    """SHA-256 of a module's architecture (its repr), every state_dict tensor's bytes, the input shape and the
    precision: two builds with the same fingerprint convert to the same file."""
    import hashlib

    import torch

    h = hashlib.sha256(f"{type(module).__qualname__}|{module!r}|{shape}|{precision}".encode())
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(name.encode() + str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # the tensor's own bytes, no copy to float64
    return h.hexdigest()


def probe() -> dict[str, Any]:
    """What ``mclab doctor`` shows for TensorFlow Lite (run in a fresh interpreter): version and devices."""
    tf = import_framework()
    tf.lite.Interpreter  # noqa: B018 — raises AttributeError where TFLite is not bundled
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {"version": tf.__version__, "devices": ["CPU"] + gpus, "details": {"interpreter": "tf.lite.Interpreter"}}
