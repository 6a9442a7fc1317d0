"""GGUF export in llama.cpp's formats (F32, F16, Q8_0, Q4_0), with the kit's own block quantisers and writer.

GGUF (llama.cpp's file format, version 3) is a header of key/value metadata, a table of tensors
(name, shape, type, offset) and the tensor data, aligned to 32 bytes. The two block formats used
here quantise each run of 32 consecutive weights of a row:

- **Q8_0**: 34 bytes per block: an fp16 scale d = max|x| / 127, then 32 int8 values round(x / d).
- **Q4_0**: 18 bytes per block: an fp16 scale d = m / -8, where m is the value of largest magnitude
  (sign kept), then 32 4-bit values min(15, trunc(x / d + 8.5)) packed two per byte: byte j holds
  value j in its low nibble and value j + 16 in its high nibble. 4.5 bits per weight.

The arithmetic follows ggml's reference C code (float32, C ``roundf``), so the blocks are
bit-identical to those of the ``gguf`` package's quantisers (tests/llm/test_gguf.py checks this, and
reads every exported file back with ``gguf.GGUFReader``). Introduced in notebook 13.
"""
from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    # formats
    "GGML_TYPES", "BLOCK", "quantize_q8_0", "dequantize_q8_0", "quantize_q4_0", "dequantize_q4_0",
    # files
    "GGUFConfig", "GGUFExport", "export_gguf", "load_gguf", "tensor_names",
]

GGML_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 8}  # ggml_type ids
FILE_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7}  # llama_ftype ids ("mostly ...")
BLOCK = 32  # weights per Q8_0 / Q4_0 block
ALIGNMENT = 32  # GGUF's default data alignment


# ----------------------------------------------------------------------------- block formats


def _blocks(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 0 or x.shape[-1] % BLOCK:
        raise ValueError(f"row length {x.shape[-1] if x.ndim else 0} is not a multiple of the block size {BLOCK}")
    return x.reshape(-1, BLOCK)


def _roundf(v: np.ndarray) -> np.ndarray:
    """C's roundf: half away from zero. frac = a - floor(a) is exact, so no double rounding."""
    a = np.abs(v)
    fl = np.floor(a)
    return np.sign(v) * (fl + (a - fl >= 0.5))


def quantize_q8_0(x: np.ndarray) -> np.ndarray:
    """Q8_0 blocks of ``x`` (..., n), n a multiple of 32: uint8 (..., n / 32 * 34)."""
    b = _blocks(x)
    d = np.abs(b).max(axis=1, keepdims=True) / np.float32(127)  # (nb, 1) float32
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    q = _roundf(b * inv).astype(np.int8)
    out = np.concatenate([d.astype(np.float16).view(np.uint8), q.view(np.uint8)], axis=1)  # (nb, 34)
    return out.reshape(*np.shape(x)[:-1], -1)


def dequantize_q8_0(blocks: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`quantize_q8_0`: float32 of ``shape``."""
    b = np.asarray(blocks, dtype=np.uint8).reshape(-1, 34)
    d = b[:, :2].copy().view(np.float16).astype(np.float32)
    return (b[:, 2:].view(np.int8).astype(np.float32) * d).reshape(shape)


def quantize_q4_0(x: np.ndarray) -> np.ndarray:
    """Q4_0 blocks of ``x`` (..., n), n a multiple of 32: uint8 (..., n / 32 * 18)."""
    b = _blocks(x)
    m = np.take_along_axis(b, np.abs(b).argmax(axis=1)[:, None], axis=1)  # signed value of largest magnitude
    d = m / np.float32(-8)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    q = np.minimum(np.trunc(b * inv + np.float32(8.5)), 15).astype(np.uint8)  # 0..15
    packed = q[:, :16] | (q[:, 16:] << 4)  # low nibble: first half, high nibble: second half
    out = np.concatenate([d.astype(np.float16).view(np.uint8), packed], axis=1)  # (nb, 18)
    return out.reshape(*np.shape(x)[:-1], -1)


def dequantize_q4_0(blocks: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`quantize_q4_0`: float32 of ``shape``."""
    b = np.asarray(blocks, dtype=np.uint8).reshape(-1, 18)
    d = b[:, :2].copy().view(np.float16).astype(np.float32)
    q = np.concatenate([b[:, 2:] & 0x0F, b[:, 2:] >> 4], axis=1).astype(np.float32) - 8
    return (q * d).reshape(shape)


def _encode(x: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "F32":
        return np.ascontiguousarray(x, dtype=np.float32)
    if fmt == "F16":
        return np.ascontiguousarray(x, dtype=np.float16)
    return quantize_q8_0(x) if fmt == "Q8_0" else quantize_q4_0(x)


# ----------------------------------------------------------------------------- writer


_VT = {"u32": 4, "i32": 5, "f32": 6, "bool": 7, "str": 8, "arr": 9}  # GGUF metadata value types


def _s(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, kind: str, value: Any) -> bytes:
    out = _s(key) + struct.pack("<I", _VT[kind])
    if kind == "str":
        return out + _s(value)
    if kind == "arr":
        elem, items = value
        body = b"".join(_s(v) for v in items) if elem == "str" else np.asarray(
            items, dtype={"i32": "<i4", "f32": "<f4"}[elem]).tobytes()
        return out + struct.pack("<IQ", _VT[elem], len(items)) + body
    return out + struct.pack({"u32": "<I", "i32": "<i", "f32": "<f", "bool": "<?"}[kind], value)


def _write_gguf(path: Path, meta: list[tuple[str, str, Any]],
                tensors: list[tuple[str, tuple[int, ...], str, np.ndarray]]) -> int:
    """Write a GGUF v3 file; ``tensors`` are (name, logical numpy shape, format, encoded data). Returns bytes
    written."""
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta)) + b"".join(_kv(*m) for m in meta)
    infos, offset, datas = b"", 0, []
    for name, shape, fmt, data in tensors:
        ne = tuple(reversed(shape))  # ggml lists dimensions innermost first
        infos += _s(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
        infos += struct.pack("<IQ", GGML_TYPES[fmt], offset)
        raw = data.tobytes()
        pad = -len(raw) % ALIGNMENT
        datas.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    head = header + infos
    head += b"\0" * (-len(head) % ALIGNMENT)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(head)
        for d in datas:
            f.write(d)
    return len(head) + offset


# ----------------------------------------------------------------------------- the model as GGUF


@dataclass(frozen=True)
class GGUFConfig:
    """How to export: ``ftype`` is the format of the 2-D weights; norms stay F32 (as llama.cpp does)."""

    ftype: str = "Q4_0"  # "F32" | "F16" | "Q8_0" | "Q4_0"
    name: str = "mclab-tinyllama"  # general.name in the file

    def __post_init__(self) -> None:
        if self.ftype not in GGML_TYPES:
            raise ValueError(f"ftype={self.ftype!r} is not supported; allowed: {', '.join(GGML_TYPES)}")


@dataclass
class GGUFExport:
    """An exported file: path, size in bytes, and the format of each tensor."""

    path: str
    ftype: str
    file_bytes: int
    tensor_types: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def tensor_names(n_layers: int) -> dict[str, str]:
    """PyTorch state-dict name -> llama.cpp GGUF tensor name for a :class:`~mclab.llm.model.TinyLlama`."""
    names = {"tok_embeddings.weight": "token_embd.weight", "norm.weight": "output_norm.weight",
             "output.weight": "output.weight"}
    per_layer = {"attention_norm.weight": "attn_norm.weight", "attention.wq.weight": "attn_q.weight",
                 "attention.wk.weight": "attn_k.weight", "attention.wv.weight": "attn_v.weight",
                 "attention.wo.weight": "attn_output.weight", "ffn_norm.weight": "ffn_norm.weight",
                 "feed_forward.w1.weight": "ffn_gate.weight", "feed_forward.w3.weight": "ffn_up.weight",
                 "feed_forward.w2.weight": "ffn_down.weight"}
    for i in range(n_layers):
        names.update({f"layers.{i}.{k}": f"blk.{i}.{v}" for k, v in per_layer.items()})
    return names


def _metadata(cfg, name: str, ftype: str) -> list[tuple[str, str, Any]]:
    tokens = [f"<0x{i:02X}>" for i in range(cfg.vocab_size)]  # byte tokens, llama.cpp's byte-fallback spelling
    return [
        ("general.architecture", "str", "llama"), ("general.name", "str", name),
        ("general.alignment", "u32", ALIGNMENT), ("general.file_type", "u32", FILE_TYPES[ftype]),
        ("llama.vocab_size", "u32", cfg.vocab_size), ("llama.context_length", "u32", cfg.max_seq_len),
        ("llama.embedding_length", "u32", cfg.dim), ("llama.block_count", "u32", cfg.n_layers),
        ("llama.feed_forward_length", "u32", cfg.hidden_dim), ("llama.attention.head_count", "u32", cfg.n_heads),
        ("llama.attention.head_count_kv", "u32", cfg.n_kv_heads),
        ("llama.rope.dimension_count", "u32", cfg.head_dim), ("llama.rope.freq_base", "f32", cfg.rope_theta),
        ("llama.attention.layer_norm_rms_epsilon", "f32", cfg.norm_eps),
        ("tokenizer.ggml.model", "str", "llama"), ("tokenizer.ggml.tokens", "arr", ("str", tokens)),
        ("tokenizer.ggml.scores", "arr", ("f32", [0.0] * cfg.vocab_size)),
        ("tokenizer.ggml.token_type", "arr", ("i32", [6] * cfg.vocab_size)),  # 6 = BYTE
        ("tokenizer.ggml.bos_token_id", "u32", 0), ("tokenizer.ggml.eos_token_id", "u32", 0),
        ("tokenizer.ggml.add_bos_token", "bool", False),
    ]


def export_gguf(model, path: str | Path, config: GGUFConfig = GGUFConfig()) -> GGUFExport:
    """Write ``model`` (a TinyLlama) to ``path`` as GGUF; returns a :class:`GGUFExport`.

    2-D weights whose rows are a multiple of 32 use ``config.ftype``; other tensors (norms) are F32.
    """
    if not isinstance(config, GGUFConfig):
        raise TypeError(f"config must be a GGUFConfig, got {type(config).__name__}")
    names = tensor_names(model.config.n_layers)
    tensors, types = [], {}
    for key, value in model.state_dict().items():
        if key not in names:
            raise ValueError(f"tensor {key!r} has no GGUF name; export_gguf takes a float TinyLlama "
                             "(not one whose layers were replaced by QuantLinear)")
        x = value.detach().float().cpu().numpy()
        fmt = config.ftype if x.ndim == 2 and (config.ftype in ("F32", "F16") or x.shape[-1] % BLOCK == 0) else "F32"
        tensors.append((names[key], x.shape, fmt, _encode(x, fmt)))
        types[names[key]] = fmt
    n = _write_gguf(Path(path), _metadata(model.config, config.name, config.ftype), tensors)
    return GGUFExport(path=str(path), ftype=config.ftype, file_bytes=n, tensor_types=types)


def load_gguf(path: str | Path):
    """Read a file written by :func:`export_gguf` (parsed by the ``gguf`` package's reader, decoded by the
    kit's dequantisers) into a float32 TinyLlama; returns the model in eval mode."""
    import torch
    from gguf import GGUFReader

    from .model import LlamaConfig, TinyLlama

    reader = GGUFReader(str(path))

    def field(key):
        f = reader.fields[key]
        return f.parts[f.data[0]][0].item()

    cfg = LlamaConfig(
        vocab_size=int(field("llama.vocab_size")), dim=int(field("llama.embedding_length")),
        n_layers=int(field("llama.block_count")), n_heads=int(field("llama.attention.head_count")),
        n_kv_heads=int(field("llama.attention.head_count_kv")), hidden_dim=int(field("llama.feed_forward_length")),
        max_seq_len=int(field("llama.context_length")), rope_theta=float(field("llama.rope.freq_base")),
        norm_eps=float(field("llama.attention.layer_norm_rms_epsilon")))
    model = TinyLlama(cfg)
    by_gguf = {v: k for k, v in tensor_names(cfg.n_layers).items()}
    state = {}
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape))  # numpy order
        kind = t.tensor_type.name
        raw = np.asarray(t.data)
        if kind in ("F32", "F16"):
            arr = raw.astype(np.float32).reshape(shape)
        elif kind == "Q8_0":
            arr = dequantize_q8_0(raw, shape)
        elif kind == "Q4_0":
            arr = dequantize_q4_0(raw, shape)
        else:
            raise ValueError(f"tensor {t.name} has type {kind}; load_gguf reads {', '.join(GGML_TYPES)}")
        state[by_gguf[t.name]] = torch.from_numpy(np.ascontiguousarray(arr))
    model.load_state_dict(state)
    return model.eval()
