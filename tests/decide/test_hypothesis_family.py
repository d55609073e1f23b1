"""Several hypotheses in one suite (harness.decide.guard over suite.hypotheses()): Holm across
them against statsmodels, `correction: none`, moved goalposts per hypothesis, the lineage's
ledger once however many hypotheses name it, and the alpha-spending levels of a sequential run."""

from __future__ import annotations

import math

import numpy as np
import pytest
from guard_fixtures import BASE_SUITE, decided, make_suite
from scipy.stats import norm
from statsmodels.stats.multitest import multipletests

from harness.decide.rule import look_sizes, spending_levels

VARIANTS = [
    {"name": "base", "model": "openai/gpt-4o"},
    *[
        {
            "name": f"ft{i}",
            "kind": "fine-tuned",
            "model": f"openai/ft:gpt-4o-mini:acme::v{i}",
            "base_model": "openai/gpt-4o-mini",
            "training": {"cost_usd": 10.0},
        }
        for i in range(5)
    ],
]


def family_suite(tmp_path, correction="holm", margin=0.05):
    guard = [
        {"candidate": f"ft{i}", "metric": "macro_f1", "margin": margin, "correction": correction}
        for i in range(5)
    ]
    return make_suite(tmp_path, guard=None, variants=VARIANTS, guard_list=guard)


def summary_with(deltas: list[tuple[float, float, float]], n=200) -> dict:
    def variant(d=None):
        v = {"n_examples": n, "n_calls": n, "n_errors": 0, "error_rate": 0.0, "cost_usd": 1.0}
        v["spent_usd"], v["metrics"] = 1.0, {}
        if d:
            v["delta"] = {"macro_f1": {"value": d[0], "ci_low": d[1], "ci_high": d[2]}}
        return v

    return {
        "suite": "guarded",
        "run_id": "now",
        "baseline": "base",
        "n_examples": n,
        "variants": {"base": variant(), **{f"ft{i}": variant(d) for i, d in enumerate(deltas)}},
    }


def _interval(value: float, se: float) -> tuple[float, float, float]:
    z = norm.ppf(0.975)
    return (value, value - z * se, value + z * se)


def test_holm_over_a_guard_list_matches_statsmodels(tmp_path):
    suite = family_suite(tmp_path)
    rng = np.random.default_rng(18)
    for _ in range(40):
        values = rng.uniform(0.0, 0.2, size=5)
        s = decided(suite, summary_with([_interval(v, 0.03) for v in values]), [])
        verdicts = s["guard"]["verdicts"]
        ps = [verdicts[f"ft{i}"]["holm"]["p_value"] for i in range(5)]
        assert ps == pytest.approx([1 - norm.cdf((v - 0.05) / 0.03) for v in values])
        reject, *_ = multipletests(ps, alpha=0.025, method="holm")
        passed = [verdicts[f"ft{i}"]["verdict"] == "pass" for i in range(5)]
        assert passed == list(reject)
        for v in verdicts.values():
            assert v["holm"]["m"] == 5
            assert "(Holm across 5 hypotheses: tested at one-sided α = " in v["sentence"]


def test_correction_none_tests_each_at_its_own_level(tmp_path):
    suite = family_suite(tmp_path, correction="none")
    # p ≈ 0.02 for each: every one passes alone, none would after Holm at 0.025/5.
    d = _interval(0.05 + norm.ppf(0.98) * 0.03, 0.03)
    s = decided(suite, summary_with([d] * 5), [])
    assert {v["verdict"] for v in s["guard"]["verdicts"].values()} == {"pass"}
    (tmp_path / "h").mkdir()
    s = decided(family_suite(tmp_path / "h"), summary_with([d] * 5), [])
    assert {v["verdict"] for v in s["guard"]["verdicts"].values()} == {"inconclusive"}
    # And the size that would decide is the plan's: at α/5 (harness.check.plan).
    assert s["guard"]["verdicts"]["ft0"]["holm"]["planned_alpha"] == pytest.approx(0.005)


def test_a_single_guard_mapping_is_unchanged(tmp_path):
    """`guard:` as a mapping: summary["hypothesis"] and the verdict keys as before."""
    suite = make_suite(tmp_path)
    assert [h.key for h in suite.hypotheses()] == ["ft"]
    assert suite.hypothesis() == {
        "metric": "macro_f1",
        "test": "superiority",
        "margin": 0.05,
        "confidence": 0.95,
    }


def test_goalposts_are_per_hypothesis_and_the_ledger_per_lineage(tmp_path):
    raw_guard = [
        {"candidate": "ft0", "metric": "macro_f1", "margin": 0.05, "max_iterations": 3},
        {"candidate": "ft0", "metric": "accuracy", "margin": 0.02},
    ]
    suite = make_suite(tmp_path, guard=None, variants=VARIANTS[:2], guard_list=raw_guard)
    assert [h.key for h in suite.hypotheses()] == [
        "ft0 vs base (macro_f1)",
        "ft0 vs base (accuracy)",
    ]
    registered = {
        "hypotheses": [
            {
                "key": "ft0 vs base (macro_f1)",
                "metric": "macro_f1",
                "test": "superiority",
                "margin": 0.08,
                "confidence": 0.95,
            },
            {
                "key": "ft0 vs base (accuracy)",
                "metric": "accuracy",
                "test": "superiority",
                "margin": 0.02,
                "confidence": 0.95,
            },
        ]
    }
    before = {
        "run_id": "r1",
        "start_time": 0,
        "hypothesis": registered,
        "ledger_entry": {"metric": "macro_f1", "variants": {}},
        "verdicts": {"ft0 vs base (macro_f1)": "fail", "ft0 vs base (accuracy)": "pass"},
    }
    s = summary_with([(0.1, 0.07, 0.13)])
    s["variants"]["ft0"]["delta"]["accuracy"] = {"value": 0.1, "ci_low": 0.07, "ci_high": 0.13}
    out = decided(suite, s, [before])
    f1, acc = out["guard"]["verdicts"].values()
    assert f1["moved_goalposts"]["changes"] == ["margin: 0.08 → 0.05"]
    assert acc["moved_goalposts"] is None  # its own registration did not move
    assert out["exit_code"] == 1
    # One lineage, however many hypotheses name it: its pass is not honest (one moved).
    entry = out["ledger_entry"]["variants"]["ft0"]
    assert entry["verdict"] == "pass" and entry["honest_pass"] is False
    assert f1["ledger"] == acc["ledger"]


def test_spending_levels_are_obrien_fleming_and_sum_to_alpha():
    levels = spending_levels(0.025, 4)
    z = norm.ppf(1 - 0.0125)
    cumulative = [2 - 2 * norm.cdf(z / math.sqrt(t)) for t in (0.25, 0.5, 0.75, 1.0)]
    assert np.cumsum(levels) == pytest.approx(cumulative)
    assert sum(levels) == pytest.approx(0.025)
    assert levels[0] < 1e-4 < levels[1] < levels[2] < levels[3]  # early looks spend little
    assert look_sizes(10, 4) == [3, 5, 8, 10]
    assert look_sizes(160, 4) == [40, 80, 120, 160]


def test_base_suite_fixture_untouched():
    assert "guard_list" not in BASE_SUITE


def test_a_p_value_too_small_to_print_reads_below_0_001_not_zero(tmp_path):
    # Δ 30 points 10 standard errors past the margin: the normal tail underflows to 0.0.
    suite = family_suite(tmp_path)
    deltas = [_interval(0.95, 0.03)] + [_interval(0.06, 0.03)] * 4
    verdicts = decided(suite, summary_with(deltas), [])["guard"]["verdicts"]
    assert verdicts["ft0"]["holm"]["p_value"] == 0.0
    assert verdicts["ft0"]["sentence"].endswith("p < 0.001). 1 iteration, $11 spent.")
    p = verdicts["ft1"]["holm"]["p_value"]
    assert f"p = {p:.3g})" in verdicts["ft1"]["sentence"]
