"""mclab.reliability: stability, determinism, NaN/Inf scans, saturation, stress and drift."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from mclab import reliability


def test_stability_of_a_deterministic_and_a_noisy_function():
    m = nn.Linear(8, 4).eval()
    x = torch.randn(2, 8)
    r = reliability.stability(lambda: m(x), runs=20)
    assert r.identical and r.output_std == 0 and r.passed
    rng = np.random.default_rng(0)
    noisy = reliability.stability(lambda: rng.normal(0, 0.1, size=10), runs=200)
    assert not noisy.identical and noisy.output_std == pytest.approx(0.1, rel=0.15) and not noisy.passed


def test_determinism_seeds_matter_for_dropout():
    m = nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.5)).train()
    x = torch.randn(4, 16)
    rows = reliability.determinism(lambda threads, seed: m(x), [(1, 0), (1, 0), (1, 1), (2, 0)])
    assert rows[1]["identical"] and not rows[2]["identical"]  # same seed: same mask; new seed: new mask
    assert rows[3]["max_abs_diff"] < 1e-5                      # threads change only the rounding, if anything
    with pytest.raises(ValueError, match="at least two"):
        reliability.determinism(lambda t, s: x, [(1, 0)])


def test_fp16_overflow_is_found_and_bf16_fixes_it():
    m = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        m[0].weight.fill_(300.0)
        m[2].weight.fill_(300.0)
    x = torch.ones(1, 4)
    full = reliability.scan_nonfinite(m, x)
    assert full.healthy and full.max_abs_module == "2"
    with torch.no_grad():
        assert full.max_abs == pytest.approx(float(m(x).abs().max()), rel=1e-6)  # 4 x 300 x (4 x 300 + b) > 65504
    half = reliability.scan_nonfinite(m.half(), x.half())  # 300*300*4*4 > 65504
    assert not half.healthy and half.output_inf == 2 and half.first_bad_module == "2"
    assert reliability.scan_nonfinite(m.bfloat16(), x.bfloat16()).healthy


def test_saturation_counts_clipped_values():
    x = np.array([-200.0, -1.0, 0.0, 1.0, 126.0, 130.0])
    s = reliability.saturation(x, scale=1.0)
    assert (s["below"], s["above"]) == (1, 1) and s["fraction"] == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="bits=1"):
        reliability.saturation(x, 1.0, bits=1)
    with pytest.raises(ValueError, match="zero_point=300"):
        reliability.saturation(x, 1.0, zero_point=300)
    with pytest.raises(ValueError, match="scale=0"):
        reliability.saturation(x, 0)


def test_error_rate_upper_bound():
    assert reliability.error_rate_upper(0, 10_000) == pytest.approx(3 / 10_000, rel=0.01)  # the rule of three
    assert reliability.error_rate_upper(5, 1000) == pytest.approx(0.010484, rel=1e-3)     # Clopper-Pearson
    with pytest.raises(ValueError, match="errors=5, n=3"):
        reliability.error_rate_upper(5, 3)


def test_stress_counts_errors_nonfinite_and_kinds():
    def make(kind, b, rng):
        return {"random": rng.normal(size=(b, 3)), "zeros": np.zeros((b, 3)), "bad": np.full((b, 3), np.nan)}[kind]

    def fn(x):
        if x.shape[0] == 7:
            raise RuntimeError("odd batch not supported")
        return x * 2

    r = reliability.stress(fn, make, 300, kinds=("random", "zeros", "bad"), batch_sizes=(1, 7, 4))
    assert r.inferences >= 300 and r.inferences == sum(k["items"] for k in r.by_kind.values())
    assert r.errors == sum(k["errors"] for k in r.by_kind.values()) > 0
    assert r.nonfinite == r.by_kind["bad"]["nonfinite"] > 0 and r.by_kind["random"]["nonfinite"] == 0
    assert any("odd batch not supported" in m for m in r.error_messages)
    assert r.error_rate == pytest.approx((r.errors + r.nonfinite) / r.inferences)
    assert not r.observed_ok
    clean = reliability.stress(lambda x: x, make, 100, kinds=("random",))
    assert clean.errors == clean.nonfinite == 0 and clean.observed_ok and not clean.proven_ok  # too few to prove
    with pytest.raises(ValueError, match="n=0"):
        reliability.stress(fn, make, 0)


def test_drift_against_a_reference():
    x = torch.randn(16, 5)
    lin = nn.Linear(5, 3).eval()
    lin16 = copy.deepcopy(lin).bfloat16()
    variants = {"fp32": lambda t: lin(t), "bf16": lambda t: lin16(t.bfloat16()).float(), "negated": lambda t: -lin(t)}
    df = reliability.drift(variants, x, "fp32")
    assert df.loc["fp32", "max_abs_err"] == 0 and df.loc["fp32", "top1_agreement"] == 1
    assert 0 < df.loc["bf16", "max_abs_err"] < 0.1
    assert df.loc["negated", "top1_agreement"] < 1
    with pytest.raises(ValueError, match="reference='int8'"):
        reliability.drift(variants, x, "int8")


def test_a_raising_fn_is_a_clear_error():
    def boom():
        raise ValueError("bad weights")

    with pytest.raises(RuntimeError, match="stability test: ValueError: bad weights"):
        reliability.stability(boom, runs=3)
