"""Entropy coding, and Deep Compression, the pipeline that ends in it.

Two layers, pure primitives at the bottom:

- The kit's own Huffman coder on non-negative integer symbols (NumPy only): :func:`entropy_bits` (the Shannon
  bound, bits per symbol), :func:`huffman_code` (a canonical :class:`HuffmanCode` built from symbol counts),
  :func:`encode` (symbols -> packed bits, an :class:`Encoded`) and :func:`decode` (bits -> symbols, a table-driven
  decoder that reads a byte at a time), and :func:`huffman`, which does all three and reports the average code
  length beside the entropy (:class:`CodingReport`). A Huffman code is optimal among prefix codes, so its average
  length ``L`` obeys ``H <= L < H + 1``; the tests check both bounds and the lossless round trip.
- :func:`deep_compress` (Han, Mao and Dally, ICLR 2016): magnitude pruning (:func:`mclab.prune.prune_`, optional
  fine-tuning with the masks on) -> k-means weight sharing per layer (:func:`mclab.quant.kmeans`) -> Huffman
  coding of the cluster indices and of the gaps between non-zero weights. It returns the storage after each
  stage in bytes and the accuracy after each stage (:class:`DeepCompressionResult`).

Introduced in notebook 19.
"""
from __future__ import annotations

import copy
import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

__all__ = [
    # Huffman primitives
    "entropy_bits", "HuffmanCode", "huffman_code", "Encoded", "encode", "decode",
    # one call: code, encode, report
    "CodingReport", "huffman",
    # Deep Compression
    "DeepCompressionConfig", "DeepCompressionResult", "sparse_gaps", "gap_positions", "deep_compress",
]


# ----------------------------------------------------------------------------- input checks


def _symbols(symbols: Any, name: str = "symbols") -> np.ndarray:
    """``symbols`` as a 1-D int64 array of non-negative integers, or a clear error."""
    if isinstance(symbols, torch.Tensor):
        symbols = symbols.detach().cpu().numpy()
    a = np.asarray(symbols)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
        raise TypeError(f"{name} must hold integers, got dtype {a.dtype}")
    a = a.reshape(-1).astype(np.int64)
    if a.size and int(a.min()) < 0:
        raise ValueError(f"{name} must be non-negative integers; found {int(a.min())}")
    return a


def _counts(counts: Any) -> dict[int, int]:
    """A {symbol: count} mapping from a mapping or from an array of symbols; counts must be positive ints."""
    if isinstance(counts, Mapping):
        out = {}
        for s, c in counts.items():
            if not isinstance(s, (int, np.integer)) or s < 0:
                raise ValueError(f"counts has symbol {s!r}; symbols must be non-negative ints")
            if not isinstance(c, (int, np.integer)) or c < 0:
                raise ValueError(f"counts[{s}]={c!r} must be a non-negative int")
            if c:
                out[int(s)] = int(c)
    else:
        a = _symbols(counts, "counts")
        out = {int(s): int(c) for s, c in zip(*np.unique(a, return_counts=True), strict=True)}
    if not out:
        raise ValueError("counts is empty: a code needs at least one symbol that occurs")
    return out


# ----------------------------------------------------------------------------- entropy and the code


def entropy_bits(symbols_or_counts: Any) -> float:
    """Shannon entropy of the symbols' empirical distribution, in bits per symbol: the lower bound on the
    average length of any code for them, symbol by symbol (notebook 19)."""
    c = np.array(list(_counts(symbols_or_counts).values()), dtype=float)
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


@dataclass
class HuffmanCode:
    """A canonical Huffman code: ``lengths[s]`` bits for symbol ``s``; ``codes[s]`` is its code word as an int
    (most significant bit first). Canonical: code words of one length are consecutive integers in symbol order,
    so the lengths alone define the code (what a file format stores)."""

    lengths: dict[int, int]
    codes: dict[int, int]

    @property
    def max_length(self) -> int:
        return max(self.lengths.values())

    def average_length(self, counts: Any) -> float:
        """Average code length in bits per symbol over ``counts`` (a {symbol: count} mapping or the symbols)."""
        c = _counts(counts)
        missing = sorted(set(c) - set(self.lengths))
        if missing:
            raise ValueError(f"symbols {missing[:5]} have no code word")
        return sum(n * self.lengths[s] for s, n in c.items()) / sum(c.values())

    def table_bits(self, symbol_bits: int | None = None) -> int:
        """Bits to store the code itself: per symbol its value (``symbol_bits``, default enough for the largest)
        and its length (5 bits covers lengths up to 31)."""
        sb = symbol_bits if symbol_bits is not None else max(1, max(self.lengths).bit_length())
        return len(self.lengths) * (sb + 5)

    def as_dict(self) -> dict[str, Any]:
        return {"lengths": {str(k): v for k, v in self.lengths.items()}, "max_length": self.max_length}


def _canonical(lengths: dict[int, int]) -> dict[int, int]:
    codes, code, prev = {}, 0, 0
    for s, n in sorted(lengths.items(), key=lambda kv: (kv[1], kv[0])):
        code <<= n - prev
        codes[s] = code
        code, prev = code + 1, n
    return codes


def huffman_code(counts: Any) -> HuffmanCode:
    """Build the Huffman code of ``counts`` (a {symbol: count} mapping, or an array of non-negative int symbols):
    repeatedly merge the two least frequent subtrees (ties broken by symbol order, so the result is
    deterministic), read each symbol's depth as its code length, then assign canonical code words. A single
    distinct symbol gets a 1-bit code. Returns a :class:`HuffmanCode`."""
    c = _counts(counts)
    if len(c) == 1:
        (s,) = c
        return HuffmanCode({s: 1}, {s: 0})
    heap = [(n, s, (s,)) for s, n in sorted(c.items())]          # (weight, tie-break, symbols below)
    heapq.heapify(heap)
    depth = dict.fromkeys(c, 0)
    while len(heap) > 1:
        n1, t1, a = heapq.heappop(heap)
        n2, t2, b = heapq.heappop(heap)
        for s in a + b:
            depth[s] += 1                                          # every symbol below the merge goes one deeper
        heapq.heappush(heap, (n1 + n2, min(t1, t2), a + b))
    return HuffmanCode(depth, _canonical(depth))


# ----------------------------------------------------------------------------- encode / decode


@dataclass
class Encoded:
    """A packed bit stream: ``data`` (uint8, most significant bit first), ``n_bits`` valid bits, ``n_symbols``."""

    data: np.ndarray
    n_bits: int
    n_symbols: int

    @property
    def n_bytes(self) -> int:
        return int(self.data.size)


def encode(symbols: Any, code: HuffmanCode) -> Encoded:
    """Write ``symbols`` with ``code`` as one packed bit stream (vectorised with NumPy). Returns an
    :class:`Encoded`; a symbol without a code word is a ValueError."""
    if not isinstance(code, HuffmanCode):
        raise TypeError(f"code must be a HuffmanCode, got {type(code).__name__}")
    a = _symbols(symbols)
    if a.size == 0:
        return Encoded(np.zeros(0, np.uint8), 0, 0)
    top = max(max(code.lengths), int(a.max())) + 1
    lens = np.zeros(top, np.int64)
    words = np.zeros(top, np.int64)
    for s, n in code.lengths.items():
        lens[s], words[s] = n, code.codes[s]
    ln = lens[a]
    if not ln.all():
        bad = np.unique(a[ln == 0])[:5].tolist()
        raise ValueError(f"symbols {bad} have no code word in this code")
    starts = np.cumsum(ln) - ln
    total = int(ln.sum())
    rep_len = np.repeat(ln, ln)
    j = np.arange(total, dtype=np.int64) - np.repeat(starts, ln)     # bit position inside each code word
    bits = (np.repeat(words[a], ln) >> (rep_len - 1 - j)) & 1
    return Encoded(np.packbits(bits.astype(np.uint8)), total, int(a.size))


def _byte_table(code: HuffmanCode) -> tuple[list[list[tuple[tuple[int, ...], int]]], int]:
    """The decoder's state machine: for every internal node of the code tree (a state) and every byte, the symbols
    that byte completes and the node it ends in. Returns (table[state][byte], number of states)."""
    children: list[list[int]] = [[-1, -1]]      # internal nodes; a leaf is stored as -(symbol + 2)
    for s, n in code.lengths.items():
        w, node = code.codes[s], 0
        for k in range(n - 1, -1, -1):
            bit = (w >> k) & 1
            if k == 0:
                children[node][bit] = -(s + 2)
            else:
                if children[node][bit] < 0:
                    children[node][bit] = len(children)
                    children.append([-1, -1])
                node = children[node][bit]
    table = []
    for state in range(len(children)):
        row = []
        for byte in range(256):
            node, out = state, []
            for k in range(7, -1, -1):
                nxt = children[node][(byte >> k) & 1]
                if nxt == -1:                        # a path no code word takes (only a 1-symbol code has them)
                    nxt = -(next(iter(code.lengths)) + 2)
                if nxt < 0:
                    out.append(-nxt - 2)
                    node = 0
                else:
                    node = nxt
            row.append((tuple(out), node))
        table.append(row)
    return table, len(children)


def decode(encoded: Encoded, code: HuffmanCode) -> np.ndarray:
    """Read ``encoded.n_symbols`` symbols back from the bit stream with ``code`` (one table look-up per byte).
    Returns an int64 array equal to what was encoded."""
    if not isinstance(encoded, Encoded):
        raise TypeError(f"encoded must be an Encoded, got {type(encoded).__name__}")
    if not isinstance(code, HuffmanCode):
        raise TypeError(f"code must be a HuffmanCode, got {type(code).__name__}")
    table, _ = _byte_table(code)
    out: list[int] = []
    extend, state = out.extend, 0
    for byte in encoded.data.tolist():
        syms, state = table[state][byte]
        extend(syms)
    if len(out) < encoded.n_symbols:
        raise ValueError(f"stream holds {len(out)} symbols, expected {encoded.n_symbols}: wrong code or data")
    return np.asarray(out[:encoded.n_symbols], dtype=np.int64)   # padding bits of the last byte may add symbols


# ----------------------------------------------------------------------------- one call


@dataclass
class CodingReport:
    """Huffman coding of one symbol stream: entropy and average code length (bits per symbol), total bits
    of the stream and of the code table, and what a fixed-width code would need."""

    n_symbols: int
    n_distinct: int
    entropy_bits: float               # bits / symbol, the Shannon bound
    average_bits: float               # bits / symbol of the Huffman code
    fixed_bits: int                   # bits / symbol of a fixed-width code for the same alphabet (max symbol)
    stream_bits: int
    table_bits: int
    code: HuffmanCode = field(repr=False)
    encoded: Encoded = field(repr=False)

    @property
    def total_bytes(self) -> int:
        """Stream plus code table, in bytes (rounded up)."""
        return math.ceil((self.stream_bits + self.table_bits) / 8)

    @property
    def gap_bits(self) -> float:
        """Average length minus entropy, bits per symbol: in [0, 1) for a Huffman code."""
        return self.average_bits - self.entropy_bits

    def as_dict(self) -> dict[str, Any]:
        return {"n_symbols": self.n_symbols, "n_distinct": self.n_distinct, "entropy_bits": self.entropy_bits,
                "average_bits": self.average_bits, "fixed_bits": self.fixed_bits, "stream_bits": self.stream_bits,
                "table_bits": self.table_bits, "total_bytes": self.total_bytes, "gap_bits": self.gap_bits}


def huffman(symbols: Any, *, symbol_bits: int | None = None) -> CodingReport:
    """Build the Huffman code of ``symbols`` (non-negative ints), encode them and report average length against
    the entropy. ``symbol_bits`` is the fixed width the symbols would otherwise take (default: enough for the
    largest). Returns a :class:`CodingReport` (its ``encoded`` and ``code`` decode back with :func:`decode`)."""
    a = _symbols(symbols)
    if a.size == 0:
        raise ValueError("symbols is empty")
    counts = _counts(a)
    code = huffman_code(counts)
    enc = encode(a, code)
    fixed = symbol_bits if symbol_bits is not None else max(1, int(a.max()).bit_length())
    if not isinstance(fixed, int) or fixed < 1:
        raise ValueError(f"symbol_bits={symbol_bits!r} must be an int >= 1")
    return CodingReport(int(a.size), len(counts), entropy_bits(counts), enc.n_bits / a.size, fixed, enc.n_bits,
                        code.table_bits(fixed), code, enc)


# ----------------------------------------------------------------------------- Deep Compression


def sparse_gaps(mask: Any, index_bits: int) -> np.ndarray:
    """Relative indexing of the non-zeros of a flattened ``mask`` in ``index_bits``-bit codes, in the manner of
    Deep Compression: a code ``c < cap`` (``cap = 2**index_bits - 1``) means "the next non-zero is ``c + 1``
    places after the previous one" (the first counts from position -1); ``c == cap`` is a filler that moves
    ``cap`` places on without a weight, for gaps too long to fit. Returns the int64 codes; one per non-zero plus
    the fillers. :func:`gap_positions` inverts it."""
    if not isinstance(index_bits, int) or isinstance(index_bits, bool) or not 1 <= index_bits <= 16:
        raise ValueError(f"index_bits={index_bits!r} must be an int from 1 to 16")
    m = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask).reshape(-1) != 0
    gaps = np.diff(np.flatnonzero(m), prepend=-1)              # >= 1
    cap = (1 << index_bits) - 1
    fillers = (gaps - 1) // cap                                # fillers needed before each non-zero
    n = fillers + 1
    out = np.full(int(n.sum()), cap, dtype=np.int64)
    out[np.cumsum(n) - 1] = gaps - fillers * cap - 1           # the remainder, in [0, cap - 1]
    return out


def gap_positions(codes: Any, index_bits: int) -> np.ndarray:
    """Flat positions of the non-zeros that :func:`sparse_gaps` codes describe (int64, ascending)."""
    c = _symbols(codes, "codes")
    cap = (1 << index_bits) - 1
    if c.size and int(c.max()) > cap:
        raise ValueError(f"codes hold {int(c.max())}, above the cap {cap} of index_bits={index_bits}")
    step = np.where(c == cap, cap, c + 1)
    return (np.cumsum(step) - 1)[c != cap]


@dataclass(frozen=True)
class DeepCompressionConfig:
    """The three stages of Deep Compression (Han et al., 2016) and their settings."""

    amount: float = 0.9              # sparsity after pruning (fraction of Conv2d/Linear weights set to zero)
    scope: str = "global"            # "global": one threshold for all layers, as big layers carry most redundancy
    bits: int = 4                    # k-means clusters per layer = 2**bits (the paper: 8 for conv, 5 for FC)
    index_bits: int = 5              # width of a relative index before Huffman coding (the paper: 8 conv, 5 FC)
    finetune_epochs: int = 1         # epochs of fine-tuning with the masks on after pruning (0 = none)
    lr: float = 1e-3                 # fine-tuning peak learning rate (a trained model needs a small one)
    augment: float = 1.0             # fine-tuning augmentation strength (use the one the model was trained with)

    def __post_init__(self) -> None:
        if not isinstance(self.amount, (int, float)) or isinstance(self.amount, bool) or not 0 <= self.amount < 1:
            raise ValueError(f"amount={self.amount!r} must be a sparsity in [0, 1)")
        if self.scope not in ("global", "layer"):
            raise ValueError(f"scope={self.scope!r}; allowed: 'global', 'layer'")
        if not isinstance(self.bits, int) or not 1 <= self.bits <= 8:
            raise ValueError(f"bits={self.bits!r} must be an int from 1 to 8 (2 to 256 clusters)")
        if not isinstance(self.index_bits, int) or not 1 <= self.index_bits <= 16:
            raise ValueError(f"index_bits={self.index_bits!r} must be an int from 1 to 16")
        if not isinstance(self.finetune_epochs, int) or self.finetune_epochs < 0:
            raise ValueError(f"finetune_epochs={self.finetune_epochs!r} must be an int >= 0")
        if not self.lr > 0 or not self.augment >= 0:
            raise ValueError(f"lr={self.lr!r} must be > 0 and augment={self.augment!r} >= 0")


@dataclass
class DeepCompressionResult:
    """Bytes of the compressible weights (every Conv2d/Linear weight) after each stage, the accuracy after each
    stage, and the two Huffman reports. ``other_bytes`` (biases, BatchNorm, float32) is left out of every stage
    and reported apart, as the paper does. The compressed model is ``model`` (k-means weights, zeros kept)."""

    stage_bytes: dict[str, int]       # "original", "pruned", "quantised", "huffman"
    accuracy: dict[str, float]        # same keys, top-1 fraction 0–1 (None where not evaluated)
    sparsity: float
    other_bytes: int
    index_report: CodingReport
    gap_report: CodingReport
    layers: list[dict[str, Any]]
    lossless: bool                    # decoding both streams gave back exactly the quantised weights
    model: torch.nn.Module = field(repr=False)

    @property
    def ratios(self) -> dict[str, float]:
        """Compression ratio of each stage against the original float32 weights (×)."""
        base = self.stage_bytes["original"]
        return {k: base / v for k, v in self.stage_bytes.items()}

    def as_dict(self) -> dict[str, Any]:
        return {"stage_bytes": self.stage_bytes, "ratios": self.ratios, "accuracy": self.accuracy,
                "sparsity": self.sparsity, "other_bytes": self.other_bytes, "lossless": self.lossless,
                "index_report": self.index_report.as_dict(), "gap_report": self.gap_report.as_dict(),
                "layers": self.layers}

    def to_frame(self):
        import pandas as pd

        r = self.ratios
        return pd.DataFrame([{"stage": k, "bytes": v, "ratio ×": r[k], "accuracy": self.accuracy.get(k)}
                             for k, v in self.stage_bytes.items()]).set_index("stage")


def deep_compress(model: torch.nn.Module, config: DeepCompressionConfig | None = None, *, data: Any = None,
                  train_size: int = 32, decode_check: bool = True) -> DeepCompressionResult:
    """Deep Compression of a copy of ``model``: prune (:func:`mclab.prune.prune_`, then ``finetune_epochs`` of
    :func:`mclab.models.train` with the masks on) -> share weights per layer with :func:`mclab.quant.kmeans` on
    the surviving weights -> Huffman-code the cluster indices and the relative-index gaps (:func:`sparse_gaps`)
    of all layers as two streams. ``data`` (a dataset such as ``mclab.data.digits("test")``) gives the accuracy
    after each stage; ``train_size`` is the input size the fine-tuning trains at. ``decode_check`` decodes both
    streams and rebuilds the weights to prove the last stage lossless. Returns a :class:`DeepCompressionResult`
    (bytes, ratios × against float32, accuracy fractions); notebook 19."""
    from . import models, prune, quant

    cfg = config or DeepCompressionConfig()
    if not isinstance(cfg, DeepCompressionConfig):
        raise TypeError(f"config must be a DeepCompressionConfig, got {type(cfg).__name__}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    m = copy.deepcopy(model).eval()
    layers = prune.prunable_layers(m)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to compress")

    def acc() -> float | None:
        return None if data is None else models.evaluate(m, data).accuracy

    n_weights = sum(mod.weight.numel() for mod in layers.values())
    other = sum(p.numel() for p in m.parameters()) * 4 - 4 * n_weights
    stage_bytes = {"original": 4 * n_weights}
    accuracy = {"original": acc()}

    # 1. prune (and fine-tune with the masks on)
    prune.prune_(m, prune.PruneConfig(amount=cfg.amount, scope=cfg.scope))
    if cfg.finetune_epochs:
        models.train(m, models.TrainConfig(epochs=cfg.finetune_epochs, lr=cfg.lr, size=train_size,
                                              augment=cfg.augment, progress=False))
    prune.make_permanent_(m)
    m.eval()
    accuracy["pruned"] = acc()
    gaps, idx_streams, rows = [], [], []
    with torch.no_grad():
        for name, mod in layers.items():
            w = mod.weight
            nz = w != 0
            gaps.append(sparse_gaps(nz, cfg.index_bits))
            row = {"layer": name, "params": w.numel(), "nonzero": int(nz.sum()), "gap_codes": int(gaps[-1].size)}
            # 2. k-means weight sharing on the surviving weights (zeros stay zero, as pruned)
            if row["nonzero"]:
                cb = quant.kmeans(w[nz], bits=cfg.bits)
                w[nz] = cb.dequantize()
                idx_streams.append(cb.indices.numpy().astype(np.int64))
                row["centroids"] = cb.centroids.clone()
            else:
                idx_streams.append(np.zeros(0, np.int64))
            rows.append(row)
    nnz, n_codes = sum(r["nonzero"] for r in rows), sum(g.size for g in gaps)
    codebooks_bits = 32 * (1 << cfg.bits) * len(layers)
    stage_bytes["pruned"] = math.ceil((nnz * 32 + n_codes * cfg.index_bits) / 8)
    stage_bytes["quantised"] = math.ceil((nnz * cfg.bits + n_codes * cfg.index_bits + codebooks_bits) / 8)
    accuracy["quantised"] = acc()

    # 3. Huffman coding of the two streams (all layers' indices as one stream, all gap codes as another)
    all_ids, all_gaps = np.concatenate(idx_streams), np.concatenate(gaps)
    ids_rep = huffman(all_ids, symbol_bits=cfg.bits)
    gap_rep = huffman(all_gaps, symbol_bits=cfg.index_bits)
    stage_bytes["huffman"] = ids_rep.total_bytes + gap_rep.total_bytes + math.ceil(codebooks_bits / 8)
    lossless = True
    if decode_check:                  # rebuild every weight from the two decoded streams and the codebooks
        got_ids, got_gaps = decode(ids_rep.encoded, ids_rep.code), decode(gap_rep.encoded, gap_rep.code)
        a_id = a_gap = 0
        with torch.no_grad():
            for row, mod in zip(rows, layers.values(), strict=True):
                pos = gap_positions(got_gaps[a_gap:a_gap + row["gap_codes"]], cfg.index_bits)
                ids = got_ids[a_id:a_id + row["nonzero"]]
                a_gap, a_id = a_gap + row["gap_codes"], a_id + row["nonzero"]
                rebuilt = torch.zeros(mod.weight.numel())
                if row["nonzero"]:
                    rebuilt[torch.from_numpy(pos)] = row["centroids"][torch.from_numpy(ids)]
                lossless &= bool(torch.equal(rebuilt.view_as(mod.weight), mod.weight))
                mod.weight.copy_(rebuilt.view_as(mod.weight))  # the model now runs on the decoded weights
        accuracy["huffman"] = acc()
    for row in rows:
        row.pop("centroids", None)
    return DeepCompressionResult(stage_bytes, accuracy, prune.sparsity(m).sparsity, other, ids_rep, gap_rep, rows,
                                 lossless, m)
