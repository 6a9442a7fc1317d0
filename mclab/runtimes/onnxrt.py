"""ONNX Runtime on the CPU execution provider."""
from __future__ import annotations

from typing import Any

from . import Runner


def build(model: str, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None) -> Runner:
    import onnxruntime as ort

    from ..bench import ort_session_options

    so = ort_session_options(threads) if threads else ort.SessionOptions()
    try:
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for corrupt files
        first = str(e).strip().splitlines()[0][:200]
        raise ValueError(f"cannot load {model!r} as an ONNX model: {first}") from None
    inp = sess.get_inputs()[0]
    declared = list(inp.shape)  # dims are ints, or names / None where dynamic
    if input_shape is not None:
        if len(input_shape) != len(declared) - 1:
            raise ValueError(f"input shape {tuple(input_shape)} has {len(input_shape)} dims; {model} expects "
                             f"{len(declared) - 1} after the batch ({declared})")
        for want, have in zip(input_shape, declared[1:]):
            if isinstance(have, int) and have != want:
                raise ValueError(f"input shape {tuple(input_shape)} does not fit {model}: it declares {declared}")
        rest = tuple(int(d) for d in input_shape)
    else:
        if any(not isinstance(d, int) for d in declared[1:]):
            raise ValueError(f"{model} has dynamic dims {declared}; pass --input-shape")
        rest = tuple(declared[1:])
    if isinstance(declared[0], int) and declared[0] != batch:
        raise ValueError(f"batch={batch} does not fit {model}: its batch dim is fixed at {declared[0]}")
    name, out_name = inp.name, sess.get_outputs()[0].name
    precision = {"tensor(float)": "fp32", "tensor(float16)": "fp16"}.get(inp.type, inp.type)

    def run(x: Any) -> Any:
        return sess.run([out_name], {name: x})[0]

    return Runner(model, "onnxruntime", (batch, *rest), precision, threads or so.intra_op_num_threads, run, file=model)
