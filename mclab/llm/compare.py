"""Side-by-side comparison of weight formats: perplexity, bytes, decode speed and a sample, per variant.

``compare_formats(model, ["fp32", "bf16", LLMQuantConfig(bits=4, algorithm="gptq")], val, inputs)``
returns a :class:`FormatTable` (``to_frame()`` for a DataFrame). Used by notebook 13 and
``benchmarks/llm.py``.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .eval import log_probs, nll, token_windows
from .generate import GenerateConfig, generate
from .quant import LayerInputs, LLMQuantConfig, capture_inputs, cast, linear_weight_bytes, quantized
from .tokenizer import ByteTokenizer

__all__ = ["FormatResult", "FormatTable", "compare_formats", "FLOAT_FORMATS"]

FLOAT_FORMATS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class FormatResult:
    """One weight format: perplexity on held-out text, bytes of the linear weights (scales included), speed,
    a sample."""

    name: str
    algorithm: str  # "float" | "rtn" | "awq" | "gptq"
    bits: int
    group_size: int | None
    perplexity: float
    linear_bytes: int
    bytes_vs_fp32: float  # linear_bytes / the FP32 linear bytes
    ppl_change_pct: float  # vs FP32, percent
    kld: float  # mean KL divergence from FP32's next-token distribution, nats per token (0 for FP32)
    decode_tokens_per_s: float
    prepare_s: float  # time to cast or quantise (AWQ search, GPTQ solve)
    sample: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FormatTable:
    rows: list[FormatResult] = field(default_factory=list)

    def __getitem__(self, name: str) -> FormatResult:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no format named {name!r}; have {[r.name for r in self.rows]}")

    def as_dict(self) -> dict[str, Any]:
        return {"rows": [r.as_dict() for r in self.rows]}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([r.as_dict() for r in self.rows]).set_index("name")


def _name(v: str | LLMQuantConfig) -> str:
    return v if isinstance(v, str) else v.label


@torch.inference_mode()
def _scores(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ref: list[torch.Tensor] | None,
            batch_size: int = 16) -> tuple[float, float, list[torch.Tensor]]:
    """(perplexity, KL(reference || m) per token, m's log-probabilities) from one pass over the windows ``x``.

    The numbers :func:`~mclab.llm.eval.perplexity` and :func:`~mclab.llm.eval.kl_divergence` give, but each
    variant runs once and the reference's log-probabilities ``ref`` are computed once for the whole table.
    """
    total = kl = 0.0
    logps = []
    for j, (logp, yb) in enumerate(zip(log_probs(m, x, batch_size), y.split(batch_size), strict=True)):
        total += nll(logp, yb)
        if ref is None:
            logps.append(logp)
        else:
            kl += F.kl_div(logp, ref[j], log_target=True, reduction="sum").item()
    return math.exp(total / y.numel()), kl / x.numel(), logps


def compare_formats(model: torch.nn.Module, formats: Sequence[str | LLMQuantConfig], val_tokens,
                    inputs: LayerInputs | None = None, calib_tokens=None, eval_tokens: int | None = None,
                    prompt: str = "The for statement", decode_tokens: int = 48) -> FormatTable:
    """Evaluate ``model`` in each of ``formats`` ("fp32", "fp16", "bf16" or a :class:`LLMQuantConfig`).

    Perplexity uses the first ``eval_tokens`` of ``val_tokens`` (all when None). AWQ/GPTQ formats use
    ``inputs`` from :func:`capture_inputs` (or capture them from ``calib_tokens``). Decode speed: one greedy
    generation of ``decode_tokens`` with the KV cache after a short warm-up. Returns a :class:`FormatTable`;
    the FP32 row is always computed.
    """
    for f in formats:
        if isinstance(f, str) and f not in FLOAT_FORMATS:
            raise ValueError(f"format {f!r} is not known; allowed: {', '.join(FLOAT_FORMATS)} "
                             f"or a LLMQuantConfig")
        if not isinstance(f, (str, LLMQuantConfig)):
            raise TypeError(f"format must be a str or LLMQuantConfig, got {type(f).__name__}")
    needs_inputs = any(isinstance(f, LLMQuantConfig) and f.algorithm != "rtn" for f in formats)
    if needs_inputs and inputs is None:
        if calib_tokens is None:
            raise ValueError("AWQ/GPTQ formats need inputs= or calib_tokens= (calibration text, not the evaluation "
                             "text)")
        inputs = capture_inputs(model, calib_tokens)
    tok = ByteTokenizer()
    ids = tok.encode(prompt)
    fp32_bytes = linear_weight_bytes(model)
    table = FormatTable()
    ordered = ["fp32"] + [f for f in formats if f != "fp32"]
    x, y = token_windows(val_tokens, min(256, model.config.max_seq_len), eval_tokens, "perplexity")  # as perplexity()
    ref: list[torch.Tensor] | None = None  # FP32's log-probabilities, the KL reference
    for f in ordered:
        t = time.perf_counter()
        if isinstance(f, str):
            m = model if f == "fp32" else cast(model, FLOAT_FORMATS[f])
            algorithm, bits, group = "float", FLOAT_FORMATS[f].itemsize * 8, None
        else:
            m = quantized(model, f, inputs).model
            algorithm, bits, group = f.algorithm, f.bits, f.group_size
        prep = time.perf_counter() - t
        ppl, kld, logps = _scores(m, x, y, ref)
        ref = logps if ref is None else ref
        generate(m, ids, GenerateConfig(max_new_tokens=4))  # warm-up
        g = generate(m, ids, GenerateConfig(max_new_tokens=decode_tokens))
        base = table.rows[0].perplexity if table.rows else ppl
        lb = linear_weight_bytes(m)
        table.rows.append(FormatResult(
            name=_name(f), algorithm=algorithm, bits=bits, group_size=group, perplexity=ppl, linear_bytes=lb,
            bytes_vs_fp32=lb / fp32_bytes, ppl_change_pct=100 * (ppl / base - 1), kld=kld,
            decode_tokens_per_s=g.decode_tokens_per_s, prepare_s=prep, sample=prompt + tok.decode(g.new_tokens)))
    return table
