"""Running the kit's GGUF files in llama.cpp (through ``llama-cpp-python``), from token ids.

The files written by :func:`mclab.llm.gguf.export_gguf` are loaded by llama.cpp's own loader and run by its
own kernels. Tokens go in as ids, so no tokenizer round trip can blur the comparison (the kit's tokens are
bytes, stored in the file as llama.cpp's byte tokens ``<0x00>`` ... ``<0xFF>``):

- :func:`load_llamacpp` opens a file with every position's logits kept (``logits_all``); a file llama.cpp
  refuses raises :class:`LlamaCppError` carrying llama.cpp's own log lines.
- :func:`evaluate_llamacpp` runs non-overlapping windows of held-out tokens and sets llama.cpp's next-token
  logits beside a PyTorch reference model's: top-1 agreement, perplexity of each, KL divergence.
- :func:`generate_llamacpp` decodes greedily and times prefill and decode separately, as
  :func:`mclab.llm.generate.generate` does for PyTorch (it returns the same :class:`GenerationResult`).

llama-cpp-python is part of the kit's standard install (it compiles llama.cpp once); it is imported inside
the functions, so ``import mclab.llm`` does not load it. Introduced in notebook 13.
"""
from __future__ import annotations

import ctypes
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .eval import log_probs, token_windows
from .generate import GenerationResult
from .gguf import FILE_TYPES
from .model import LlamaConfig, kv_cache_bytes

__all__ = [
    # loading
    "LlamaCppConfig", "LlamaCppError", "load_llamacpp", "llamacpp_info",
    # running
    "llamacpp_logits", "LlamaCppEval", "evaluate_llamacpp", "generate_llamacpp",
]

KV_TYPES = {"F32": 0, "F16": 1}  # ggml_type ids of the KV-cache element types offered here
_LOG_WARN, _LOG_ERROR, _LOG_CONT = 3, 4, 5  # ggml_log_level (ggml.h): NONE, DEBUG, INFO, WARN, ERROR, CONT
_INSTALL_HINT = ("llama-cpp-python is part of the kit's standard install (`make lab` or `make test` compiles "
                 "llama.cpp once, about 5 minutes); reinstall with `.venv/bin/pip install -c constraints.txt "
                 "llama-cpp-python`")


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError as e:
        raise ImportError(f"cannot import llama_cpp ({e}). {_INSTALL_HINT}") from e
    return llama_cpp


@dataclass(frozen=True)
class LlamaCppConfig:
    """How llama.cpp runs a file. Threads apply to prefill and decode alike, so that a comparison with
    PyTorch at ``torch.set_num_threads(n)`` is like for like."""

    n_threads: int = 1  # threads for prefill (llama.cpp's n_threads_batch) and decode (n_threads)
    n_ctx: int = 512  # context llama.cpp allocates its KV cache for; 0 = the file's llama.context_length
    n_batch: int = 512  # tokens per llama_decode call in prefill; a window longer than this is split
    kv_type: str = "F16"  # element type of llama.cpp's KV cache: "F16" (its default) or "F32" (exact comparisons)
    seed: int = 0  # llama.cpp's sampler seed (greedy decoding here does not use it)

    def __post_init__(self) -> None:
        for name, low in (("n_threads", 1), ("n_ctx", 0), ("n_batch", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ValueError(f"{name}={v!r} must be an int >= {low}")
        if self.kv_type not in KV_TYPES:
            raise ValueError(f"kv_type={self.kv_type!r} is not supported; allowed: {', '.join(KV_TYPES)}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LlamaCppError(RuntimeError):
    """llama.cpp refused a file; the message holds llama.cpp's own warning and error lines."""


def load_llamacpp(path: str | Path, config: LlamaCppConfig = LlamaCppConfig()):
    """Load the GGUF file ``path`` into llama.cpp; returns a ``llama_cpp.Llama`` that keeps every position's logits.

    Raises :class:`FileNotFoundError` for a missing file and :class:`LlamaCppError` (with llama.cpp's log lines,
    e.g. ``tensor ... data is not within the file bounds``) when llama.cpp cannot load it.
    """
    if not isinstance(config, LlamaCppConfig):
        raise TypeError(f"config must be a LlamaCppConfig, got {type(config).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path={str(path)!r}: no such GGUF file")
    llama_cpp = _llama_cpp()
    from llama_cpp import _logger

    lines: list[tuple[int, str]] = []

    @llama_cpp.llama_log_callback
    def _collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        msg = text.decode("utf-8", errors="replace")
        if level == _LOG_CONT and lines:  # continues the previous line
            lines[-1] = (lines[-1][0], lines[-1][1] + msg)
        else:
            lines.append((level, msg))

    llama_cpp.llama_log_set(_collect, ctypes.c_void_p(0))  # llama.cpp's messages, kept rather than printed
    try:
        return llama_cpp.Llama(
            model_path=str(path), n_ctx=config.n_ctx, n_batch=config.n_batch, n_ubatch=config.n_batch,
            n_threads=config.n_threads, n_threads_batch=config.n_threads, seed=config.seed, logits_all=True,
            type_k=KV_TYPES[config.kv_type], type_v=KV_TYPES[config.kv_type], n_gpu_layers=0, verbose=False)
    except ValueError as e:
        said = "".join(m for level, m in lines if level in (_LOG_WARN, _LOG_ERROR)).strip()
        raise LlamaCppError(f"llama.cpp could not load {path}: {e}\nllama.cpp said:\n{said or '(nothing)'}") from e
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))  # back to llama-cpp-python's


def llamacpp_info(lm=None) -> dict[str, Any]:
    """llama-cpp-python's version and llama.cpp's build features (``llama_print_system_info``: the SIMD
    instruction sets its kernels were compiled for); with ``lm``, also the file's format and shape."""
    llama_cpp = _llama_cpp()
    info: dict[str, Any] = {"version": llama_cpp.__version__,
                            "system_info": llama_cpp.llama_print_system_info().decode().strip()}
    if lm is not None:
        md = lm.metadata
        ftypes = {str(v): k for k, v in FILE_TYPES.items()}
        info.update({"file_type": ftypes.get(md.get("general.file_type", ""), md.get("general.file_type")),
                     "n_vocab": lm.n_vocab(), "n_ctx": lm.n_ctx(), "n_threads": lm.n_threads,
                     "architecture": md.get("general.architecture")})
    return info


def _check_tokens(lm, tokens, what: str) -> list[int]:
    ids = np.asarray(tokens).reshape(-1)
    if isinstance(tokens, str) or not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{what} must be token ids (ints), got {type(tokens).__name__} of {ids.dtype}; "
                        "encode text with ByteTokenizer().encode(text) first")
    if ids.size == 0:
        raise ValueError(f"{what} has no tokens; give at least one token id")
    if ids.min() < 0 or ids.max() >= lm.n_vocab():
        raise ValueError(f"{what} holds ids from {ids.min()} to {ids.max()}; the file's vocabulary is "
                         f"0..{lm.n_vocab() - 1}")
    return [int(t) for t in ids]


def llamacpp_logits(lm, tokens) -> np.ndarray:
    """llama.cpp's next-token logits for every position of ``tokens`` (one sequence of ids, from position 0):
    float32 (T, vocab). The context is cleared first, so each call is independent."""
    ids = _check_tokens(lm, tokens, "tokens")
    if len(ids) > lm.n_ctx():
        raise ValueError(f"tokens has {len(ids)} ids, more than the context n_ctx={lm.n_ctx()}")
    lm.reset()
    lm.eval(ids)
    return np.array(lm.scores[: len(ids)], dtype=np.float32)


@dataclass
class LlamaCppEval:
    """llama.cpp's next-token predictions on held-out windows beside a PyTorch reference's (same windows).

    ``agreement``: share of positions where both pick the same top-1 token; perplexities per token (byte);
    ``kld``: mean KL(reference || llama.cpp) in nats per token; ``max_abs_logprob_diff``: the largest
    difference of log-probabilities seen (logits up to each row's constant); ``eval_s``: llama.cpp's wall time
    over all windows, in s."""

    positions: int
    windows: int
    seq_len: int
    agreement: float
    perplexity: float
    reference_perplexity: float
    kld: float
    max_abs_logprob_diff: float
    eval_s: float

    @property
    def ppl_change_pct(self) -> float:
        """llama.cpp's perplexity against the reference's, in percent."""
        return 100 * (self.perplexity / self.reference_perplexity - 1)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ppl_change_pct": self.ppl_change_pct}


@torch.inference_mode()
def evaluate_llamacpp(lm, reference: torch.nn.Module, tokens, seq_len: int = 256,
                      max_tokens: int | None = None, batch_size: int = 16) -> LlamaCppEval:
    """Run non-overlapping ``seq_len`` windows of ``tokens`` (capped at ``max_tokens``) through llama.cpp (``lm``,
    from :func:`load_llamacpp`) and through ``reference`` (the PyTorch model); returns a :class:`LlamaCppEval`.

    The windows are those of :func:`mclab.llm.perplexity`, so ``reference_perplexity`` equals it.
    """
    if not isinstance(reference, torch.nn.Module):
        raise TypeError(f"reference must be a torch.nn.Module (the PyTorch model), got {type(reference).__name__}")
    if not isinstance(seq_len, int) or not 1 <= seq_len <= lm.n_ctx():
        raise ValueError(f"seq_len={seq_len!r} must be an int between 1 and the context n_ctx={lm.n_ctx()}")
    x, y = token_windows(tokens, seq_len, max_tokens, "evaluate_llamacpp")
    _check_tokens(lm, x, "tokens")
    nll = nll_ref = kld = 0.0
    agree, max_diff, eval_s = 0, 0.0, 0.0
    for i, ref_lp in zip(range(0, len(x), batch_size), log_probs(reference, x, batch_size), strict=True):
        for j in range(ref_lp.shape[0]):
            t0 = time.perf_counter()
            logits = torch.from_numpy(llamacpp_logits(lm, x[i + j].tolist()))  # (T, vocab)
            eval_s += time.perf_counter() - t0
            lp, rlp, target = F.log_softmax(logits, -1), ref_lp[j], y[i + j]
            nll -= lp.gather(-1, target[:, None]).sum().item()
            nll_ref -= rlp.gather(-1, target[:, None]).sum().item()
            kld += F.kl_div(lp, rlp, log_target=True, reduction="sum").item()
            agree += int((lp.argmax(-1) == rlp.argmax(-1)).sum())
            max_diff = max(max_diff, float((lp - rlp).abs().max()))
    n = y.numel()
    return LlamaCppEval(positions=n, windows=len(x), seq_len=seq_len, agreement=agree / n,
                        perplexity=math.exp(nll / n), reference_perplexity=math.exp(nll_ref / n), kld=kld / n,
                        max_abs_logprob_diff=max_diff, eval_s=eval_s)


def _kv_bytes(lm) -> int:
    """Bytes of llama.cpp's KV cache as allocated (:func:`mclab.llm.kv_cache_bytes` of the GGUF's shape at the
    context llama.cpp chose: it rounds the one asked for up to a multiple of 256)."""
    md = lm.metadata
    arch = md.get("general.architecture", "llama")
    heads = int(md[f"{arch}.attention.head_count"])
    shape = LlamaConfig(dim=int(md[f"{arch}.embedding_length"]), n_layers=int(md[f"{arch}.block_count"]),
                        n_heads=heads, n_kv_heads=int(md.get(f"{arch}.attention.head_count_kv", heads)))
    elem = 4 if int(lm.context_params.type_k) == KV_TYPES["F32"] else 2
    return kv_cache_bytes(shape, lm.n_ctx(), 1, elem)


def generate_llamacpp(lm, prompt, max_new_tokens: int = 64) -> GenerationResult:
    """Greedy decoding in llama.cpp: the prompt (token ids) in one prefill, then one token per ``llama_decode``;
    returns a :class:`~mclab.llm.generate.GenerationResult` (times in ms, speeds in tokens/s), as
    :func:`mclab.llm.generate` does for PyTorch."""
    ids = _check_tokens(lm, prompt, "prompt")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens!r} must be a positive int")
    if len(ids) + max_new_tokens > lm.n_ctx():
        raise ValueError(f"prompt of {len(ids)} tokens + max_new_tokens={max_new_tokens} exceeds the context "
                         f"n_ctx={lm.n_ctx()}")
    lm.reset()
    start = time.perf_counter()
    lm.eval(ids)  # prefill
    nxt = int(np.argmax(lm.scores[len(ids) - 1]))
    ttft = time.perf_counter() - start
    out, steps = [nxt], []
    t0 = time.perf_counter()
    for _ in range(max_new_tokens - 1):
        ts = time.perf_counter()
        lm.eval([nxt])  # one new token against the cached keys and values
        nxt = int(np.argmax(lm.scores[lm.n_tokens - 1]))
        out.append(nxt)
        steps.append((time.perf_counter() - ts) * 1e3)
    decode = time.perf_counter() - t0
    return GenerationResult(prompt_tokens=ids, new_tokens=out, use_cache=True, ttft_ms=ttft * 1e3,
                            decode_ms=decode * 1e3, kv_cache_bytes=_kv_bytes(lm), step_ms=steps)
