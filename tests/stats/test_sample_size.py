"""One sample-size method: `harness check`'s figure and a run's "~N test examples would decide"
agree for the same inputs, and N examples decide at about the intended 80%."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import norm

from harness.check.readiness import power_lines
from harness.decide.rule import planned_alpha
from harness.decide.rule import required_n as rule_required_n
from harness.stats import bootstrap as S
from harness.stats.bootstrap import required_n
from harness.suite import Hypothesis


def interval(value: float, sd: float, n: int, confidence: float) -> dict:
    """The two-sided interval at `confidence` of a mean difference with per-example sd `sd`."""
    half = norm.ppf((1 + confidence) / 2) * sd / math.sqrt(n)
    return {
        "value": value,
        "ci_low": value - half,
        "ci_high": value + half,
        "confidence": confidence,
    }


def run_required_n(delta: dict, n: int, margin: float, confidence: float, m: int = 1) -> int:
    """The run's "~N test examples would decide" for one of m hypotheses under Holm."""
    return rule_required_n(delta, n, margin, planned_alpha(confidence, m, "holm"))


def check_figure(margin: float, confidence: float) -> int:
    suite = SimpleNamespace(hypotheses=lambda: [_hypothesis(margin, confidence)], correction="holm")
    _, (_, _, text) = power_lines(suite, 10)
    return int(text.split("needs ≥ ")[1].split(" ")[0].replace(",", ""))


def _hypothesis(margin: float, confidence: float, key: str = "ft") -> Hypothesis:
    return Hypothesis(
        key=key,
        candidate=key,
        baseline="base",
        metric="accuracy",
        test="non-inferiority",
        margin=margin,
        confidence=confidence,
        max_iterations=None,
        budget_usd=None,
        max_error_rate=0.02,
        index=None,
    )


@pytest.mark.parametrize("margin", [0.03, 0.05, 0.1])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_check_and_run_give_the_same_n(margin, confidence):
    expected = math.ceil(((norm.ppf((1 + confidence) / 2) + norm.ppf(0.8)) * 0.5 / margin) ** 2)
    assert check_figure(margin, confidence) == required_n(margin, confidence=confidence)
    assert check_figure(margin, confidence) == expected
    # A run whose interval shows check's sd 0.5 says the same number, whatever its Δ and size.
    for value, n in [(-0.01, 300), (0.02, 1200)]:
        delta = interval(value, 0.5, n, confidence)
        assert run_required_n(delta, n, margin, confidence) == pytest.approx(expected, abs=1)
    # With the spread the run observes (sd 0.3), the method is the same with that sd.
    delta = interval(0.0, 0.3, 500, confidence)
    assert run_required_n(delta, 500, margin, confidence) == pytest.approx(
        required_n(margin, sd=0.3, confidence=confidence), abs=1
    )


def test_the_clinc_story_numbers_agree():
    # check: 3-point non-inferiority margin at 95%; run: an interval with the same spread.
    assert check_figure(0.03, 0.95) == 2181
    delta = interval(-0.028, 0.5, 400, 0.95)  # Δ near the threshold −0.03 used to say ~96k
    assert run_required_n(delta, 400, 0.03, 0.95) == pytest.approx(2181, abs=1)


def _pairs(rng, n: int, discordant: float) -> tuple[np.ndarray, np.ndarray]:
    """(baseline, variant) 0/1 scores with true Δ = 0: each discordant direction at
    discordant / 2, so the paired difference has sd sqrt(discordant)."""
    u = rng.random(n)
    a = (u < 0.6).astype(float)
    b = a.copy()
    b[(u >= 0.6) & (u < 0.6 + discordant / 2)] = 1.0  # variant right, baseline wrong
    flip = u < discordant / 2  # baseline right, variant wrong
    b[flip] = 0.0
    return a, b


def _passes(a, b, threshold: float, confidence: float, seed: int) -> tuple[bool, dict]:
    """The guard's rule on the summary's paired interval (percentile bootstrap)."""
    ones = np.ones((len(a), 1))
    boot = S.paired_bootstrap(
        np.hstack([a[:, None], ones]),
        _mean,
        np.hstack([b[:, None], ones]),
        _mean,
        confidence=confidence,
        B=1000,
        seed=seed,
    )
    return boot["ci_low"] >= threshold, boot


def _mean(sums):
    return sums[..., 0] / sums[..., 1]


def test_n_examples_decide_at_about_the_intended_rate():
    """Non-inferiority, margin 0.1, true Δ = 0: check's n (sd 0.5) and, from a pilot run's
    interval, the run's n (sd ~0.32) each pass about 80% of seeded replications."""
    rng = np.random.default_rng(20261201)
    margin, confidence, reps = 0.1, 0.95, 300
    n_check = required_n(margin, confidence=confidence)
    assert n_check == 197
    hits = sum(_passes(*_pairs(rng, n_check, 0.25), -margin, confidence, i)[0] for i in range(reps))
    assert 0.72 <= hits / reps <= 0.88

    pilot_n = 400
    _, pilot = _passes(*_pairs(rng, pilot_n, 0.1), -margin, confidence, 0)
    n_run = run_required_n({**pilot, "confidence": confidence}, pilot_n, margin, confidence)
    assert 60 <= n_run <= 100  # the true sd sqrt(0.1) gives 79
    hits = sum(_passes(*_pairs(rng, n_run, 0.1), -margin, confidence, i)[0] for i in range(reps))
    assert 0.70 <= hits / reps <= 0.90
