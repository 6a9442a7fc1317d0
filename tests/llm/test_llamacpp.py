"""mclab.llm.llamacpp: the kit's GGUF files run by llama.cpp's own loader and kernels, checked against PyTorch."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mclab import llm


@pytest.fixture(scope="module")
def model(tiny_model):
    """An untrained model whose output head is sharpened, so that each position has a clear top-1 token."""
    m = tiny_model(3)
    with torch.no_grad():
        m.output.weight.mul_(30)
    return m


@pytest.fixture(scope="module")
def files(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("gguf")
    return {f: llm.export_gguf(model, d / f"m-{f}.gguf", llm.GGUFConfig(ftype=f)).path
            for f in ("F32", "Q8_0", "Q4_0")}


@pytest.fixture(scope="module")
def tokens():
    return np.random.default_rng(0).integers(0, 256, 4 * 48 + 1)


def _cfg(model, **kw):
    return llm.LlamaCppConfig(n_ctx=model.config.max_seq_len, **kw)


def test_f32_file_gives_pytorchs_logits(model, files, tokens):
    lm = llm.load_llamacpp(files["F32"], _cfg(model, kv_type="F32"))
    ids = tokens[:60].tolist()
    ours = F.log_softmax(torch.from_numpy(llm.llamacpp_logits(lm, ids)), -1)
    with torch.no_grad():
        ref = F.log_softmax(model(torch.tensor([ids]))[0], -1)
    assert ours.shape == (60, 256)
    assert torch.allclose(ours, ref, atol=2e-4), float((ours - ref).abs().max())
    ev = llm.evaluate_llamacpp(lm, model, tokens, seq_len=48)
    assert (ev.windows, ev.positions) == (4, 4 * 48)
    assert ev.agreement == 1.0 and ev.kld < 1e-6 and ev.max_abs_logprob_diff < 2e-4
    assert ev.reference_perplexity == pytest.approx(llm.perplexity(model, tokens, seq_len=48), rel=1e-6)
    assert ev.perplexity == pytest.approx(ev.reference_perplexity, rel=1e-4)
    info = llm.llamacpp_info(lm)
    assert info["file_type"] == "F32" and info["n_vocab"] == 256 and info["version"]


def test_quantised_files_run_the_kits_blocks(model, files, tokens):
    """llama.cpp's Q4_0 output is far closer to the kit's own dequantised Q4_0 weights than to FP32: it runs the
    blocks the kit wrote (it also rounds activations to 8 bits, so not exactly)."""
    for fmt in ("Q8_0", "Q4_0"):
        lm = llm.load_llamacpp(files[fmt], _cfg(model))
        kit = llm.load_gguf(files[fmt])
        vs_fp32 = llm.evaluate_llamacpp(lm, model, tokens, seq_len=48)
        vs_blocks = llm.evaluate_llamacpp(lm, kit, tokens, seq_len=48)
        assert vs_blocks.kld < vs_fp32.kld / 3, (fmt, vs_blocks.kld, vs_fp32.kld)
        assert vs_blocks.agreement >= 0.97, fmt
        assert 0 < vs_fp32.kld and vs_fp32.perplexity != vs_fp32.reference_perplexity
    assert llm.llamacpp_info(lm)["file_type"] == "Q4_0"


def test_greedy_decoding_matches_pytorch(model, files, tokens):
    lm = llm.load_llamacpp(files["F32"], _cfg(model, kv_type="F32"))
    prompt = tokens[:16].tolist()
    ours = llm.generate_llamacpp(lm, prompt, max_new_tokens=24)
    ref = llm.generate(model, prompt, llm.GenerateConfig(max_new_tokens=24))
    assert ours.new_tokens == ref.new_tokens
    assert ours.prompt_tokens == prompt and len(ours.step_ms) == 23
    assert ours.prefill_tokens_per_s > 0 and ours.decode_tokens_per_s > 0
    assert lm.n_ctx() >= model.config.max_seq_len  # llama.cpp rounds the context up (to a multiple of 256)
    assert ours.kv_cache_bytes == llm.kv_cache_bytes(model.config, lm.n_ctx(), 1, 4)  # F32 cache, as allocated


def test_a_file_llama_cpp_refuses_raises_its_message(files, tmp_path, model):
    raw = open(files["F32"], "rb").read()
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(raw[: len(raw) - 4096])  # the last tensor's data is cut off
    with pytest.raises(llm.LlamaCppError, match=r"(?s)could not load .*truncated\.gguf.*llama\.cpp said:\n"
                                                 r"llama_model_load: error loading model: .*not within the file"):
        llm.load_llamacpp(bad, _cfg(model))
    with pytest.raises(FileNotFoundError, match="no such GGUF file"):
        llm.load_llamacpp(tmp_path / "missing.gguf")


def test_bad_input_is_refused(model, files):
    for kw, msg in (({"n_threads": 0}, "n_threads=0 must be an int >= 1"), ({"n_ctx": -1}, "n_ctx=-1"),
                    ({"kv_type": "Q8_0"}, "kv_type='Q8_0' is not supported; allowed: F32, F16")):
        with pytest.raises(ValueError, match=msg):
            llm.LlamaCppConfig(**kw)
    with pytest.raises(TypeError, match="config must be a LlamaCppConfig"):
        llm.load_llamacpp(files["F32"], {"n_threads": 1})
    lm = llm.load_llamacpp(files["F32"], _cfg(model))
    with pytest.raises(TypeError, match="prompt must be token ids"):
        llm.generate_llamacpp(lm, "hello")
    with pytest.raises(ValueError, match="vocabulary is 0..255"):
        llm.llamacpp_logits(lm, [1, 300])
    with pytest.raises(ValueError, match=f"exceeds the context n_ctx={lm.n_ctx()}"):
        llm.generate_llamacpp(lm, [1] * (lm.n_ctx() - 5), max_new_tokens=10)
    with pytest.raises(ValueError, match=f"seq_len=1000 must be an int between 1 and the context n_ctx={lm.n_ctx()}"):
        llm.evaluate_llamacpp(lm, model, np.zeros(2000, np.int64), seq_len=1000)
    with pytest.raises(TypeError, match="reference must be a torch.nn.Module"):
        llm.evaluate_llamacpp(lm, "model", np.zeros(500, np.int64), seq_len=48)


def test_a_missing_llama_cpp_says_how_to_install_it(monkeypatch, files):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    with pytest.raises(ImportError, match="part of the kit's standard install"):
        llm.load_llamacpp(files["F32"])
