"""The one routine for the interval of a difference between two variants (variant − baseline).

Every place that judges a difference asks `paired_interval` (the summary's deltas and
comparisons, hence the guard, its sequential looks, `harness plan --pilot` and the judge's
metrics) or `independent_interval` (`harness compare` of runs on different examples).

- A 0/1 metric (one 0/1 record per example on both sides: accuracy without repeats, exact match,
  a pass/fail judge) gets Newcombe's score interval for paired proportions (Newcombe 1998,
  Statistics in Medicine 17:2635, method 10): the Wilson intervals of the two rates, combined
  with the correlation φ of the paired table (continuity-corrected as the paper gives it).
  It never collapses: 50 pairs that all agree give ±7 points at 95%, where the bootstrap gives
  [0, 0] — no resample of identical pairs can disagree. The one-sided p-value is the level at
  which the interval's bound reaches the threshold (`newcombe_p`), so a pass at any level is the
  same method's interval at that level.
- Anything else (F1, judge scales, repeats: clustered by example) gets the paired percentile
  bootstrap (harness.stats.bootstrap). A bootstrap whose resampled differences do not vary is
  degenerate: its interval is floored by the half-width n agreeing 0/1 pairs get, z²/(n + z²),
  and marked `degenerate`; a sequential look never acts on it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.stats import bootstrap as S

NEWCOMBE = "newcombe-paired"  # Newcombe (1998) method 10, the paired score interval
NEWCOMBE_INDEPENDENT = "newcombe-independent"  # Newcombe (1998) method 10, independent samples
BOOTSTRAP = "bootstrap"

RATE_DIFFERENCE = (-1.0, 1.0)  # the difference of two rates (−100 to +100 pts)


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf((1 + confidence) / 2))


def _wilson(k, n, z):
    """Wilson score limits of k/n (vectorised: the paired interval needs four per table and the
    level search many tables)."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def paired_table(base_correct, cand_correct) -> tuple[int, int, int, int]:
    """(both right, only the candidate right, only the baseline right, both wrong)."""
    a = np.asarray(base_correct, bool)
    b = np.asarray(cand_correct, bool)
    return (
        int((a & b).sum()),
        int((~a & b).sum()),
        int((a & ~b).sum()),
        int((~a & ~b).sum()),
    )


def _phi(table) -> np.ndarray:
    """Newcombe's continuity-corrected φ of the paired table: (AD − BC − n/2)/√(EFGH) when
    AD − BC > n/2, 0 up to there, (AD − BC)/√(EFGH) below 0; 0 when a margin is empty."""
    both, only_c, only_b, neither = (np.asarray(x, float) for x in table)
    n = both + only_c + only_b + neither
    cross = both * neither - only_c * only_b
    margins = (both + only_c) * (only_b + neither) * (both + only_b) * (only_c + neither)
    corrected = np.where(cross > n / 2, cross - n / 2, np.where(cross < 0, cross, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(margins > 0, corrected / np.sqrt(np.where(margins > 0, margins, 1)), 0.0)


def newcombe_paired_ci(table, confidence: float = 0.95, *, z: float | None = None):
    """Newcombe's method-10 interval of (candidate rate − baseline rate) from the paired table
    (both, only_candidate, only_baseline, neither); vectorised over tables. (lo, hi) arrays."""
    both, only_c, only_b, neither = (np.asarray(x, float) for x in table)
    n = both + only_c + only_b + neither
    z = _z(confidence) if z is None else z
    p1 = (both + only_c) / n  # candidate
    p2 = (both + only_b) / n  # baseline
    l1, u1 = _wilson(both + only_c, n, z)
    l2, u2 = _wilson(both + only_b, n, z)
    phi = _phi(table)
    d = p1 - p2
    dl1, du1, dl2, du2 = p1 - l1, u1 - p1, p2 - l2, u2 - p2
    lo = d - np.sqrt(np.maximum(dl1**2 - 2 * phi * dl1 * du2 + du2**2, 0))
    hi = d + np.sqrt(np.maximum(du1**2 - 2 * phi * du1 * dl2 + dl2**2, 0))
    return np.clip(lo, -1, 1), np.clip(hi, -1, 1)


def newcombe_p(table, threshold: float, side: str = "lower") -> float:
    """One-sided p-value of the paired table against `threshold`, by the same method: the
    one-sided level α at which the Newcombe bound (of the interval at 1 − 2α) just reaches the
    threshold. side="lower": H0 Δ ≤ threshold (a pass); "upper": H0 Δ ≥ threshold (a fail).
    So p ≤ α exactly when the interval at 1 − 2α decides that side."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    n = sum(table)
    if n == 0:
        return 1.0
    d = (table[1] - table[2]) / n
    sign = 1.0 if side == "lower" else -1.0
    gap = sign * (d - threshold)
    if gap == 0:
        return 0.5
    if gap < 0:  # the estimate is on the other side: 1 − that side's level
        return 1.0 - newcombe_p(table, threshold, "upper" if side == "lower" else "lower")

    def bound_minus_threshold(z: float) -> float:
        lo, hi = newcombe_paired_ci(table, z=z)
        return sign * ((float(lo) if sign > 0 else float(hi)) - threshold)

    z_far = 40.0  # far beyond any level in use
    if bound_minus_threshold(z_far) > 0:
        return float(norm.sf(z_far))
    z = brentq(bound_minus_threshold, 0.0, z_far, xtol=1e-10)
    return float(norm.sf(z))


def min_discordant(alpha: float) -> int:
    """The fewest discordant pairs with which a paired 0/1 comparison can reach one-sided level
    `alpha` at all: with k discordant pairs the most extreme exact sign test (McNemar) gives
    0.5^k, so k ≥ log2(1/α). An early look with fewer cannot carry its boundary."""
    if alpha <= 0:
        return math.inf  # type: ignore[return-value]
    return max(1, math.ceil(math.log2(1 / alpha) - 1e-12))


def _binary_correct(result) -> np.ndarray | None:
    """The 0/1 per-example outcomes of a metric that is a plain proportion, else None."""
    if not getattr(result, "binary", False):
        return None
    return np.asarray(result.stats[:, 0], float) > 0.5


def paired_interval(
    base: Any,
    cand: Any,
    *,
    confidence: float = 0.95,
    B: int = S.DEFAULT_B,
    seed: int = S.DEFAULT_SEED,
    bounds: tuple[float, float] | None = RATE_DIFFERENCE,
) -> dict[str, Any]:
    """The interval of cand − base (two `Decomposed` metrics on the same examples, same order):
    {"value", "ci_low", "ci_high", "p_value", "p_method", "interval"} — Newcombe's score interval
    with the exact McNemar p for a 0/1 metric (plus its paired "table"), otherwise the paired
    bootstrap (with "degenerate" and a floor when its resamples do not vary)."""
    a, b = _binary_correct(base), _binary_correct(cand)
    if a is not None and b is not None and len(a) == len(b) and len(a) > 0:
        table = paired_table(a, b)
        lo, hi = newcombe_paired_ci(table, confidence)
        return {
            "value": (table[1] - table[2]) / len(a),
            "ci_low": float(lo),
            "ci_high": float(hi),
            "p_value": S.mcnemar_exact(a, b),
            "p_method": "mcnemar-exact",
            "interval": NEWCOMBE,
            "table": list(table),
        }
    out = S.paired_bootstrap(
        base.stats, base.combine, cand.stats, cand.combine, confidence=confidence, B=B, seed=seed
    )
    out.update(p_method="bootstrap", interval=BOOTSTRAP)
    sa, sb = np.asarray(base.stats), np.asarray(cand.stats)
    # Per-class columns may differ between the sides (compare's runs): no count then.
    discordant = int(np.any(sa != sb, axis=1).sum()) if sa.shape == sb.shape else None
    if discordant is not None and discordant < min_discordant((1 - confidence) / 2):
        # Too few differing examples for a percentile bound to measure anything: the resamples
        # that miss them all (0.9^10 = 35% for one in ten) put a bound on the no-difference
        # atom, a zero-width tail. Floored like the degenerate case, and no look acts on it.
        return floor_degenerate(out, len(base.stats), confidence, force=True, bounds=bounds)
    return floor_degenerate(out, len(base.stats), confidence, bounds=bounds)


def floor_degenerate(
    d: dict[str, Any],
    n: int,
    confidence: float,
    *,
    force: bool = False,
    bounds: tuple[float, float] | None = RATE_DIFFERENCE,
) -> dict[str, Any]:
    """A bootstrap interval of zero width (every resample gave the same difference) measured no
    spread: widen it by the half-width Newcombe's interval gives n pairs of a 0/1 rate that all
    agree at the boundary, z²/(n + z²) (the Wilson distance of n/n from 1: ±7.1 points at 50
    examples) — the least a rate's difference on n examples can be known to — and mark it
    `degenerate` (a sequential look never acts on it; `plan --pilot` refuses it). `force`: a
    bootstrap with too few differing examples (each side widened to at least that half-width).
    The widened interval is cut to `bounds`, the difference's possible range (clip_interval)."""
    lo, hi, value = d.get("ci_low"), d.get("ci_high"), d.get("value")
    if lo is None or hi is None or value is None or n < 1 or (hi - lo > 1e-12 and not force):
        return d
    z2 = _z(confidence) ** 2
    half = z2 / (n + z2)
    lo, hi = min(lo, value - half), max(hi, value + half)
    return clip_interval({**d, "ci_low": lo, "ci_high": hi, "degenerate": True}, bounds)


def clip_interval(d: dict[str, Any], bounds: tuple[float, float] | None) -> dict[str, Any]:
    """`d`'s interval cut to the possible range of its figure (`bounds`; None: unbounded). A
    floored interval of a rate difference of −100 pts would otherwise read [−113.8, −86.2]:
    bounds it can never reach. A metric's own range: harness.score.registry.figure_bounds."""
    lo, hi = d.get("ci_low"), d.get("ci_high")
    if bounds is None or lo is None or hi is None:
        return d
    return {
        **d,
        "ci_low": min(max(lo, bounds[0]), bounds[1]),
        "ci_high": max(min(hi, bounds[1]), bounds[0]),
    }


def newcombe_independent_ci(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95):
    """Newcombe's hybrid score interval of k1/n1 − k2/n2 for independent samples (Newcombe
    1998, Statistics in Medicine 17:873, method 10: the paired formula with φ = 0)."""
    z = _z(confidence)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = _wilson(k1, n1, z)
    l2, u2 = _wilson(k2, n2, z)
    d = p1 - p2
    lo = d - math.sqrt(float((p1 - l1) ** 2 + (u2 - p2) ** 2))
    hi = d + math.sqrt(float((u1 - p1) ** 2 + (p2 - l2) ** 2))
    return max(lo, -1.0), min(hi, 1.0)


def independent_interval(
    base: Any,
    cand: Any,
    *,
    confidence: float = 0.95,
    B: int = S.DEFAULT_B,
    seed: int = S.DEFAULT_SEED,
    bounds: tuple[float, float] | None = RATE_DIFFERENCE,
) -> dict[str, Any]:
    """cand − base on different examples: Newcombe's hybrid score interval for independent
    proportions with Fisher's exact p (scipy) for 0/1 metrics, else each side resampled on its
    own (floored like the paired bootstrap when it cannot vary)."""
    a, b = _binary_correct(base), _binary_correct(cand)
    if a is not None and b is not None and len(a) and len(b):
        from scipy.stats import fisher_exact

        ka, kb = int(a.sum()), int(b.sum())
        lo, hi = newcombe_independent_ci(kb, len(b), ka, len(a), confidence)
        p = fisher_exact([[kb, len(b) - kb], [ka, len(a) - ka]]).pvalue
        return {
            "ci_low": lo,
            "ci_high": hi,
            "p_value": float(p),
            "p_method": "fisher-exact",
            "interval": NEWCOMBE_INDEPENDENT,
        }
    da = base.combine(S.resample_sums(base.stats, B, seed))
    db = cand.combine(S.resample_sums(cand.stats, B, seed + 1))
    deltas = np.asarray(db, float) - np.asarray(da, float)
    lo, hi = S.percentile_ci(deltas, confidence)
    out = {
        "value": float(np.nanmedian(deltas)) if lo is not None else None,
        "ci_low": lo,
        "ci_high": hi,
        "p_value": S.bootstrap_p(deltas),
        "p_method": "bootstrap",
        "interval": BOOTSTRAP,
    }
    out = floor_degenerate(out, min(len(base.stats), len(cand.stats)), confidence, bounds=bounds)
    del out["value"]  # the caller's point value is the libraries' own
    return out
