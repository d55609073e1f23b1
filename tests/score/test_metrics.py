"""Metrics vs scikit-learn/numpy on random and edge inputs, to 1e-9; registry and validation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from harness.errors import SuiteError
from harness.score import registry as M
from harness.score.metrics import mean_score, per_class
from harness.score.table import make_table

INVALID = "\x00invalid"
PRF = {
    "macro_f1": ("macro", 2),
    "micro_f1": ("micro", 2),
    "weighted_f1": ("weighted", 2),
    "macro_precision": ("macro", 0),
    "macro_recall": ("macro", 1),
}


def clf_records(true, pred, *, errors=(), repeats=1, ids=None):
    """Records for classification: pred None = unparseable; indices in `errors` are errors."""
    ids = ids or [f"ex{i:04d}" for i in range(len(true) // repeats)]
    recs = []
    for i, (t, p) in enumerate(zip(true, pred, strict=True)):
        err = "timeout" if i in errors else None
        recs.append(
            {
                "id": ids[i // repeats],
                "repeat": i % repeats,
                "parsed": None if err else p,
                "scores": {
                    "correct": float(err is None and p == t),
                    "format_ok": float(err is None and p is not None),
                },
                "error": err,
                "latency_ms": 100.0 + i,
                "tokens_in": 10 + i % 3,
                "tokens_out": 2,
                "cost_usd": 1e-5,
            }
        )
    targets = {}
    for i, t in enumerate(true):
        targets[ids[i // repeats]] = t
    return recs, targets


def sk(true, pred, average, which):
    classes = sorted(set(true) | {p for p in pred if p is not None})
    pred = [INVALID if p is None else p for p in pred]
    return precision_recall_fscore_support(
        true, pred, labels=classes, average=average, zero_division=0
    )[which]


def random_case(rng, n, k, p_none=0.1):
    labels = [f"c{j}" for j in range(k)] + ["ünï", "日本"]
    true = [labels[j] for j in rng.integers(0, len(labels), n)]
    pred = [
        None
        if rng.random() < p_none
        else (t if rng.random() < 0.6 else labels[rng.integers(0, len(labels))])
        for t in true
    ]
    return true, pred


@pytest.mark.parametrize("seed", range(8))
def test_classification_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    true, pred = random_case(rng, int(rng.integers(1, 300)), int(rng.integers(1, 12)))
    recs, targets = clf_records(true, pred)
    table = make_table(recs, targets)
    acc = M.compute("accuracy", table)
    assert acc.point() == pytest.approx(
        accuracy_score(true, [INVALID if p is None else p for p in pred]), abs=1e-12
    )
    # The vectorised combine on the summed counts is what the bootstrap uses: it must agree too.
    assert float(acc.combine(acc.stats.sum(0))) == pytest.approx(acc.point(), abs=1e-12)
    for name, (average, which) in PRF.items():
        res = M.compute(name, table)
        expected = sk(true, pred, average, which)
        assert res.point() == pytest.approx(expected, abs=1e-9), name
        assert float(res.combine(res.stats.sum(0))) == pytest.approx(expected, abs=1e-9), name


@pytest.mark.parametrize("seed", range(5))
def test_combine_on_resample_matches_sklearn_on_resampled_examples(seed):
    """The bootstrap's macro-F1 of a resample = sklearn's macro-F1 on those examples."""
    rng = np.random.default_rng(100 + seed)
    true, pred = random_case(rng, 80, 6, p_none=0.2)
    recs, targets = clf_records(true, pred)
    table = make_table(recs, targets)
    # Examples are in id order; ids were zero-padded in input order, so rows line up.
    for name, (average, which) in PRF.items():
        res = M.compute(name, table)
        for _ in range(5):
            idx = rng.integers(0, len(true), len(true))
            got = float(res.combine(res.stats[idx].sum(0)))
            expected = sk([true[i] for i in idx], [pred[i] for i in idx], average, which)
            assert got == pytest.approx(expected, abs=1e-9), name


def test_per_class_matches_sklearn():
    true = ["a", "b", "a", "c", "ü", "ü"]
    pred = ["a", "a", None, "c", "ü", "b"]
    recs, targets = clf_records(true, pred)
    pc = per_class(make_table(recs, targets))
    p, r, f, s = precision_recall_fscore_support(
        true,
        [INVALID if x is None else x for x in pred],
        labels=["a", "b", "c", "ü"],
        zero_division=0,
    )
    assert list(pc) == ["a", "b", "c", "ü"]
    for i, c in enumerate(pc):
        assert pc[c] == {
            "precision": pytest.approx(p[i]),
            "recall": pytest.approx(r[i]),
            "f1": pytest.approx(f[i]),
            "support": int(s[i]),
        }


def test_edge_empty():
    table = make_table([], {"x": "a"})
    for name in ["accuracy", *PRF, "format_compliance", "consistency", "field_f1", "exact_record"]:
        assert M.value_of(M.compute(name, table)) is None, name
    for name in [
        "latency_p50",
        "latency_p95",
        "tokens_in",
        "tokens_out",
        "cost_per_example",
        "cost_per_1k",
    ]:
        assert M.compute(name, table) is None, name
    assert per_class(table) == {}


def test_edge_single_class_and_all_errors():
    true = ["only"] * 5
    recs, targets = clf_records(true, ["only"] * 5)
    t = make_table(recs, targets)
    assert M.value_of(M.compute("macro_f1", t)) == 1.0
    assert M.value_of(M.compute("accuracy", t)) == 1.0
    recs, targets = clf_records(true, ["only"] * 5, errors=range(5))
    t = make_table(recs, targets)
    for name, (average, which) in PRF.items():
        assert (
            M.value_of(M.compute(name, t))
            == pytest.approx(sk(true, [None] * 5, average, which))
            == 0.0
        )
    assert M.value_of(M.compute("accuracy", t)) == 0.0
    assert M.value_of(M.compute("format_compliance", t)) == 0.0


def test_errors_count_as_wrong_even_without_scores():
    recs, targets = clf_records(["a", "b"], ["a", "b"])
    recs[1]["scores"] = {}
    recs[1]["error"] = "timeout"
    assert M.value_of(M.compute("accuracy", make_table(recs, targets))) == 0.5


def test_repeats_and_consistency():
    # 3 examples x 3 repeats: ex0 always a (agree), ex1 a/b/a (disagree), ex2 error on one sample.
    true = ["a"] * 3 + ["b"] * 3 + ["a"] * 3
    pred = ["a", "a", "a", "a", "b", "a", "a", "a", "a"]
    recs, targets = clf_records(true, pred, repeats=3, errors={8})
    t = make_table(recs, targets)
    assert t.n_examples == 3 and t.n_records == 9
    assert M.value_of(M.compute("accuracy", t)) == pytest.approx(3 / 9 + 1 / 9 + 2 / 9)
    assert M.value_of(M.compute("consistency", t)) == pytest.approx(1 / 3)
    acc = M.compute("accuracy", t)
    assert not acc.binary and acc.stats.tolist() == [[3, 3], [1, 3], [2, 3]]
    # One sample per example: consistency is undefined.
    recs, targets = clf_records(["a"], ["a"])
    assert M.compute("consistency", make_table(recs, targets)) is None


def test_duplicate_record_after_resume_counts_once():
    recs, targets = clf_records(["a", "b"], ["a", "a"])
    again = dict(recs[1], parsed="b")
    t = make_table([*recs, again], targets)
    assert t.n_records == 2
    assert M.value_of(M.compute("accuracy", t)) == 1.0


def test_operational_metrics_match_numpy():
    rng = np.random.default_rng(3)
    lat = rng.exponential(200, 57)
    recs = [
        {
            "id": f"e{i}",
            "repeat": 0,
            "latency_ms": float(x),
            "tokens_in": int(i),
            "tokens_out": 3,
            "cost_usd": 0.002,
            "parsed": "a",
            "error": None,
        }
        for i, x in enumerate(lat)
    ]
    recs[5]["latency_ms"] = None  # not measured: ignored, not zero
    t = make_table(recs, {f"e{i}": "a" for i in range(57)})
    kept = np.delete(lat, 5)
    assert M.compute("latency_p50", t) == pytest.approx(np.percentile(kept, 50), abs=1e-9)
    assert M.compute("latency_p95", t) == pytest.approx(np.percentile(kept, 95), abs=1e-9)
    assert M.compute("tokens_in", t) == pytest.approx(np.mean(np.arange(57)))
    assert M.compute("tokens_out", t) == 3.0
    assert M.compute("cost_per_example", t) == pytest.approx(0.002)
    assert M.compute("cost_per_1k", t) == pytest.approx(2.0)
    # An error's latency is time to give up: left out. An unpriced call leaves the mean of the
    # priced ones (the summary reports the variant partial with the count); none priced: unknown.
    recs[0]["error"] = "timeout"
    recs[0]["latency_ms"] = 1e9
    t = make_table(recs, {f"e{i}": "a" for i in range(57)})
    assert M.compute("latency_p95", t) == pytest.approx(
        np.percentile(np.delete(lat, [0, 5]), 95), abs=1e-9
    )
    recs[1]["cost_usd"] = None
    t = make_table(recs, {f"e{i}": "a" for i in range(57)})
    assert M.compute("cost_per_1k", t) == pytest.approx(2.0)
    assert M.compute("cost_per_example", t) == pytest.approx(0.002)
    for r in recs:
        r["cost_usd"] = None
    t = make_table(recs, {f"e{i}": "a" for i in range(57)})
    assert M.compute("cost_per_1k", t) is None and M.compute("cost_per_example", t) is None


def test_extraction_field_metrics():
    rows = [(2, 0, 1, 0), (0, 1, 1, 0), (3, 0, 0, 1), (0, 0, 2, 0)]
    recs = [
        {
            "id": f"e{i}",
            "repeat": 0,
            "parsed": {},
            "error": None,
            "scores": {"field_tp": tp, "field_fp": fp, "field_fn": fn, "exact_record": ex},
        }
        for i, (tp, fp, fn, ex) in enumerate(rows)
    ]
    t = make_table(recs, {f"e{i}": {} for i in range(4)})
    tp, fp, fn = 5, 1, 4
    assert M.value_of(M.compute("field_precision", t)) == pytest.approx(tp / (tp + fp))
    assert M.value_of(M.compute("field_recall", t)) == pytest.approx(tp / (tp + fn))
    assert M.value_of(M.compute("field_f1", t)) == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert M.value_of(M.compute("exact_record", t)) == 0.25


def test_mean_score_metrics():
    recs = [
        {
            "id": f"e{i}",
            "repeat": 0,
            "error": None,
            "scores": {"exact_match": float(i % 2), "contains": 1.0, "regex": float(i < 1)},
        }
        for i in range(4)
    ]
    t = make_table(recs, {f"e{i}": "x" for i in range(4)})
    assert M.value_of(M.compute("exact_match", t)) == 0.5
    assert M.value_of(M.compute("contains", t)) == 1.0
    assert M.value_of(M.compute("regex", t, {"pattern": "x"})) == 0.25
    assert M.compute("exact_match", t).binary


def test_registry_one_function_one_line():
    @M.metric("share_long", tasks=("generation",))
    def share_long(table):
        """Share of outputs longer than 3 characters."""
        return mean_score(table, "long")

    try:
        assert M.lookup("share_long").doc == "Share of outputs longer than 3 characters."
        assert M.lookup("share_long").quality
    finally:
        M.REGISTRY.pop("share_long")


# ---------------------------------------------------------------- suite validation


def load(tmp_path, metrics: str, task="classification"):
    """A suite with these `metrics:`, validated against the registry as `harness run` does."""
    from harness.score.registry import validate_suite
    from harness.suite import load_suite

    (tmp_path / "t.csv").write_text("text,label\nhi,a\n")
    extra = "labels: from-data\n" if task == "classification" else ""
    (tmp_path / "s.yaml").write_text(
        f"name: s\ntask: {task}\n{extra}data: {{test: t.csv, input: text, target: label}}\n"
        f"metrics: {metrics}\ndefaults: {{model: openai/x, user: '{{{{ text }}}}'}}\nvariants: [{{name: a}}]\n"
    )
    return validate_suite(load_suite(tmp_path / "s.yaml"))


def test_unknown_metric_did_you_mean(tmp_path):
    with pytest.raises(SuiteError) as e:
        load(tmp_path, "[accuracy, macro_f]")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 's.yaml'}:5:")
    assert "metrics[1]: unknown metric 'macro_f' — did you mean 'macro_f1'?" in msg


def test_metric_for_wrong_task_and_bad_regex(tmp_path):
    with pytest.raises(SuiteError) as e:
        load(tmp_path, "[field_f1]")
    assert (
        "field_f1 is a extraction metric, not for task classification — use accuracy, macro_f1..."
        in str(e.value)
    )
    with pytest.raises(SuiteError) as e:
        load(tmp_path, "[exact_match, {regex: {pattern: '(unclosed'}}]", task="generation")
    assert (
        "metrics[1]: invalid regex '(unclosed': missing ), unterminated subpattern at position 0"
        in str(e.value)
    )
    with pytest.raises(SuiteError) as e:
        load(tmp_path, "[format_compliance]", task="generation")
    assert "format_compliance needs `output_schema:` for generation tasks" in str(e.value)


def test_valid_metrics_load(tmp_path):
    suite = load(
        tmp_path, "[accuracy, macro_f1, format_compliance, consistency, latency_p95, cost_per_1k]"
    )
    assert [M.entry_name(m)[0] for m in suite.spec.metrics][-1] == "cost_per_1k"
    assert M.entry_name({"regex": "^a"}) == ("regex", {"pattern": "^a"})


def test_registry_import_is_light():
    import subprocess
    import sys

    code = "import sys, harness.score.registry; print('sklearn' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("seed", range(4))
def test_field_metrics_match_sklearn_micro_over_slot_value_pairs(seed):
    """Field P/R/F1 = scikit-learn's micro average over "slot=value" items (multilabel)."""
    from sklearn.preprocessing import MultiLabelBinarizer

    from harness.score.scorer import field_counts

    rng = np.random.default_rng(seed)
    slots = ["people", "date", "time", "名前"]
    values = ["4", "7pm", "friday", "Zoë", None]
    golds, preds, recs = [], [], []
    for i in range(int(rng.integers(1, 60))):
        gold = {s: values[rng.integers(0, 4)] for s in slots if rng.random() < 0.6}
        pred = {
            s: (gold.get(s) if rng.random() < 0.6 else values[rng.integers(0, 5)])
            for s in slots
            if rng.random() < 0.7
        }
        tp, fp, fn = field_counts(pred, gold)
        recs.append(
            {
                "id": f"e{i}",
                "repeat": 0,
                "error": None,
                "scores": {"field_tp": tp, "field_fp": fp, "field_fn": fn},
            }
        )
        golds.append({f"{k}={v}" for k, v in gold.items() if v is not None})
        preds.append({f"{k}={v}" for k, v in pred.items() if v is not None})
    mlb = MultiLabelBinarizer().fit(golds + preds + [{"∅"}])
    p, r, f, _ = precision_recall_fscore_support(
        mlb.transform(golds), mlb.transform(preds), average="micro", zero_division=0
    )
    t = make_table(recs, {f"e{i}": {} for i in range(len(recs))})
    assert M.value_of(M.compute("field_precision", t)) == pytest.approx(p, abs=1e-9)
    assert M.value_of(M.compute("field_recall", t)) == pytest.approx(r, abs=1e-9)
    assert M.value_of(M.compute("field_f1", t)) == pytest.approx(f, abs=1e-9)


def test_compute_runs_a_metric_once_per_table(monkeypatch):
    """summary.py asks for the baseline's metrics for every variant's delta: computed once."""
    calls = []
    original = M.REGISTRY["accuracy"].fn

    def counting(table):
        calls.append(table)
        return original(table)

    monkeypatch.setattr(M.REGISTRY["accuracy"], "fn", counting)
    recs = [{"id": "e1", "repeat": 0, "parsed": "a", "error": None, "scores": {}}]
    t = make_table(recs, {"e1": "a"}, ["a", "b"])
    assert M.compute("accuracy", t) is M.compute("accuracy", t)
    assert len(calls) == 1
    M.compute("accuracy", make_table(recs, {"e1": "a"}, ["a", "b"]))
    assert len(calls) == 2
