"""mclab.coding: the Huffman coder against the entropy bound and a lossless round trip; Deep Compression's stages."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mclab import coding


def _prefix_free(code: coding.HuffmanCode) -> bool:
    words = [format(code.codes[s], f"0{n}b") for s, n in code.lengths.items()]
    return not any(a != b and b.startswith(a) for a in words for b in words)


@pytest.mark.parametrize("dist", ["geometric", "uniform", "skewed", "two"])
def test_average_length_within_one_bit_of_entropy_and_round_trip(dist):
    rng = np.random.default_rng(0)
    s = {"geometric": rng.geometric(0.3, 20_000) - 1, "uniform": rng.integers(0, 16, 20_000),
         "skewed": rng.choice(8, 20_000, p=[0.9, 0.05, 0.02, 0.01, 0.01, 0.005, 0.003, 0.002]),
         "two": rng.integers(0, 2, 1000)}[dist]
    rep = coding.huffman(s)
    assert rep.entropy_bits <= rep.average_bits < rep.entropy_bits + 1     # Huffman's bound
    assert rep.average_bits == pytest.approx(rep.code.average_length(s))
    assert rep.stream_bits == sum(rep.code.lengths[int(v)] for v in s)
    assert _prefix_free(rep.code)
    assert sum(2.0 ** -n for n in rep.code.lengths.values()) == pytest.approx(1.0)  # a full tree (Kraft equality)
    np.testing.assert_array_equal(coding.decode(rep.encoded, rep.code), s)


def test_textbook_code_and_entropy():
    counts = {0: 5, 1: 2, 2: 1, 3: 1}
    code = coding.huffman_code(counts)
    assert sorted(code.lengths.values()) == [1, 2, 3, 3] and code.lengths[0] == 1
    assert code.average_length(counts) == pytest.approx(15 / 9)
    p = np.array([5, 2, 1, 1]) / 9
    assert coding.entropy_bits(counts) == pytest.approx(float(-(p * np.log2(p)).sum()))
    # uniform over 2**k symbols: entropy k bits and a k-bit code
    u = np.repeat(np.arange(8), 10)
    assert coding.entropy_bits(u) == pytest.approx(3.0)
    assert coding.huffman(u).average_bits == 3.0


def test_single_symbol_and_dyadic_distribution_meet_the_bound():
    rep = coding.huffman(np.zeros(50, dtype=int))
    assert rep.average_bits == 1 and rep.entropy_bits == 0
    np.testing.assert_array_equal(coding.decode(rep.encoded, rep.code), np.zeros(50))
    dyadic = np.array([0] * 8 + [1] * 4 + [2] * 2 + [3] * 2)   # p = 1/2, 1/4, 1/8, 1/8: Huffman = entropy
    r = coding.huffman(dyadic)
    assert r.average_bits == pytest.approx(r.entropy_bits) == pytest.approx(1.75)


def test_encode_rejects_unknown_symbols_and_bad_input():
    code = coding.huffman_code([0, 1, 1])
    with pytest.raises(ValueError, match="no code word"):
        coding.encode([2], code)
    with pytest.raises(ValueError, match="non-negative"):
        coding.huffman([-1, 2])
    with pytest.raises(TypeError, match="integers"):
        coding.huffman([0.5, 1.0])
    with pytest.raises(ValueError, match="empty"):
        coding.huffman([])
    with pytest.raises(ValueError, match="empty"):
        coding.huffman_code({})
    with pytest.raises(TypeError, match="HuffmanCode"):
        coding.encode([0], {0: 1})


def test_sparse_gaps_round_trip_with_fillers():
    rng = np.random.default_rng(1)
    mask = rng.random(5000) < 0.03                      # long gaps: fillers needed at 3 bits (cap 7)
    for bits in (3, 5, 8):
        codes = coding.sparse_gaps(mask, bits)
        assert codes.min() >= 0 and codes.max() <= (1 << bits) - 1
        assert (codes < (1 << bits) - 1).sum() == mask.sum()          # one non-filler code per non-zero
        np.testing.assert_array_equal(coding.gap_positions(codes, bits), np.flatnonzero(mask))
    # a gap of exactly the cap needs no filler; one longer does
    m = np.zeros(20, bool)
    m[[6, 7, 19]] = True
    np.testing.assert_array_equal(coding.sparse_gaps(m, 3), [6, 0, 7, 4])
    with pytest.raises(ValueError, match="index_bits"):
        coding.sparse_gaps(m, 0)


def _toy() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))


def test_deep_compress_stages_shrink_and_are_lossless():
    model = _toy()
    cfg = coding.DeepCompressionConfig(amount=0.8, bits=4, index_bits=5, finetune_epochs=0)
    res = coding.deep_compress(model, cfg)
    n = sum(m.weight.numel() for m in (model[0], model[3]))
    assert res.stage_bytes["original"] == 4 * n
    b = res.stage_bytes
    assert b["original"] > b["pruned"] > b["quantised"] > b["huffman"]
    assert res.lossless and res.sparsity == pytest.approx(0.8, abs=0.01)
    nnz = sum(r["nonzero"] for r in res.layers)
    assert res.index_report.n_symbols == nnz
    assert b["quantised"] == math.ceil((nnz * 4 + res.gap_report.n_symbols * 5 + 2 * 16 * 32) / 8)
    for layer in (res.model[0], res.model[3]):          # at most 16 distinct non-zero values per layer
        vals = layer.weight[layer.weight != 0].unique()
        assert len(vals) <= 16
    assert res.ratios["huffman"] == pytest.approx(b["original"] / b["huffman"])
    assert torch.equal(model[0].weight, _toy()[0].weight)  # the input model is untouched
    assert set(res.accuracy) == set(b) and res.accuracy["original"] is None


def test_deep_compress_config_validation():
    with pytest.raises(ValueError, match="amount"):
        coding.DeepCompressionConfig(amount=1.5)
    with pytest.raises(ValueError, match="bits"):
        coding.DeepCompressionConfig(bits=0)
    with pytest.raises(ValueError, match="index_bits"):
        coding.DeepCompressionConfig(index_bits=20)
    with pytest.raises(TypeError, match="model"):
        coding.deep_compress("resnet18")
