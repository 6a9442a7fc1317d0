"""mclab.stats: each interval against a closed form, a textbook value or scipy, with and without scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mclab import stats


@pytest.fixture(params=["scipy", "fallback"])
def scipy_or_not(request, monkeypatch):
    """Run a test twice: with scipy where it is installed, and with the fallback written in mclab.stats."""
    if request.param == "scipy":
        pytest.importorskip("scipy")
    else:
        import builtins

        real = builtins.__import__

        def no_scipy(name, *args, **kwargs):
            if name == "scipy" or name.startswith("scipy."):
                raise ImportError("scipy hidden by the test")
            return real(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_scipy)
    return request.param


# ----------------------------------------------------------------------------- proportions


def test_wilson_interval_matches_closed_form():
    lo, hi = stats.wilson_ci(8, 10)  # textbook example: 8/10 -> (0.490, 0.943)
    assert abs(lo - 0.4902) < 1e-3 and abs(hi - 0.9433) < 1e-3
    assert stats.wilson_ci(0, 50)[0] == 0 and stats.wilson_ci(50, 50)[1] == pytest.approx(1)
    z = 1.959964  # the closed form at 95 %
    p, n = 0.3, 200
    d = 1 + z * z / n
    c, h = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    assert stats.wilson_ci(60, 200) == pytest.approx((c - h, c + h), abs=1e-7)
    assert np.subtract(*stats.wilson_ci(60, 200, level=0.99)[::-1]) > 2 * h  # a higher level is wider
    with pytest.raises(ValueError, match="k=11, n=10"):
        stats.wilson_ci(11, 10)
    with pytest.raises(ValueError, match="level=95"):
        stats.wilson_ci(1, 10, level=95)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (17, 50), (1, 1), (250, 1000)])
def test_clopper_pearson_matches_the_beta_quantiles(scipy_or_not, k, n):
    lo, hi = stats.clopper_pearson_ci(k, n)
    # closed forms at the edges: k = 0 -> high = 1 - (a/2)^(1/n); k = n -> low = (a/2)^(1/n)
    if k == 0:
        assert lo == 0 and hi == pytest.approx(1 - 0.025 ** (1 / n), rel=1e-9)
    if k == n:
        assert hi == 1 and lo == pytest.approx(0.025 ** (1 / n), rel=1e-9)
    if 0 < k < n:  # the defining tail probabilities are a/2 at each end
        tail_hi = sum(math.comb(n, i) * lo ** i * (1 - lo) ** (n - i) for i in range(k, n + 1))
        tail_lo = sum(math.comb(n, i) * hi ** i * (1 - hi) ** (n - i) for i in range(k + 1))
        assert tail_hi == pytest.approx(0.025, rel=1e-6) and tail_lo == pytest.approx(0.025, rel=1e-6)
    w_lo, w_hi = stats.wilson_ci(k, n)
    assert lo <= w_lo + 1e-12 and hi >= w_hi - 1e-12 or k in (0, n)  # exact is the more conservative


def test_clopper_pearson_fallback_agrees_with_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for k, n in [(4, 20), (33, 120)]:
        lo = scipy_stats.beta.ppf(0.005, k, n - k + 1)
        hi = scipy_stats.beta.ppf(0.995, k + 1, n - k)
        assert stats.clopper_pearson_ci(k, n, level=0.99) == pytest.approx((lo, hi), rel=1e-9)


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_covers_the_true_quantile():
    x = np.arange(1, 101, dtype=float)  # 1..100: median 50.5
    lo, hi = stats.bootstrap_ci(x, 50, n_boot=500)
    assert lo < 50.5 < hi and 40 < lo and hi < 61
    rng = np.random.default_rng(1)
    lo, hi = stats.bootstrap_ci(rng.exponential(1.0, 2000), 90, n_boot=500)
    assert lo < np.log(10) < hi  # exponential(1): P90 = ln 10
    assert stats.bootstrap_ci(x, 50, seed=3) == stats.bootstrap_ci(x, 50, seed=3)  # seeded
    with pytest.raises(ValueError, match="empty"):
        stats.bootstrap_ci([], 50)


def test_ratio_bootstrap_resamples_pairs():
    num, den = np.array([1.0, 0, 2, 1, 0, 3]), np.array([10.0, 8, 12, 9, 11, 10])
    lo, hi = stats.ratio_bootstrap_ci(num, den, n_boot=2000)
    assert lo <= num.sum() / den.sum() <= hi and 0 <= lo < hi
    const = stats.ratio_bootstrap_ci(den / 10, den)  # every pair has ratio 0.1: so has every resample
    assert const == pytest.approx((0.1, 0.1))
    with pytest.raises(ValueError, match="equally long"):
        stats.ratio_bootstrap_ci([1, 2], [1])


# ----------------------------------------------------------------------------- Student-t


def test_paired_t_interval_matches_the_closed_form(scipy_or_not):
    a, b = [0.80, 0.82, 0.79, 0.81], [0.83, 0.84, 0.80, 0.85]
    ci = stats.paired_t_interval(a, b)
    d = np.subtract(b, a)
    t975_3 = 3.182446305284263  # Student t quantile, 3 degrees of freedom (tables)
    h = t975_3 * d.std(ddof=1) / math.sqrt(4)
    assert (ci.mean, ci.low, ci.high) == pytest.approx((d.mean(), d.mean() - h, d.mean() + h), rel=1e-9)
    # two-sided p for 3 degrees of freedom in closed form: 1 - (2/pi)(theta + sin(theta) cos(theta))
    th = math.atan(abs(d.mean()) / (d.std(ddof=1) / 2) / math.sqrt(3))
    assert ci.p_value == pytest.approx(1 - 2 / math.pi * (th + math.sin(th) * math.cos(th)), rel=1e-9)
    assert ci.significant and ci.as_dict()["significant"]
    noisy = stats.paired_t_interval([0.8, 0.9, 0.7], [0.82, 0.85, 0.76])
    assert noisy.low < 0 < noisy.high and not noisy.significant
    flat = stats.paired_t_interval([1, 2], [2, 3])
    assert (flat.low, flat.high, flat.p_value) == (1, 1, 0.0)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        stats.paired_t_interval([0.5], [0.6])
    with pytest.raises(ValueError, match="pair up"):
        stats.paired_t_interval([0.5, 0.6], [0.6])


@pytest.mark.parametrize("n", [2, 5, 12, 31])
def test_t_interval_agrees_with_scipy(n):
    scipy_stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(n).normal(0.3, 1.0, n)
    got = stats.t_interval(x, level=0.9)
    lo, hi = scipy_stats.t.interval(0.9, n - 1, loc=x.mean(), scale=scipy_stats.sem(x))
    assert (got.low, got.high) == pytest.approx((lo, hi), rel=1e-9)
    assert got.p_value == pytest.approx(scipy_stats.ttest_1samp(x, 0).pvalue, rel=1e-7)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 10, 29])
def test_t_fallback_cdf_matches_scipy(df):
    scipy_stats = pytest.importorskip("scipy.stats")
    for p in (0.1, 0.5, 0.9, 0.975, 0.995):
        assert stats._t_cdf(float(scipy_stats.t.ppf(p, df)), df) == pytest.approx(p, rel=1e-10)


# ----------------------------------------------------------------------------- ranks


def test_spearman_against_known_values():
    assert stats.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert stats.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert stats.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)  # 1 - 6·4 / (5·24)
    assert stats.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.9486832980505138)  # ties: mean ranks
    with pytest.raises(ValueError):
        stats.spearman([1, 2], [1, 2])
