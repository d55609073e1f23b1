"""The one paired-interval routine (harness.stats.paired): Newcombe's score interval for 0/1
metrics, checked against statsmodels, scipy's Wilson limits and brute-force exact computations;
the bootstrap's degenerate guard; and the decision rule that never decides on zero width."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import binomtest, multinomial, norm

from harness.decide.rule import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    classify,
    decided_at_look,
    enough_information,
    one_sided_p,
    spending_levels,
)
from harness.score.metrics import ratio
from harness.score.registry import Decomposed
from harness.stats import paired as P


def binary(correct) -> Decomposed:
    c = np.asarray(correct, float)
    return Decomposed(np.c_[c, np.ones(len(c))], ratio, binary=True)


def ci(table, confidence=0.95) -> tuple[float, float]:
    lo, hi = P.newcombe_paired_ci(table, confidence)
    return float(lo), float(hi)


def scalar_newcombe(both, only_c, only_b, neither, confidence=0.95):
    """Method 10 written out from the paper with scipy's Wilson limits (an independent copy of
    the arithmetic: no numpy broadcasting, no shared helper)."""
    n = both + only_c + only_b + neither
    w1 = binomtest(both + only_c, n).proportion_ci(confidence, method="wilson")
    w2 = binomtest(both + only_b, n).proportion_ci(confidence, method="wilson")
    p1, p2 = (both + only_c) / n, (both + only_b) / n
    e, f = both + only_c, only_b + neither
    g, h = both + only_b, only_c + neither
    cross = both * neither - only_c * only_b
    if cross > n / 2:
        cross -= n / 2
    elif cross >= 0:
        cross = 0
    phi = cross / math.sqrt(e * f * g * h) if e * f * g * h else 0.0
    d = p1 - p2
    lo = d - math.sqrt(
        (p1 - w1.low) ** 2 - 2 * phi * (p1 - w1.low) * (w2.high - p2) + (w2.high - p2) ** 2
    )
    hi = d + math.sqrt(
        (p2 - w2.low) ** 2 - 2 * phi * (p2 - w2.low) * (w1.high - p1) + (w1.high - p1) ** 2
    )
    return lo, hi


TABLES = [(14, 5, 0, 22), (50, 0, 0, 0), (40, 0, 0, 10), (3, 7, 1, 9), (0, 0, 0, 10), (1, 1, 7, 12)]


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_newcombe_matches_the_paper_arithmetic_with_scipy_wilson(table, confidence):
    assert ci(table, confidence) == pytest.approx(scalar_newcombe(*table, confidence), abs=1e-9)


def test_newcombe_matches_statsmodels_where_it_has_the_method():
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    if not hasattr(proportion, "confint_proportions_paired"):
        pytest.skip("this statsmodels has no confint_proportions_paired (added after 0.14)")
    for both, only_c, only_b, neither in TABLES:
        # statsmodels: rows = first classification (the candidate), success first.
        lo, hi = proportion.confint_proportions_paired(
            [[both, only_c], [only_b, neither]], method="newcomb"
        )
        assert ci((both, only_c, only_b, neither)) == pytest.approx((lo, hi), abs=1e-9)


def test_wilson_limits_are_scipys():
    for k, n in [(0, 10), (3, 10), (10, 10), (37, 50)]:
        got = P._wilson(k, n, norm.ppf(0.975))
        want = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert (float(got[0]), float(got[1])) == pytest.approx((want.low, want.high), abs=1e-12)


def test_fully_concordant_pairs_never_collapse():
    # 50 pairs, all right on both: the bootstrap said [0, 0]; Newcombe says ± the Wilson
    # distance of 50/50 from 1, i.e. z²/(n + z²).
    z = norm.ppf(0.975)
    lo, hi = ci((50, 0, 0, 0))
    assert hi == pytest.approx(z * z / (50 + z * z), abs=1e-12) == pytest.approx(0.0713, abs=1e-4)
    assert lo == pytest.approx(-hi)
    assert classify(lo, hi, 0.05) == INCONCLUSIVE  # +5 pts not ruled out by 50 agreements
    # Ten pairs (`--limit 10`): ±27.8 pts.
    lo10, hi10 = ci((10, 0, 0, 0))
    assert hi10 == pytest.approx(0.2776, abs=1e-4) and classify(lo10, hi10, 0.05) == INCONCLUSIVE
    # Many agreeing pairs do rule a difference out (rule of three: |Δ| ≲ 3/n).
    lo2k, hi2k = ci((1700, 0, 0, 300))
    assert hi2k < 0.01 and classify(lo2k, hi2k, 0.05) == FAIL


def test_paired_interval_dispatches_on_the_metric():
    rng = np.random.default_rng(3)
    a = rng.random(40) < 0.7
    b = a.copy()
    b[:6] = True
    d = P.paired_interval(binary(a), binary(b))
    table = P.paired_table(a, b)
    assert d["interval"] == "newcombe-paired" and d["table"] == list(table)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx(ci(table))
    assert d["p_method"] == "mcnemar-exact"
    only = table[1] + table[2]
    assert d["p_value"] == pytest.approx(binomtest(table[1], only, 0.5).pvalue)
    # Repeats (a clustered 0/1 metric: 2 records an example) → the paired bootstrap.
    rep_a = Decomposed(np.c_[a + a, np.full(40, 2.0)], ratio)
    rep_b = Decomposed(np.c_[b + b, np.full(40, 2.0)], ratio)
    d2 = P.paired_interval(rep_a, rep_b, B=500)
    assert d2["interval"] == "bootstrap" and "table" not in d2
    # One example differs: too few for a percentile bound, so floored (and marked).
    assert only == 1 and d2["degenerate"] is True


def test_a_degenerate_bootstrap_is_floored_like_agreeing_pairs():
    same = Decomposed(np.c_[np.full(20, 1.0), np.full(20, 2.0)], ratio)  # 0.5 on every example
    better = Decomposed(np.c_[np.full(20, 2.0), np.full(20, 2.0)], ratio)  # 1.0 on every example
    d = P.paired_interval(same, better, B=300)
    assert d["degenerate"] is True and d["value"] == pytest.approx(0.5)
    # The floor: the half-width Newcombe gives 20 agreeing 0/1 pairs at 100%.
    half = float(ci((20, 0, 0, 0))[1])
    assert half == pytest.approx(1.959964**2 / (20 + 1.959964**2), abs=1e-6)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((0.5 - half, 0.5 + half))
    assert classify(d["ci_low"], d["ci_high"], 0.05) == PASS  # a fixed design may decide on it
    assert not enough_information({**d, "threshold": 0.05}, 0.0015)  # a sequential look not
    assert classify(0.0, 0.0, 0.05) == INCONCLUSIVE  # zero width, from anywhere
    assert one_sided_p({"value": 0.0, "ci_low": 0.0, "ci_high": 0.0, "threshold": -0.05}, 0.95) == 1


def _exact_coverage(n: int, probs: tuple[float, float, float, float], confidence=0.95) -> float:
    """Exact coverage: every paired table of n pairs, weighted by its multinomial probability."""
    delta = probs[1] - probs[2]
    tables = [
        (n - x - y - w, x, y, w)
        for x, y, w in itertools.product(range(n + 1), repeat=3)
        if x + y + w <= n
    ]
    lo, hi = P.newcombe_paired_ci(np.array(tables).T, confidence)
    weight = multinomial.pmf(np.array(tables), n, probs)
    return float(weight[(lo <= delta + 1e-12) & (delta - 1e-12 <= hi)].sum())


@pytest.mark.parametrize("n", [10, 20])
@pytest.mark.parametrize(
    "probs",
    [(0.75, 0.05, 0.0, 0.20), (0.7, 0.05, 0.05, 0.2), (0.7, 0.1, 0.0, 0.2), (0.8, 0.0, 0.0, 0.2)],
)
def test_exact_coverage_at_small_n_by_enumeration(n, probs):
    assert _exact_coverage(n, probs) >= 0.90


def test_newcombe_p_inverts_the_interval_by_brute_force():
    for table, thr in [((30, 14, 2, 4), 0.05), ((60, 12, 3, 25), 0.0), ((40, 2, 9, 9), -0.05)]:
        for side in ("lower", "upper"):
            p = P.newcombe_p(table, thr, side)
            # The level grid scanned directly: the interval at 1 − 2α decides that side
            # exactly for the α ≥ p.
            for alpha in np.linspace(0.0005, 0.3, 600):
                lo, hi = ci(table, 1 - 2 * alpha)
                decides = lo >= thr if side == "lower" else hi <= thr
                if abs(alpha - p) > 1e-6:
                    assert decides == (alpha > p), (table, thr, side, alpha, p)


def test_the_same_method_decides_a_sequential_look():
    levels = spending_levels(0.025, 4)
    assert P.min_discordant(levels[0]) == 18 and P.min_discordant(0.025) == 6
    # Look 1 of the issue: 50 pairs, all agree. Not decided, whatever the threshold.
    d = {"value": 0.0, "threshold": 0.05, "confidence": 0.95, "table": [50, 0, 0, 0]}
    d["ci_low"], d["ci_high"] = ci(d["table"])
    assert not enough_information(d, levels[0])
    v = {"status": INCONCLUSIVE, "verdict": INCONCLUSIVE, "flags": [], "delta": d}
    assert not decided_at_look({"few-shot": v}, "holm", levels[0])
    # A clear effect with enough discordant pairs passes at the look's level by Newcombe.
    d2 = {"value": 0.3, "threshold": 0.05, "confidence": 0.95, "table": [60, 30, 0, 10]}
    d2["ci_low"], d2["ci_high"] = ci(d2["table"])
    v2 = {"status": PASS, "verdict": PASS, "flags": [], "delta": d2}
    assert one_sided_p(d2, 0.95) == pytest.approx(P.newcombe_p(d2["table"], 0.05))
    assert one_sided_p(d2, 0.95) <= levels[1]
    assert decided_at_look({"ft": v2}, "holm", levels[1])


def test_independent_interval_matches_statsmodels():
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    for k1, n1, k2, n2 in [(15, 20, 9, 20), (30, 30, 25, 40), (0, 12, 3, 15), (40, 50, 40, 50)]:
        want = proportion.confint_proportions_2indep(k1, n1, k2, n2, method="newcomb")
        got = P.newcombe_independent_ci(k1, n1, k2, n2)
        assert got == pytest.approx((float(want[0]), float(want[1])), abs=1e-9)
    d = P.independent_interval(binary([1] * 9 + [0] * 11), binary([1] * 15 + [0] * 5))
    assert d["interval"] == "newcombe-independent"
    assert (d["ci_low"], d["ci_high"]) == pytest.approx(P.newcombe_independent_ci(15, 20, 9, 20))


def test_newcombe_matches_a_published_value():
    # Fagerland, Lydersen & Laake's contingencytables (tests/testthat/test-ch8.R): Cavo et al.
    # (2012), [[59, 6], [16, 80]], Newcombe square-and-add: -0.0621 (95% CI -0.1186 to -0.0046).
    lo, hi = ci((59, 6, 16, 80))
    assert (round(lo, 4), round(hi, 4)) == (-0.1186, -0.0046)


def test_a_bootstrap_with_one_discordant_example_does_not_decide():
    # macro-F1-like ratio on 10 examples, the variants differing on one: 35% of resamples miss
    # it, so the percentile bound sits on the no-difference atom, [+0.0, ...] — a zero-width
    # lower tail. Accuracy on the same table (9 agree, 1 discordant) is Newcombe's, whose
    # lower bound is well below −0.05; the bootstrap must not claim non-inferiority at −0.05.
    base = Decomposed(np.c_[np.r_[np.ones(9), 0.0], np.ones(10)], ratio)
    cand = Decomposed(np.c_[np.ones(10), np.ones(10)], ratio)
    d = P.paired_interval(base, cand, B=2000)
    newcombe_lo = float(ci((9, 1, 0, 0))[0])
    assert newcombe_lo < -0.05
    assert d["ci_low"] <= -0.05
    assert classify(d["ci_low"], d["ci_high"], -0.05) == INCONCLUSIVE
    assert not enough_information({**d, "threshold": -0.05}, 0.025)
