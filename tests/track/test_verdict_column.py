"""The verdict column of a variant's MLflow row when a `guard:` list tests it more than once:
each verdict is named so a reader can tell the hypotheses apart — by metric, and by baseline
too when two hypotheses share the metric (ft-mini on macro_f1 vs gpt-4o and vs few-shot-mini)."""

from __future__ import annotations

from harness.track.readable import variant_verdict


def _hyp(key, baseline, metric):
    return {"key": key, "candidate": "ft-mini", "baseline": baseline, "metric": metric}


def test_two_hypotheses_on_one_metric_name_their_baselines():
    summary = {
        "baseline": "gpt-4o",
        "hypotheses": [
            _hyp("ft-mini vs gpt-4o", "gpt-4o", "macro_f1"),
            _hyp("ft-mini vs few-shot-mini", "few-shot-mini", "macro_f1"),
        ],
    }
    verdicts = {"ft-mini vs gpt-4o": "pass", "ft-mini vs few-shot-mini": "fail"}
    assert variant_verdict(summary, "ft-mini", verdicts) == (
        "macro_f1 vs gpt-4o: pass · macro_f1 vs few-shot-mini: fail"
    )


def test_hypotheses_on_different_metrics_are_named_by_metric():
    summary = {
        "baseline": "gpt-4o",
        "hypotheses": [
            _hyp("ft-mini vs gpt-4o (macro_f1)", "gpt-4o", "macro_f1"),
            _hyp("ft-mini vs gpt-4o (net_monthly_value)", "gpt-4o", "net_monthly_value"),
        ],
    }
    verdicts = {
        "ft-mini vs gpt-4o (macro_f1)": "inconclusive",
        "ft-mini vs gpt-4o (net_monthly_value)": "fail",
    }
    assert variant_verdict(summary, "ft-mini", verdicts) == (
        "macro_f1: inconclusive · net_monthly_value: fail"
    )
