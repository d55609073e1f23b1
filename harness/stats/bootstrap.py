"""Confidence intervals, paired differences, McNemar and power (vectorised numpy + scipy).

The bootstrap (`resample_sums`) resamples *examples* with replacement (a cluster bootstrap
when an example has several repeats: all its samples move together) and recomputes the metric
from the resampled per-example sums, B = 2000 times by default, seeded (seed 0 unless told).
Intervals are percentile intervals (the (1-c)/2 and (1+c)/2 quantiles of the B values).

Resampling n examples with replacement means drawing a multinomial count per example; examples
whose statistics rows are identical are interchangeable, so when there are few distinct rows
(binary scores: at most 4 rows for a paired 0/1 metric) the counts are drawn per distinct row
(exactly the same distribution, ~100x faster). Otherwise indices are drawn in chunks.

A paired difference (variant - baseline) concatenates both variants' per-example statistics
on the same examples, so both are recomputed on the same resampled examples.
Errors (no answer after retries) are already wrong answers in the statistics (harness.score.scorer).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

DEFAULT_B = 2000
DEFAULT_SEED = 0
_CHUNK_CELLS = 4_000_000  # random indices per chunk (~16 MB as int32)


def resample_sums(stats: np.ndarray, B: int = DEFAULT_B, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(B, k) column sums of `stats` (n, k) over B bootstrap resamples of its rows."""
    stats = np.asarray(stats, dtype=float)
    n = stats.shape[0]
    rng = np.random.default_rng(seed)
    if n == 0:
        return np.zeros((B, stats.shape[1]))
    uniq, inv = np.unique(stats, axis=0, return_inverse=True)
    inv = inv.ravel()
    U = len(uniq)
    if n >= U * 8:
        counts = np.bincount(inv, minlength=U)
        weights = rng.multinomial(n, counts / n, size=B).astype(float)
        rows_T = _sparse_T(uniq)
        return weights @ uniq if rows_T is None else (rows_T @ weights.T).T
    out = np.empty((B, stats.shape[1]))
    chunk = max(1, _CHUNK_CELLS // n)
    dtype = np.int32 if n < 2**31 else np.int64
    rows_T = _sparse_T(uniq)
    for start in range(0, B, chunk):
        rows = min(B, start + chunk) - start
        idx = rng.integers(0, n, size=(rows, n), dtype=dtype)
        flat = (np.arange(rows)[:, None] * U + inv[idx]).ravel()
        weights = np.bincount(flat, minlength=rows * U).reshape(rows, U).astype(float)
        out[start : start + rows] = weights @ uniq if rows_T is None else (rows_T @ weights.T).T
    return out


def _sparse_T(uniq: np.ndarray):
    """uniq.T as a sparse matrix when mostly zeros (per-class counts: <= 2 non-zeros a row)."""
    if uniq.shape[1] < 16 or np.count_nonzero(uniq) > 0.1 * uniq.size:
        return None
    from scipy import sparse

    return sparse.csr_matrix(uniq.T)


def percentile_ci(
    values: np.ndarray, confidence: float = 0.95
) -> tuple[float | None, float | None]:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return None, None
    a = (1 - confidence) / 2
    lo, hi = np.quantile(v, [a, 1 - a])
    return float(lo), float(hi)


def bootstrap_ci(
    stats: np.ndarray,
    combine: Callable[[np.ndarray], np.ndarray],
    *,
    confidence: float = 0.95,
    B: int = DEFAULT_B,
    seed: int = DEFAULT_SEED,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI of `combine(column sums)`, resampling examples."""
    if len(stats) == 0:
        return None, None
    return percentile_ci(combine(resample_sums(stats, B, seed)), confidence)


def wilson_ci(
    successes: int, n: int, confidence: float = 0.95
) -> tuple[float | None, float | None]:
    """Wilson score interval of a plain proportion (scipy)."""
    if n <= 0:
        return None, None
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(n)).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return float(ci.low), float(ci.high)


def paired_bootstrap(
    stats_a: np.ndarray,
    combine_a: Callable[[np.ndarray], np.ndarray],
    stats_b: np.ndarray,
    combine_b: Callable[[np.ndarray], np.ndarray],
    *,
    confidence: float = 0.95,
    B: int = DEFAULT_B,
    seed: int = DEFAULT_SEED,
) -> dict:
    """Difference combine_b - combine_a (b = variant, a = baseline) on the same examples.

    Rows of stats_a and stats_b must be the same examples in the same order. Returns
    {"value", "ci_low", "ci_high", "p_value"}; p_value is the two-sided bootstrap p-value
    (twice the smaller share of resampled differences on either side of 0, capped at 1)."""
    stats_a, stats_b = np.asarray(stats_a, float), np.asarray(stats_b, float)
    if stats_a.shape[0] != stats_b.shape[0]:
        raise ValueError(
            f"paired statistics need the same examples ({stats_a.shape[0]} vs {stats_b.shape[0]})"
        )
    if stats_a.shape[0] == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "p_value": None}
    ka = stats_a.shape[1]
    value = float(combine_b(stats_b.sum(0)) - combine_a(stats_a.sum(0)))
    sums = resample_sums(np.hstack([stats_a, stats_b]), B, seed)
    deltas = combine_b(sums[:, ka:]) - combine_a(sums[:, :ka])
    lo, hi = percentile_ci(deltas, confidence)
    return {
        "value": None if math.isnan(value) else value,
        "ci_low": lo,
        "ci_high": hi,
        "p_value": bootstrap_p(deltas),
    }


def bootstrap_p(deltas: np.ndarray) -> float | None:
    d = np.asarray(deltas, float)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return None
    return float(min(1.0, 2 * min((d <= 0).mean(), (d >= 0).mean())))


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact McNemar p-value (two-sided binomial test on the discordant pairs)."""
    from scipy.stats import binomtest

    a = np.asarray(correct_a, bool)
    b = np.asarray(correct_b, bool)
    only_a = int((a & ~b).sum())
    only_b = int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_b, only_a + only_b, 0.5).pvalue)


# ---------------------------------------------------------------- power
# One sample-size method for `harness check` and the guard's "~N test examples would decide":
# the guard passes when the lower bound of the two-sided interval at `confidence` clears the
# threshold, so n is what makes that happen with `power` when the true difference lies `gap`
# beyond the threshold (normal approximation; sd = the standard deviation of one example's
# paired difference). `check` assumes sd 0.5; after a run the guard uses the sd its interval shows.

POWER = 0.8


def _z(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def _z_interval(confidence: float) -> float:
    """The two-sided interval's z (1.96 at 95%)."""
    return _z((1 + confidence) / 2)


def min_detectable_difference(
    n: int, *, sd: float = 0.5, confidence: float = 0.95, power: float = POWER
) -> float:
    """Smallest true distance beyond the threshold that n examples show with `power`."""
    if n <= 0:
        return math.inf
    return (_z_interval(confidence) + _z(power)) * sd / math.sqrt(n)


def required_n(
    gap: float,
    *,
    sd: float = 0.5,
    confidence: float = 0.95,
    power: float = POWER,
    alpha: float | None = None,
) -> int:
    """Examples needed to show a true difference `gap` (> 0) beyond the threshold with `power`;
    `alpha`: the one-sided level when it is not (1 − confidence) / 2 (Holm's α/m)."""
    if gap <= 0:
        raise ValueError(f"the distance to the threshold must be > 0 to size a test (got {gap})")
    z = _z(1 - alpha) if alpha is not None else _z_interval(confidence)
    return max(1, math.ceil(((z + _z(power)) * sd / gap) ** 2))


def sd_from_interval(ci_low: float, ci_high: float, n: int, confidence: float) -> float:
    """The per-example sd an interval at `confidence` on n examples implies (its half-width is
    z * sd / sqrt(n)): the observed paired spread of any metric, F1 as well as accuracy."""
    return (ci_high - ci_low) / 2 * math.sqrt(n) / _z_interval(confidence)
