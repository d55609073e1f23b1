"""Bootstrap, Wilson, paired differences, McNemar and power: vs scipy and by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from harness.score.metrics import prf_from_counts, ratio
from harness.stats import bootstrap as S


def test_resample_paths_have_the_same_distribution():
    """Multinomial over distinct rows (few rows) and index draws (many rows) agree."""
    rng = np.random.default_rng(1)
    n = 400
    x = (rng.random(n) < 0.3).astype(float)
    few = np.c_[x, np.ones(n)]  # 2 distinct rows -> multinomial path
    many = np.c_[x + rng.random(n) * 1e-9, np.ones(n)]  # all distinct -> index path
    a = ratio(S.resample_sums(few, 4000, seed=1))
    b = ratio(S.resample_sums(many, 4000, seed=2))
    sd = math.sqrt(0.3 * 0.7 / n)
    assert a.mean() == pytest.approx(x.mean(), abs=3 * sd / math.sqrt(4000) * 3)
    assert b.mean() == pytest.approx(x.mean(), abs=3 * sd / math.sqrt(4000) * 3)
    assert a.std() == pytest.approx(x.std() / math.sqrt(n), rel=0.08)
    assert b.std() == pytest.approx(x.std() / math.sqrt(n), rel=0.08)
    # Every resample has exactly n examples.
    assert np.all(S.resample_sums(few, 50)[:, 1] == n) and np.all(
        S.resample_sums(many, 50)[:, 1] == n
    )


def test_seeded_and_empty():
    st = np.c_[np.arange(10) % 2, np.ones(10)].astype(float)
    assert S.bootstrap_ci(st, ratio, seed=5) == S.bootstrap_ci(st, ratio, seed=5)
    assert S.bootstrap_ci(np.zeros((0, 2)), ratio) == (None, None)
    assert S.paired_bootstrap(np.zeros((0, 2)), ratio, np.zeros((0, 2)), ratio)["value"] is None
    assert S.wilson_ci(0, 0) == (None, None)


def test_wilson_matches_scipy():
    for k, n in [(0, 10), (10, 10), (37, 120), (1, 1)]:
        ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
        lo, hi = S.wilson_ci(k, n)
        assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-12)
        # Closed form of the Wilson interval, independently.
        z = norm.ppf(0.975)
        p = k / n
        c = (p + z * z / (2 * n)) / (1 + z * z / n)
        h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        assert (lo, hi) == pytest.approx((c - h, c + h), abs=1e-9)


def test_wilson_coverage_2000_trials():
    """With true accuracy p on n examples, the 95% CI covers p in 93-97% of 2000 seeded trials."""
    rng = np.random.default_rng(2026)
    # (Wilson's exact coverage oscillates with n and p: 0.937 at p=0.7, n=100; these are ~0.95.)
    for p, n in [(0.6, 200), (0.85, 250)]:
        table = [S.wilson_ci(k, n) for k in range(n + 1)]  # one interval per possible count
        ks = rng.binomial(n, p, size=2000)
        cover = np.mean([table[k][0] <= p <= table[k][1] for k in ks])
        assert 0.93 <= cover <= 0.97, (p, n, cover)


def test_paired_bootstrap_coverage_modest():
    """The paired CI of an accuracy difference covers the true difference ~95% (300 trials)."""
    rng = np.random.default_rng(7)
    n, pa, pb = 300, 0.70, 0.78
    hits = 0
    trials = 300
    for t in range(trials):
        u = rng.random(n)
        a = (u < pa).astype(float)  # correlated: b is right whenever a is, plus some more
        b = (u < pb).astype(float)
        d = S.paired_bootstrap(
            np.c_[a, np.ones(n)], ratio, np.c_[b, np.ones(n)], ratio, B=1000, seed=t
        )
        hits += d["ci_low"] <= pb - pa <= d["ci_high"]
    assert 0.91 <= hits / trials <= 0.985


def test_perfect_variant_delta_contains_exact_gap():
    rng = np.random.default_rng(0)
    n = 500
    a = (rng.random(n) < 0.6).astype(float)
    b = np.ones(n)
    d = S.paired_bootstrap(np.c_[a, np.ones(n)], ratio, np.c_[b, np.ones(n)], ratio)
    gap = 1 - a.mean()
    assert d["value"] == pytest.approx(gap)
    assert d["ci_low"] < gap < d["ci_high"]
    # The paired difference of a perfect variant is a proportion of wrong baseline answers.
    se = math.sqrt(gap * (1 - gap) / n)
    assert d["ci_high"] - d["ci_low"] == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert d["p_value"] == 0.0


def test_identical_variants_delta_zero():
    st = np.c_[np.arange(50) % 3 == 0, np.ones(50)].astype(float)
    d = S.paired_bootstrap(st, ratio, st.copy(), ratio)
    assert d == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}


def test_paired_macro_f1_bootstrap_uses_same_examples():
    """Paired resamples: a variant equal to the baseline on every resample has Δ exactly 0."""
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 2, size=(60, 9)).astype(float)
    combine = lambda s: prf_from_counts(s, "macro", "f1")  # noqa: E731
    d = S.paired_bootstrap(counts, combine, counts.copy(), combine, B=500)
    assert d["ci_low"] == d["ci_high"] == 0.0
    with pytest.raises(ValueError, match="same examples"):
        S.paired_bootstrap(counts, combine, counts[:10], combine)


def test_mcnemar_exact_matches_binomial():
    a = np.array([1] * 10 + [1] * 1 + [0] * 6 + [0] * 3, bool)
    b = np.array([1] * 10 + [0] * 1 + [1] * 6 + [0] * 3, bool)
    # 1 vs 6 discordant pairs: p = 2 * P(X <= 1 | n=7, 1/2) = 2 * 8 / 128.
    assert S.mcnemar_exact(a, b) == pytest.approx(0.125, abs=1e-12)
    assert S.mcnemar_exact(a, a) == 1.0


def test_power_helpers():
    # Sized for the two-sided interval at `confidence` the guard decides on.
    z = norm.ppf(0.975) + norm.ppf(0.8)
    assert S.min_detectable_difference(100) == pytest.approx(z * 0.5 / 10, abs=1e-12)
    assert S.min_detectable_difference(0) == math.inf
    assert S.required_n(0.05) == math.ceil((z * 0.5 / 0.05) ** 2) == 785
    assert S.required_n(0.03) == 2181  # the 3-point margin of the CLINC150 story
    for m in (0.01, 0.05, 0.1, 0.2):
        n = S.required_n(m, confidence=0.9, power=0.9)
        assert S.min_detectable_difference(n, confidence=0.9, power=0.9) <= m
        assert S.min_detectable_difference(n - 1, confidence=0.9, power=0.9) > m or n == 1
    with pytest.raises(ValueError):
        S.required_n(0)


def test_sd_from_interval_inverts_the_half_width():
    # sd 0.4 on 400 examples at 90%: half-width z(0.95) * 0.4 / 20.
    half = norm.ppf(0.95) * 0.4 / 20
    assert S.sd_from_interval(0.1 - half, 0.1 + half, 400, 0.9) == pytest.approx(0.4)


def test_bootstrap_p_two_sided():
    assert S.bootstrap_p(np.array([1.0, 2.0, 3.0, -1.0])) == 0.5
    assert S.bootstrap_p(np.array([np.nan])) is None
