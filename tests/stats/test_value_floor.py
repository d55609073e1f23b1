"""The dollar interval cannot ignore the error rates it prices: examples on which both variants
are right (no discordant error) must not make the net saving look certain."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import norm

from harness.score.table import Table
from harness.stats import value as V


def _suite(volume=100_000, error_cost=5.0):
    return SimpleNamespace(
        task="classification",
        spec=SimpleNamespace(
            value=SimpleNamespace(error_cost_usd=error_cost, per_class=None, amortise_months=12),
            volume=SimpleNamespace(monthly_requests=volume),
        ),
        variant=lambda name: SimpleNamespace(training=None),
    )


def _table(costs, parsed, targets):
    n = len(costs)
    recs = [{"cost_usd": c, "parsed": p, "error": None} for c, p in zip(costs, parsed, strict=True)]
    return Table(ids=[f"e{i}" for i in range(n)], ex=np.arange(n), records=recs, targets=targets)


def test_three_concordant_examples_do_not_pin_the_saving():
    # Both right on all 3 examples; the candidate is cheaper by ~$0.001 a request. The API part
    # varies a little, the error part not at all, yet error rates on 3 examples are unknown to
    # ±z²/(n+z²) (Newcombe's interval of a fully concordant table): 56 points × $5 × 100k.
    targets = ["a", "b", "a"]
    base = _table([0.0020, 0.0021, 0.0022], ["a", "b", "a"], targets)
    cand = _table([0.0010, 0.0010, 0.0012], ["a", "b", "a"], targets)
    d = V.value_delta(_suite(), "base", base, "cand", cand, confidence=0.95, B=2000, seed=0)
    z2 = norm.ppf(0.975) ** 2
    error_half = 100_000 * 5.0 * z2 / (3 + z2)
    assert d["value"] == pytest.approx(100_000 * 0.0011 / 1, rel=0.2)
    assert d["ci_low"] <= d["value"] - error_half + 1e-6
    assert d["ci_high"] >= d["value"] + error_half - 1e-6
