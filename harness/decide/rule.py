"""The decision rule, pure: an interval against a threshold, the pre-registration's fingerprint,
the test-set size that would decide, and Holm's step-down across several guarded variants."""

from __future__ import annotations

import hashlib
import json
from statistics import NormalDist

from harness.stats.bootstrap import required_n as stats_required_n
from harness.stats.bootstrap import sd_from_interval

PASS, FAIL, INCONCLUSIVE, ABANDON = "pass", "fail", "inconclusive", "abandon"


def classify(ci_low: float | None, ci_high: float | None, threshold: float) -> str:
    """pass / fail / inconclusive for an interval against a threshold (no interval: undecided)."""
    if ci_low is not None and ci_low >= threshold:
        return PASS
    if ci_high is not None and ci_high < threshold:
        return FAIL
    return INCONCLUSIVE


def threshold_of(test: str, margin: float) -> float:
    return margin if test == "superiority" else -margin


def required_n(delta: dict, n: int, margin: float, confidence: float) -> int | None:
    """Test-set size that decides with 80% power, by `harness check`'s method (stats.bootstrap):
    the true Δ one margin beyond the threshold (0 for non-inferiority), and this run's observed
    spread (from its interval) in place of check's assumed sd 0.5. None without an interval or
    with a zero margin (no size shows a difference of 0)."""
    if delta.get("ci_low") is None or delta.get("ci_high") is None or not n or margin <= 0:
        return None
    sd = sd_from_interval(delta["ci_low"], delta["ci_high"], n, confidence)
    return stats_required_n(margin, sd=sd, confidence=confidence)


def fingerprint(hypothesis: dict | None) -> str | None:
    """Stable short hash of (metric, test, margin, confidence): the pre-registration."""
    if not hypothesis:
        return None
    keys = ("metric", "test", "margin", "confidence")
    canonical = json.dumps({k: hypothesis.get(k) for k in keys}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def one_sided_p(d: dict | None, confidence: float) -> float:
    """p-value of "Δ ≤ threshold" from the reported CI, read as a normal interval: the level at
    which the one-sided lower bound would just reach the threshold. 1.0 without an interval."""
    if not d or d.get("value") is None or d.get("ci_low") is None or d.get("ci_high") is None:
        return 1.0
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    se = (d["ci_high"] - d["ci_low"]) / (2 * z)
    if se <= 0:
        return 0.0 if d["ci_low"] >= d["threshold"] else 1.0
    return 1 - NormalDist().cdf((d["value"] - d["threshold"]) / se)


def holm(verdicts: dict[str, dict], confidence: float) -> None:
    """Holm's step-down over the guarded variants' passes, family-wise at the guard's one-sided
    α = (1 − confidence) / 2.

    Exactly Holm on the one-sided p-values (`one_sided_p`): with r hypotheses left, every one with
    p ≤ α/r is a pass (the smallest would be, and each pass only raises the next level α/(r−1)),
    then r shrinks; the first step with none stops. A pass the CI showed but Holm did not becomes
    inconclusive; fail (the upper bound below the threshold) is not a pass claim and stays. One
    guarded variant: α/1, the plain rule. Each verdict gets {"m", "alpha", "p_value"}.
    """
    m = len(verdicts)
    alpha = (1 - confidence) / 2
    ps = {
        n: 1.0 if "error_rate" in v["flags"] else one_sided_p(v["delta"], confidence)
        for n, v in verdicts.items()
    }
    left = set(verdicts)
    level = {n: alpha / m for n in verdicts} if m else {}
    while left:
        step = alpha / len(left)
        passed = {n for n in left if ps[n] <= step}
        for n in left:
            level[n] = step
        if not passed:
            break
        left -= passed
    for n, v in verdicts.items():
        v["holm"] = {"m": m, "alpha": level[n], "p_value": ps[n]}
        if m > 1 and v["status"] == PASS and n in left:
            v["status"] = v["verdict"] = INCONCLUSIVE
