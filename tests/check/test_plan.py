"""`harness plan`: the test-set size of each hypothesis, by the method behind the run's
"~N test examples would decide" (one method: the two never contradict), and that size decides
at about the chosen power (seeded simulation; benchmarks/guard_sequential.py has the big one)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from clinc_style import HYPOTHESES, VARIANTS, N, scripted
from conftest import write_suite
from scipy.stats import norm

from harness.check.plan import size
from harness.cli import main
from harness.decide.rule import classify, holm, planned_alpha
from harness.stats.bootstrap import paired_bootstrap
from harness.suite import Hypothesis


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and any relative output stay in the test's tmp_path."""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _closed_form(gap: float, alpha: float, sd: float = 0.5, power: float = 0.8) -> int:
    return math.ceil(((norm.ppf(1 - alpha) + norm.ppf(power)) * sd / gap) ** 2)


def test_plan_prints_each_hypothesis_at_holms_level(openai_server, tmp_path):
    server = openai_server(scripted)
    suite = write_suite(tmp_path, server.url, n=N, variants=VARIANTS, extra=HYPOTHESES)
    result = invoke("plan", suite)
    assert result.exit_code == 0, result.output
    n = _closed_form(0.30, 0.025 / 3)
    assert result.output.splitlines() == [
        f"plan for test-suite: {N} test examples now; 80% power; Holm across 3 hypotheses "
        "(each sized at α/3, the level it is sure to get)",
        "  ft-mini vs gpt-4o: accuracy non-inferiority margin 0.3 at 95% (one-sided α = "
        f"0.008333), sd 0.5 (assumed), true Δ +0.3 beyond the threshold → ≥ {n} test examples; "
        f"you have {N} — add {n - N}",
        "  few-shot-mini: few-shot-mini vs gpt-4o: accuracy non-inferiority margin 0.3 at 95% "
        f"(one-sided α = 0.008333), sd 0.5 (assumed), true Δ +0.3 beyond the threshold → ≥ {n} "
        f"test examples; you have {N} — add {n - N}",
        "  ft-mini vs few-shot-mini: net_monthly_value superiority margin 0 at 95% (one-sided "
        "α = 0.008333), cannot be sized: margin 0 — no test-set size shows a difference of 0; "
        "size it with `harness plan --expect-delta D`",
    ]
    assert server.requests == 0
    # --expect-delta: the gap is the expected Δ minus the threshold (−0.30 here).
    rows = json.loads(invoke("plan", suite, "--expect-delta", "-0.2", "--json").stdout)
    assert rows["hypotheses"][0]["n"] == _closed_form(0.10, 0.025 / 3)


def test_plan_with_a_pilot_says_what_the_run_said(openai_server, fake_key, tmp_path):
    server = openai_server(scripted)
    suite = write_suite(tmp_path, server.url, n=N, variants=VARIANTS, extra=HYPOTHESES)
    s = json.loads(invoke("run", suite, "--json").stdout)
    run_dir = next(Path("runs/test-suite").iterdir())
    rows = json.loads(invoke("plan", suite, "--pilot", run_dir, "--json").stdout)["hypotheses"]
    said = {k: v["required_n"] for k, v in s["guard"]["verdicts"].items()}
    decided_later = [r for r in rows if said[r["key"]] is not None]
    assert decided_later, said  # at least one inconclusive verdict to compare with
    for r in decided_later:
        assert r["n"] == said[r["key"]]
        assert r["sd_source"] == f"pilot run {s['run_id']}"
    result = invoke("plan", suite, "--pilot", tmp_path / "nope")
    assert result.exit_code == 2
    assert "no summary.json there" in result.output


def _hyp(key: str) -> Hypothesis:
    return Hypothesis(key, key, "base", "accuracy", "superiority", 0.05, 0.95, None, None, 0.02, 0)


def test_plan_n_decides_at_the_chosen_power_under_holm():
    """Three hypotheses, each with true Δ = margin + margin (one margin beyond the threshold):
    at the plan's n every one passes (Holm at one-sided 0.025) in about 80% of replications."""
    hyps = [_hyp(f"v{i}") for i in range(3)]
    row = size(hyps[0], m=3, correction="holm", power=0.8)
    assert row.alpha == pytest.approx(planned_alpha(0.95, 3, "holm")) == pytest.approx(0.025 / 3)
    n = row.n
    assert n == _closed_form(0.05, 0.025 / 3)
    rng = np.random.default_rng(181)
    reps, passes, total = 120, 0, 0
    # Paired 0/1 answers with P(only the variant right) = 0.18, P(only the base right) = 0.08:
    # Δ = 0.10 = threshold + margin and the paired difference's sd exactly the assumed 0.5.
    for rep in range(reps):
        verdicts = {}
        for i, h in enumerate(hyps):
            u = rng.random(n)
            diff = np.where(u < 0.18, 1.0, np.where(u < 0.26, -1.0, 0.0))
            base = np.c_[(diff < 0).astype(float), np.ones(n)]
            var = np.c_[(diff > 0).astype(float), np.ones(n)]
            d = paired_bootstrap(base, _mean, var, _mean, confidence=0.95, B=400, seed=rep * 3 + i)
            d = {**d, "threshold": 0.05, "confidence": 0.95}
            status = classify(d["ci_low"], d["ci_high"], 0.05)
            verdicts[h.key] = {"delta": d, "status": status, "verdict": status, "flags": []}
        holm(verdicts)
        passes += sum(v["verdict"] == "pass" for v in verdicts.values())
        total += 3
    # Sized at α/3 for 80%; Holm's later steps test at α/2 and α, so a little more.
    assert 0.74 <= passes / total <= 0.92, passes / total


def _mean(sums):
    return sums[..., 0] / sums[..., 1]


def test_a_pilot_without_spread_is_refused():
    """The issue's pilot: an interval [+0.0, +0.0] (a bootstrap of agreeing pairs, as summaries
    before Newcombe's interval wrote it) once sized the test set at "≥ 1 test examples"."""
    from harness.errors import SuiteError

    h = _hyp("ft")
    pilot = {
        "run_id": "r0",
        "baseline": "base",
        "n_examples": 50,
        "variants": {"ft": {"n_examples": 50, "delta": {"accuracy": {"value": 0.0}}}},
    }
    pilot["variants"]["ft"]["delta"]["accuracy"].update(ci_low=0.0, ci_high=0.0)
    with pytest.raises(SuiteError) as e:
        size(h, m=1, correction="holm", pilot=pilot)
    assert str(e.value) == (
        "--pilot: pilot run r0 shows no spread for ft on accuracy (interval [+0, +0] on 50 "
        "examples) — give a pilot run with more examples, or plan without --pilot"
    )
    # The same pilot with a degenerate (floored) bootstrap interval: refused too.
    pilot["variants"]["ft"]["delta"]["accuracy"].update(ci_low=-0.04, ci_high=0.04, degenerate=True)
    with pytest.raises(SuiteError, match="shows no spread for ft on accuracy"):
        size(h, m=1, correction="holm", pilot=pilot)
