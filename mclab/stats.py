"""Intervals and comparisons: the one home of the kit's statistics, used by every technique module.

- proportions (k successes in n trials): :func:`wilson_ci` (the default: close to nominal coverage at any n) and
  :func:`clopper_pearson_ci` (the exact interval, never below nominal coverage, wider);
- bootstrap: :func:`bootstrap_ci` (a percentile of samples, e.g. a latency's P90) and :func:`ratio_bootstrap_ci`
  (a ratio of sums resampled in pairs, e.g. a character error rate over lines);
- Student-t: :func:`t_interval` (a mean) and :func:`paired_t_interval` (a mean of paired differences, e.g. the
  same seeds trained two ways), each a :class:`TInterval` with its two-sided p-value against 0;
- ranks: :func:`spearman`.

Pure numpy; scipy's ``beta`` and ``t`` quantiles are used where scipy is installed, and each has a fallback
written here (a bisection on the exact CDF) that agrees with scipy to about 1e-9. Introduced in notebook 01
(bootstrap), notebook 05 (Wilson) and notebook 07 (paired t).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    # proportions
    "wilson_ci", "clopper_pearson_ci",
    # bootstrap
    "bootstrap_ci", "ratio_bootstrap_ci",
    # Student-t and paired comparisons
    "TInterval", "t_interval", "paired_t_interval",
    # ranks
    "spearman",
]


def _check_level(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level={level!r} must be a probability in (0, 1), e.g. 0.95")
    return float(level)


def _check_counts(k: Any, n: Any) -> None:
    if not isinstance(n, (int, np.integer)) or not isinstance(k, (int, np.integer)) or n < 1 or not 0 <= k <= n:
        raise ValueError(f"need ints 0 <= k <= n and n >= 1; got k={k!r}, n={n!r}")


def _bisect(f: Callable[[float], float], lo: float, hi: float, iters: int = 200) -> float:
    """The root of increasing ``f`` on [lo, hi] (f(lo) <= 0 <= f(hi)), to float precision."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return (lo + hi) / 2


# ----------------------------------------------------------------------------- proportions


def wilson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials at confidence ``level``: (low, high) as
    fractions. The kit's interval for accuracies (notebook 05 onwards)."""
    _check_counts(k, n)
    z = NormalDist().inv_cdf(0.5 + _check_level(level) / 2)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
             for i in range(k + 1)]
    m = max(terms)
    return min(1.0, math.exp(m) * math.fsum(math.exp(t - m) for t in terms))


def clopper_pearson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper–Pearson ("exact") interval for ``k`` successes in ``n`` trials: the binomial proportions not
    rejected by either one-sided test at (1 - ``level``) / 2. Returns (low, high) as fractions; low is 0 when k = 0
    and high is 1 when k = n. Beta quantiles from scipy where installed, else a bisection on the binomial CDF."""
    _check_counts(k, n)
    a = (1 - _check_level(level)) / 2
    try:
        from scipy.stats import beta
    except ImportError:  # the same interval from its definition
        lo = 0.0 if k == 0 else _bisect(lambda p: (1 - _binom_cdf(k - 1, n, p)) - a, 0.0, 1.0)
        hi = 1.0 if k == n else _bisect(lambda p: a - _binom_cdf(k, n, p), 0.0, 1.0)
        return lo, hi
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


# ----------------------------------------------------------------------------- bootstrap


def bootstrap_ci(samples: Sequence[float], q: float, *, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval for the ``q``-th percentile (0-100) of ``samples``, in the
    samples' unit: ``n_boot`` resamples with replacement, seeded. Notebook 01."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("samples is empty")
    level = _check_level(level)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    chunk = max(1, 2_000_000 // x.size)  # bound memory: chunk × n indices at a time
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        stats[start:start + k] = np.percentile(x[rng.integers(0, x.size, (k, x.size))], q, axis=1)
    lo, hi = np.percentile(stats, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def ratio_bootstrap_ci(num: Sequence[float], den: Sequence[float], *, n_boot: int = 1000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of sum(num) / sum(den), resampling the pairs (num[i], den[i]) with replacement: the CI
    of a character error rate over lines (num: errors, den: characters), or of a paired CER difference when
    ``num`` holds per-line error differences. Returns (low, high) in the ratio's unit. Notebook 18."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if num.shape != den.shape or num.ndim != 1 or num.size == 0:
        raise ValueError(f"num and den must be equally long, non-empty 1-D sequences; got {num.shape}, {den.shape}")
    level = _check_level(level)
    rng = np.random.default_rng(seed)
    boots = [num[i].sum() / den[i].sum() for i in (rng.integers(0, len(den), len(den)) for _ in range(n_boot))]
    lo, hi = np.percentile(boots, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


# ----------------------------------------------------------------------------- Student-t


def _t_cdf(t: float, df: int) -> float:
    """Student-t CDF for an integer ``df`` from the finite series of Abramowitz & Stegun 26.7.3-4."""
    theta = math.atan2(t, math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2:  # odd: A = (2 / pi) (theta + sin cos (1 + 2/3 cos² + ...))
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for j in range(1, (df - 1) // 2):
            term *= c * c * (2 * j) / (2 * j + 1)
            total += term
        a = 2 / math.pi * (theta + (s * c * total if df > 1 else 0.0))
    else:       # even: A = sin (1 + 1/2 cos² + 1·3/(2·4) cos⁴ + ...)
        term, total = 1.0, 1.0
        for j in range(1, df // 2):
            term *= c * c * (2 * j - 1) / (2 * j)
            total += term
        a = s * total
    return 0.5 + a / 2  # A(t) = P(-t < T < t) for t >= 0, and it is odd in t


def _t_ppf(p: float, df: int) -> float:
    try:
        from scipy.stats import t
    except ImportError:
        hi = 1.0
        while _t_cdf(hi, df) < p:
            hi *= 2
        return _bisect(lambda x: _t_cdf(x, df) - p, -hi, hi)
    return float(t.ppf(p, df))


def _t_sf(x: float, df: int) -> float:
    try:
        from scipy.stats import t
    except ImportError:
        return 1 - _t_cdf(x, df)
    return float(t.sf(x, df))


@dataclass
class TInterval:
    """A mean (of values, or of paired differences ``b - a``) with its Student-t confidence interval at ``level``
    over ``n`` values, and the two-sided p-value against a mean of 0."""

    mean: float
    low: float
    high: float
    n: int
    level: float
    p_value: float

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0."""
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}


def t_interval(x: Sequence[float], level: float = 0.95) -> TInterval:
    """Student-t confidence interval for the mean of ``x`` (n - 1 degrees of freedom) and its two-sided p-value
    against 0. Needs at least 2 values; all-equal values give a zero-width interval. Returns a :class:`TInterval`
    in the unit of ``x``."""
    d = np.asarray(x, dtype=float)
    if d.ndim != 1 or d.size < 2:
        raise ValueError(f"need at least 2 values for a t-interval, got {d.size}")
    level = _check_level(level)
    n, mean = d.size, float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0:
        return TInterval(mean, mean, mean, n, level, 1.0 if mean == 0 else 0.0)
    h = _t_ppf(0.5 + level / 2, n - 1) * se
    return TInterval(mean, mean - h, mean + h, n, level, 2 * _t_sf(abs(mean) / se, n - 1))


def paired_t_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> TInterval:
    """Student-t confidence interval for the mean of ``b − a`` over pairs (e.g. seeds: the same initial weights
    trained two ways), and its two-sided p-value against 0: :func:`t_interval` of the differences. Needs at least
    2 pairs. Notebook 07."""
    if len(a) != len(b):
        raise ValueError(f"a and b must pair up; got {len(a)} and {len(b)} values")
    if len(a) < 2:
        raise ValueError(f"need at least 2 pairs for a t-interval, got {len(a)}")
    return t_interval(np.asarray(b, dtype=float) - np.asarray(a, dtype=float), level)


# ----------------------------------------------------------------------------- ranks


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their mean rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tied = x == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation of two equally long sequences (ties get their mean rank); in [-1, 1].
    Notebook 19 checks a latency predictor with it."""
    if len(a) != len(b) or len(a) < 3:
        raise ValueError(f"need two sequences of equal length >= 3, got {len(a)} and {len(b)}")
    ra, rb = _ranks(np.asarray(a, dtype=float)), _ranks(np.asarray(b, dtype=float))
    return float(np.corrcoef(ra, rb)[0, 1])
