"""summarize(): the variants section of summary.json from scored records."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from sklearn.metrics import f1_score

from harness.data.dataset import load_dataset
from harness.score.scorer import make_scorer
from harness.stats.summary import summarize
from harness.suite import load_suite

LABELS = ["card_arrival", "pin_blocked", "exchange_rate", "café"]


def make_suite(
    tmp_path,
    n=40,
    metrics="[accuracy, macro_f1, format_compliance, consistency, latency_p95, cost_per_1k]",
    repeats=1,
):
    rng = random.Random(0)
    rows = [{"text": f"q{i}", "label": LABELS[rng.randrange(len(LABELS))]} for i in range(n)]
    (tmp_path / "test.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8"
    )
    (tmp_path / "s.yaml").write_text(
        "name: s\ntask: classification\nlabels: from-data\n"
        "data: {test: test.jsonl, input: text, target: label}\n"
        f"metrics: {metrics}\n"
        f"defaults: {{model: openai/x, user: '{{{{ text }}}}', repeats: {repeats}}}\n"
        "variants: [{name: base}, {name: cand}]\nbaseline: base\n"
        "guard: {metric: macro_f1, margin: 0.05, confidence: 0.9, applies_to: [cand]}\n",
        encoding="utf-8",
    )
    suite = load_suite(tmp_path / "s.yaml")
    return suite, load_dataset(suite)


def records_for(suite, data, answers, *, repeats=1, errors=()):
    """answers[i][r]: the label answered for example i, repeat r (None: error)."""
    sc = make_scorer(suite, data)
    out = []
    for i, e in enumerate(data.test):
        for r in range(repeats):
            a = answers[i][r]
            err = "timeout: after 3 attempts" if a is None or (i, r) in errors else None
            output = None if err else json.dumps({"intent": a}, ensure_ascii=False)
            out.append(
                {
                    "id": e.id,
                    "repeat": r,
                    "model": "m",
                    "output": output,
                    **sc.score(e, output, err),
                    "latency_ms": 100.0 + i,
                    "tokens_in": 50,
                    "tokens_out": 5,
                    "cost_usd": 0.001,
                    "cached": i % 4 == 0,
                    "error": err,
                }
            )
    return out


def noisy(data, p, seed, repeats=1):
    rng = random.Random(seed)
    return [
        [e.target if rng.random() < p else rng.choice(LABELS) for _ in range(repeats)]
        for e in data.test
    ]


def test_summary_fields_and_numbers(tmp_path):
    suite, data = make_suite(tmp_path)
    base = records_for(suite, data, noisy(data, 0.5, 1))
    cand_answers = noisy(data, 0.8, 2)
    cand_answers[3] = [None]  # an error
    cand = records_for(suite, data, cand_answers)
    s = summarize(suite, data, {"base": base, "cand": cand}, {"run_id": "r1", "started_at": "t0"})
    assert s["schema_version"] == 2 and s["run_id"] == "r1" and s["baseline"] == "base"
    assert s["metrics"] == [
        "accuracy",
        "macro_f1",
        "format_compliance",
        "consistency",
        "latency_p95",
        "cost_per_1k",
    ]
    assert s["hypothesis"] == {
        "metric": "macro_f1",
        "test": "superiority",
        "margin": 0.05,
        "confidence": 0.9,
    }
    c = s["variants"]["cand"]
    assert (c["n_examples"], c["n_calls"], c["n_errors"], c["error_rate"]) == (40, 40, 1, 1 / 40)
    assert (
        c["cached_calls"] == 10
        and c["cost_usd"] == pytest.approx(0.04)
        and c["tokens_in"] == 39 * 50  # answered calls only
    )
    assert c["errors_by_reason"] == {"timeout": 1}
    true = [e.target for e in data.test]
    pred = [a[0] if a[0] is not None else "\x00" for a in cand_answers]
    m = c["metrics"]
    assert m["accuracy"]["value"] == pytest.approx(
        np.mean([p == t for p, t in zip(pred, true, strict=True)])
    )
    labels = sorted(set(true) | {p for p in pred if p != "\x00"})
    assert m["macro_f1"]["value"] == pytest.approx(
        f1_score(true, pred, labels=labels, average="macro", zero_division=0), abs=1e-9
    )
    assert m["macro_f1"]["ci_low"] < m["macro_f1"]["value"] < m["macro_f1"]["ci_high"]
    assert m["format_compliance"]["value"] == pytest.approx(39 / 40)
    assert m["consistency"] == {"value": None, "ci_low": None, "ci_high": None}  # needs repeats
    assert m["latency_p95"]["ci_low"] is None and m["latency_p95"]["value"] == pytest.approx(
        np.percentile(np.delete(100 + np.arange(40), 3), 95)
    )
    assert m["cost_per_1k"]["value"] == pytest.approx(1.0)
    assert set(c["per_class"]) <= set(LABELS) and all(
        v["support"] >= 0 for v in c["per_class"].values()
    )
    assert "delta" not in s["variants"]["base"]
    d = c["delta"]
    assert set(d) == set(s["metrics"])
    assert d["accuracy"]["value"] == pytest.approx(
        m["accuracy"]["value"] - s["variants"]["base"]["metrics"]["accuracy"]["value"]
    )
    assert d["accuracy"]["p_method"] == "mcnemar-exact" and 0 <= d["accuracy"]["p_value"] <= 1
    assert d["macro_f1"]["confidence"] == 0.9 and d["accuracy"]["confidence"] == 0.95
    assert d["macro_f1"]["ci_low"] <= d["macro_f1"]["value"] <= d["macro_f1"]["ci_high"]
    base_p95 = s["variants"]["base"]["metrics"]["latency_p95"]["value"]
    assert d["latency_p95"]["ci_low"] is None
    assert d["latency_p95"]["value"] == pytest.approx(m["latency_p95"]["value"] - base_p95)
    json.dumps(s)  # serialisable as is


def test_all_errors_variant(tmp_path):
    suite, data = make_suite(tmp_path, n=10)
    base = records_for(suite, data, noisy(data, 0.7, 1))
    cand = records_for(suite, data, [[None]] * 10)
    c = summarize(suite, data, {"base": base, "cand": cand}, {})["variants"]["cand"]
    assert c["n_errors"] == 10 and c["error_rate"] == 1.0
    assert c["metrics"]["accuracy"]["value"] == 0.0 and c["metrics"]["macro_f1"]["value"] == 0.0
    assert c["metrics"]["format_compliance"]["value"] == 0.0
    # No answered call: no cost figure (never $0, the cheapest variant).
    assert c["cost_per_request"] is None and c["cost_usd"] is None
    assert c["metrics"]["cost_per_1k"]["value"] is None
    assert c["delta"]["accuracy"]["value"] == pytest.approx(
        -summarize(suite, data, {"base": base}, {})["variants"]["base"]["metrics"]["accuracy"][
            "value"
        ]
    )


def test_repeats_cluster_and_consistency(tmp_path):
    suite, data = make_suite(tmp_path, n=30, repeats=3)
    answers = noisy(data, 0.6, 5, repeats=3)
    s = summarize(suite, data, {"base": records_for(suite, data, answers, repeats=3)}, {})
    b = s["variants"]["base"]
    agree = np.mean([len(set(a)) == 1 for a in answers])
    assert b["n_calls"] == 90 and b["n_examples"] == 30
    assert b["metrics"]["consistency"]["value"] == pytest.approx(agree)
    assert (
        b["metrics"]["accuracy"]["ci_low"]
        < b["metrics"]["accuracy"]["value"]
        < b["metrics"]["accuracy"]["ci_high"]
    )


def test_only_common_examples_are_paired(tmp_path):
    suite, data = make_suite(tmp_path, n=20)
    base = records_for(suite, data, noisy(data, 0.5, 1))
    cand = records_for(suite, data, [[e.target] for e in data.test])[:15]  # unfinished run
    c = summarize(suite, data, {"base": base, "cand": cand}, {})["variants"]["cand"]
    common_base = [r for r in base if r["id"] in {x["id"] for x in cand}]
    base_acc = np.mean([r["scores"]["correct"] for r in common_base])
    assert c["n_examples"] == 15
    assert c["delta"]["accuracy"]["value"] == pytest.approx(1 - base_acc)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), p=st.floats(0.2, 0.9))
def test_property_permutation_invariant_and_perfect_gap(tmp_path, seed, p):
    suite, data = make_suite(tmp_path, n=25, metrics="[accuracy, macro_f1, format_compliance]")
    base = records_for(suite, data, noisy(data, p, seed))
    perfect = records_for(suite, data, [[e.target] for e in data.test])
    s1 = summarize(suite, data, {"base": base, "cand": perfect}, {})
    shuffled = {"base": base[:], "cand": perfect[:]}
    random.Random(seed).shuffle(shuffled["base"])
    random.Random(seed + 1).shuffle(shuffled["cand"])
    s2 = summarize(suite, data, shuffled, {})
    assert s1["variants"] == s2["variants"]  # permuting examples changes nothing
    base_acc = s1["variants"]["base"]["metrics"]["accuracy"]["value"]
    d = s1["variants"]["cand"]["delta"]["accuracy"]
    assert d["value"] == pytest.approx(1 - base_acc)
    assert d["ci_low"] <= 1 - base_acc <= d["ci_high"]
    if base_acc < 1:
        assert d["ci_low"] < d["ci_high"]


def test_a_floored_interval_stays_within_the_rates_possible_range(tmp_path):
    """All-right baseline vs all-wrong candidate: every bootstrap resample gives −100 pts, so
    the degenerate floor widens it by z²/(n + z²) = 10.1 pts at 24 examples and 90% — but a
    difference of two rates cannot be below −100 pts: [−100.0, −89.9], not [−110.1, −89.9]."""
    from harness.stats.numbers import with_ci

    suite, data = make_suite(tmp_path, n=24)
    right = records_for(suite, data, [[e.target] for e in data.test])
    wrong = [[next(x for x in LABELS if x != e.target)] for e in data.test]
    s = summarize(suite, data, {"base": right, "cand": records_for(suite, data, wrong)}, {})
    d = s["variants"]["cand"]["delta"]["macro_f1"]
    z = norm.ppf(1 - (1 - 0.9) / 2)  # the guard's confidence on macro_f1
    half = z**2 / (24 + z**2)
    assert d["degenerate"] is True and d["value"] == pytest.approx(-1.0)
    assert d["confidence"] == 0.9
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((-1.0, -1.0 + half), abs=1e-6)
    assert with_ci(d, "macro_f1", delta=True) == "−100.0 pts [−100.0, −89.9]"
    # Each variant's own figure stays within 0–100%.
    for v in s["variants"].values():
        m = v["metrics"]["macro_f1"]
        assert 0.0 <= m["ci_low"] <= m["value"] <= m["ci_high"] <= 1.0


def test_a_cosine_keeps_its_own_range_minus_one_to_one(tmp_path):
    """embedding_cosine is a similarity in [−1, 1], not a rate: a negative mean keeps its
    interval around it (not cut to [0, 0], the point outside its own interval), and a
    difference of two cosines may pass −100 pts (its range is ±2)."""
    suite, data = make_suite(
        tmp_path, n=24, metrics="[macro_f1, {embedding_cosine: {model: openai/emb}}]"
    )
    right = [[e.target] for e in data.test]
    recs = {"base": records_for(suite, data, right), "cand": records_for(suite, data, right)}
    for i, r in enumerate(recs["cand"]):
        r["scores"]["embedding_cosine"] = -0.2 if i % 2 else -0.4
    for r in recs["base"]:
        r["scores"]["embedding_cosine"] = 0.9
    s = summarize(suite, data, recs, {})
    m = s["variants"]["cand"]["metrics"]["embedding_cosine"]
    assert m["value"] == pytest.approx(-0.3)
    assert -0.4 < m["ci_low"] < -0.3 < m["ci_high"] < -0.2
    d = s["variants"]["cand"]["delta"]["embedding_cosine"]
    assert d["value"] == pytest.approx(-1.2)
    assert d["ci_low"] < -1.2 < d["ci_high"] < -1.0
