"""mclab.llm.compare: one table of weight formats whose scores match perplexity and KL divergence."""
from __future__ import annotations

import pytest

from mclab import llm


def test_compare_formats_scores_match_perplexity_and_kl_divergence(tiny_model):
    m = tiny_model()
    val = llm.corpus().val[:1500]
    cfg = llm.LLMQuantConfig(bits=4, group_size=32)
    table = llm.compare_formats(m, ["fp16", cfg], val, decode_tokens=4)
    assert [r.name for r in table.rows] == ["fp32", "fp16", cfg.label]
    assert [r.algorithm for r in table.rows] == ["float", "float", "rtn"]
    fp32 = table["fp32"]
    assert fp32.perplexity == pytest.approx(llm.perplexity(m, val, seq_len=96), rel=1e-6) and fp32.kld == 0
    qm = llm.quantized(m, cfg).model
    row = table[cfg.label]
    assert row.perplexity == pytest.approx(llm.perplexity(qm, val, seq_len=96), rel=1e-6)
    assert row.kld == pytest.approx(llm.kl_divergence(qm, m, val, seq_len=96), rel=1e-4) and row.kld > 0


def test_compare_formats_needs_calibration_text_for_awq_and_gptq(tiny_model):
    with pytest.raises(ValueError, match="AWQ/GPTQ formats need inputs= or calib_tokens="):
        llm.compare_formats(tiny_model(), [llm.LLMQuantConfig(algorithm="gptq")], llm.corpus().val[:500])
    with pytest.raises(ValueError, match="format 'int3' is not known"):
        llm.compare_formats(tiny_model(), ["int3"], llm.corpus().val[:500])
