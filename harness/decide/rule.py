"""The decision rule, pure: an interval against a threshold, the pre-registration's fingerprint,
the test-set size that would decide, and Holm's step-down across several hypotheses."""

from __future__ import annotations

import hashlib
import json
import math
from statistics import NormalDist

from harness.stats.bootstrap import POWER, sd_from_interval
from harness.stats.bootstrap import required_n as stats_required_n

PASS, FAIL, INCONCLUSIVE, ABANDON = "pass", "fail", "inconclusive", "abandon"


def classify(ci_low: float | None, ci_high: float | None, threshold: float) -> str:
    """pass / fail / inconclusive for an interval against a threshold. No interval, or a
    zero-width one, never decides: an interval that cannot vary has measured no spread, not
    certainty (harness.stats.paired floors a degenerate bootstrap before it gets here)."""
    if ci_low is not None and ci_high is not None and ci_high - ci_low <= 1e-12:
        return INCONCLUSIVE
    if ci_low is not None and ci_low >= threshold:
        return PASS
    if ci_high is not None and ci_high < threshold:
        return FAIL
    return INCONCLUSIVE


def threshold_of(test: str, margin: float) -> float:
    return margin if test == "superiority" else -margin


def required_n(delta: dict, n: int, gap: float, alpha: float, power: float = POWER) -> int | None:
    """Test-set size that shows a true Δ `gap` beyond the threshold with `power` at one-sided
    level `alpha`, with the spread `delta`'s interval shows on its n examples (at its
    `confidence`): stats.bootstrap.required_n with a pilot's sd. The run asks it with gap = the
    margin (the true Δ one margin beyond the threshold, 0 for non-inferiority) at the plan's
    level (`planned_alpha`); `harness plan --pilot` asks the same function. None without an
    interval or a gap (no size shows a difference of 0)."""
    if delta.get("ci_low") is None or delta.get("ci_high") is None or not n or gap <= 0:
        return None
    sd = sd_from_interval(delta["ci_low"], delta["ci_high"], n, delta["confidence"])
    return stats_required_n(gap, sd=sd, alpha=alpha, power=power)


def planned_alpha(confidence: float, m: int, correction: str) -> float:
    """The one-sided level a hypothesis is sized at: α = (1 − confidence) / 2, divided by the
    number of hypotheses under Holm (its first step, the level every hypothesis is sure to get)."""
    alpha = (1 - confidence) / 2
    return alpha / m if correction == "holm" and m > 1 else alpha


def fingerprint(hypothesis: dict | None) -> str | None:
    """Stable short hash of (metric, test, margin, confidence): the pre-registration."""
    if not hypothesis:
        return None
    keys = ("metric", "test", "margin", "confidence")
    canonical = json.dumps({k: hypothesis.get(k) for k in keys}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def one_sided_p(d: dict | None, confidence: float, side: str = "lower") -> float:
    """p-value of "Δ ≤ threshold" (side="upper": of "Δ ≥ threshold", what a fail rejects): the
    level at which the interval's one-sided bound would just reach the threshold, by the
    interval's own method. A paired 0/1 delta carries its table and is inverted exactly
    (harness.stats.paired.newcombe_p); a bootstrap interval is read as a normal one. 1.0
    without an interval, or with a zero-width one (no spread measured)."""
    if not d or d.get("value") is None or d.get("ci_low") is None or d.get("ci_high") is None:
        return 1.0
    if d["ci_high"] - d["ci_low"] <= 1e-12:
        return 1.0
    if d.get("table") is not None:
        from harness.stats.paired import newcombe_p

        return newcombe_p(d["table"], d["threshold"], side)
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    se = (d["ci_high"] - d["ci_low"]) / (2 * z)
    lower = 1 - NormalDist().cdf((d["value"] - d["threshold"]) / se)
    return lower if side == "lower" else 1 - lower


def reuse_iterations(hypotheses) -> int:
    """How many iterations a lineage may select on the same test examples: the largest
    `max_iterations` among the hypotheses (1 without one). Each iteration's pass is tested at
    α / this (Bonferroni over the iterations), so a lineage that tries every one of them with a
    candidate that truly misses the margin passes at most α of the time
    (benchmarks/guard_reuse.py)."""
    return max((h.max_iterations or 1 for h in hypotheses), default=1)


def spending_levels(alpha: float, looks: int) -> list[float]:
    """One-sided level of each of `looks` equally spaced looks under an O'Brien–Fleming-type
    alpha-spending function (Lan–DeMets: α(t) = 2 − 2Φ(z_{1−α/2} / √t), α(1) = α), each look
    testing at the increment it spends. By the union bound the chance of any false pass over
    all looks is at most the sum, α, however the looks correlate (conservative: an exact
    group-sequential boundary would give the last look a little more). Early looks spend
    almost nothing, so only a large effect stops the run early."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    spent = [2 - 2 * NormalDist().cdf(z / math.sqrt(k / looks)) for k in range(1, looks + 1)]
    return [spent[0]] + [b - a for a, b in zip(spent, spent[1:], strict=False)]


def look_sizes(n: int, looks: int) -> list[int]:
    """Test examples seen by each look: equal steps, the last look the whole set."""
    return [max(1, math.ceil(n * k / looks)) for k in range(1, looks + 1)]


def holm(
    verdicts: dict[str, dict],
    correction: str = "holm",
    alpha: float | None = None,
    family: int | None = None,
) -> None:
    """Holm's step-down over the hypotheses' passes, family-wise at one-sided α = the smallest
    (1 − confidence) / 2 among them.

    Exactly Holm on the one-sided p-values (`one_sided_p`, each from its own interval): with r
    hypotheses left, every one with p ≤ α/r is a pass (the smallest would be, and each pass only
    raises the next level α/(r−1)), then r shrinks; the first step with none stops. A pass the
    CI showed but Holm did not becomes inconclusive; fail (the upper bound below the threshold)
    is not a pass claim and stays. One hypothesis: α/1, the plain rule; `correction: none`: each
    at its own α. `alpha`: the family's level when it is not the confidence's (a sequential
    look's share of it, `spending_levels`); then a pass needs p ≤ its step even alone. Each
    verdict gets {"m", "correction", "alpha", "p_value", "planned_alpha"}. `family`: the size of
    the registered family when this run evaluates only some of it (`--variant`): the others
    count as never passing (p = 1), so each evaluated one is tested at the family's levels.
    """
    m = max(len(verdicts), family or 0)
    unseen = m - len(verdicts)
    conf = {n: v["delta"].get("confidence") or 0.95 for n, v in verdicts.items()}
    ps = {
        n: 1.0 if "error_rate" in v["flags"] else one_sided_p(v["delta"], conf[n])
        for n, v in verdicts.items()
    }
    if correction == "none" or m <= 1:
        for n, v in verdicts.items():
            a = (1 - conf[n]) / 2 if alpha is None else alpha
            v["holm"] = {
                "m": m,
                "correction": "none" if m > 1 else correction,
                "alpha": a,
                "p_value": ps[n],
                "planned_alpha": a,
            }
            if alpha is not None and v["status"] == PASS and ps[n] > a:
                v["status"] = v["verdict"] = INCONCLUSIVE
        return
    if alpha is None:
        alpha = min((1 - c) / 2 for c in conf.values())
    left = set(verdicts)
    level = {n: alpha / m for n in verdicts}
    while left:
        step = alpha / (len(left) + unseen)
        passed = {n for n in left if ps[n] <= step}
        for n in left:
            level[n] = step
        if not passed:
            break
        left -= passed
    for n, v in verdicts.items():
        v["holm"] = {
            "m": m,
            "correction": "holm",
            "alpha": level[n],
            "p_value": ps[n],
            "planned_alpha": alpha / m,
        }
        if v["status"] == PASS and n in left:
            v["status"] = v["verdict"] = INCONCLUSIVE


def enough_information(delta: dict, alpha: float) -> bool:
    """Can this look's boundary act on the delta at all? Not on a zero-width or degenerate
    interval, nor on a paired 0/1 table with fewer discordant pairs than a one-sided level
    `alpha` needs (harness.stats.paired.min_discordant: 18 at O'Brien–Fleming's first of four
    looks) — agreement on the first slice says the models are alike there, not by how much
    they differ."""
    lo, hi = delta.get("ci_low"), delta.get("ci_high")
    if lo is None or hi is None or delta.get("degenerate") or hi - lo <= 1e-12:
        return False
    table = delta.get("table")
    if table is not None:
        from harness.stats.paired import min_discordant

        return table[1] + table[2] >= min_discordant(alpha)
    return True


def decided_at_look(verdicts: dict[str, dict], correction: str, alpha: float) -> bool:
    """A sequential look: is every hypothesis decided at this look's one-sided `alpha`? A pass
    needs Holm's step at `alpha` (as the last look's verdict would); a fail, the upper side's
    p ≤ alpha / m (stopping for a fail never adds a false pass); both by the interval's own
    method at that level (`one_sided_p`), and only on a look with enough information to act
    on (`enough_information`). One the run cannot judge (no delta, provider errors) keeps the
    run going. Runs `holm` on `verdicts`."""
    if not verdicts:
        return False
    holm(verdicts, correction, alpha=alpha)
    m = len(verdicts)
    for v in verdicts.values():
        if "error_rate" in v["flags"] or v["delta"].get("value") is None:
            return False
        if not enough_information(v["delta"], alpha / m):
            return False
        if v["verdict"] == PASS:
            continue
        upper_p = one_sided_p(v["delta"], v["delta"].get("confidence") or 0.95, "upper")
        if not (v["status"] == FAIL and upper_p <= alpha / m):
            return False
    return True
