"""mclab.llm.gguf: block formats identical to the gguf package's, files its reader loads back exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, GGUFReader, quants

from mclab import llm
from mclab.llm import gguf as G


def _awkward(seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((40, 256)) * rng.exponential(1.0, (40, 1))).astype(np.float32)
    x[0, :32] = 0  # an all-zero block
    x[1, :32] = 0.5  # ties for the largest magnitude
    x[2, :32] = -np.arange(32, dtype=np.float32)  # negative extreme
    x[3, 5] = 1e4  # one outlier
    x[4] *= 1e-6  # tiny values
    x[5, :32] = np.float32(2.5) / 127 * np.arange(-16, 16)  # values on exact half steps
    return x


@pytest.mark.parametrize("fmt,ours", [("Q8_0", G.quantize_q8_0), ("Q4_0", G.quantize_q4_0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_blocks_identical_to_the_gguf_package(fmt, ours, seed):
    x = _awkward(seed)
    theirs = quants.quantize(x, GGMLQuantizationType[fmt])
    assert np.array_equal(ours(x), theirs)


def test_block_round_trips_within_the_format_bound():
    x = _awkward()
    b8 = G.quantize_q8_0(x)
    d8 = b8.reshape(-1, 34)[:, :2].copy().view(np.float16).astype(np.float32)
    d_true = np.abs(x).reshape(-1, 32).max(1, keepdims=True) / 127
    err8 = np.abs(G.dequantize_q8_0(b8, x.shape) - x).reshape(-1, 32)
    assert (err8 <= 0.5 * d_true + 127 * np.abs(d8 - d_true) + 1e-12).all()  # half a step + the fp16 error of d
    b4 = G.quantize_q4_0(x)
    d4 = b4.reshape(-1, 18)[:, :2].copy().view(np.float16).astype(np.float32)
    blocks = x.reshape(-1, 32)
    d4_true = np.take_along_axis(blocks, np.abs(blocks).argmax(1)[:, None], 1) / -8
    err4 = np.abs(G.dequantize_q4_0(b4, x.shape) - x).reshape(-1, 32)
    # the largest-magnitude value maps to -8 d; the opposite extreme may clip at +7 d: one step at most
    assert (err4 <= np.abs(d4_true) + 8 * np.abs(d4 - d4_true) + 1e-12).all()
    assert np.array_equal(G.dequantize_q4_0(b4, x.shape), quants.dequantize(b4, GGMLQuantizationType.Q4_0))
    assert b8.nbytes / x.nbytes == 34 / 128 and b4.nbytes / x.nbytes == 18 / 128


def test_rows_must_be_whole_blocks():
    with pytest.raises(ValueError, match="not a multiple of the block size 32"):
        G.quantize_q4_0(np.zeros((2, 40), np.float32))
    with pytest.raises(ValueError, match="ftype='Q5_K' is not supported"):
        G.GGUFConfig(ftype="Q5_K")


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model()


def test_f32_file_reads_back_identically(model, tmp_path):
    e = G.export_gguf(model, tmp_path / "m.gguf", G.GGUFConfig(ftype="F32"))
    assert e.file_bytes == (tmp_path / "m.gguf").stat().st_size
    r = GGUFReader(e.path)
    f = r.fields["general.architecture"]
    assert bytes(f.parts[f.data[0]]).decode() == "llama"
    assert r.fields["llama.block_count"].parts[-1][0] == 2
    names = G.tensor_names(model.config.n_layers)
    state = model.state_dict()
    assert len(r.tensors) == len(state)
    for t in r.tensors:
        ours = state[{v: k for k, v in names.items()}[t.name]].numpy()
        assert t.tensor_type.name == "F32"
        assert np.array_equal(np.asarray(t.data).reshape(ours.shape), ours), t.name
    back = G.load_gguf(e.path)
    x = torch.randint(0, 256, (1, 30))
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


@pytest.mark.parametrize("fmt", ["F16", "Q8_0", "Q4_0"])
def test_quantised_files_hold_the_gguf_packages_blocks(model, tmp_path, fmt):
    e = G.export_gguf(model, tmp_path / f"m-{fmt}.gguf", G.GGUFConfig(ftype=fmt))
    state = model.state_dict()
    inv = {v: k for k, v in G.tensor_names(model.config.n_layers).items()}
    r = GGUFReader(e.path)
    for t in r.tensors:
        w = state[inv[t.name]].numpy()
        expected_fmt = fmt if w.ndim == 2 else "F32"
        assert t.tensor_type.name == expected_fmt == e.tensor_types[t.name]
        expected = quants.quantize(w, GGMLQuantizationType[expected_fmt])
        assert np.array_equal(np.asarray(t.data).reshape(expected.shape).view(np.uint8),
                              expected.view(np.uint8)), t.name
    sizes = {"F16": 0.5, "Q8_0": 34 / 128, "Q4_0": 18 / 128}
    f32 = sum(v.numel() * 4 for v in state.values())
    assert e.file_bytes < f32 * sizes[fmt] + 64 * 1024  # data at the format's ratio plus header and norms


def test_export_refuses_a_model_with_packed_layers(model, tmp_path):
    qm = llm.quantized(model, llm.LLMQuantConfig()).model
    with pytest.raises(ValueError, match="has no GGUF name"):
        G.export_gguf(qm, tmp_path / "q.gguf")
