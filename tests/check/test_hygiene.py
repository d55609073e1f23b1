import json
import random
import string

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from harness._util.text import fold as normalise
from harness.check import hygiene
from harness.check.hygiene import check_hygiene, find_overlap
from harness.cli import main
from harness.data.dataset import Example


def _sentences(n, seed=0):
    """Random-letter sentences: any two share almost no character n-grams (cosine < 0.1)."""
    rng = random.Random(seed)

    def word():
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 8)))

    return [" ".join(word() for _ in range(12)) for _ in range(n)]


def _ex(prefix, i, text, label="a"):
    return Example(id=f"{prefix}{i}", inputs={"text": text}, target=label)


def planted():
    train_texts = _sentences(60, seed=1)
    fresh = _sentences(20, seed=2)
    a, b = train_texts[3], train_texts[7]
    test_texts = [
        a.upper() + "!!",  # exact after normalisation (case, punctuation)
        "  " + b.replace(" ", "   ") + " ?",  # exact after normalisation (whitespace)
        train_texts[10][:20] + "x" + train_texts[10][21:],  # near: one-letter typo
        train_texts[20] + " please",  # near: one extra word
        *fresh,
    ]
    train = [_ex("tr", i, t) for i, t in enumerate(train_texts)]
    test = [_ex("te", i, t) for i, t in enumerate(test_texts)]
    return test, train


def test_normalise_folds_case_punctuation_and_whitespace():
    assert normalise("  What's the TOP-UP limit?\n") == "what s the top up limit"
    assert normalise("ﬁne") == "fine"  # NFKC ligature


def test_planted_exact_and_near_duplicates_are_found_exactly():
    test, train = planted()
    exact, near = find_overlap(test, train, threshold=0.9)
    assert [(p.test_id, p.train_id) for p in exact] == [("te0", "tr3"), ("te1", "tr7")]
    assert sorted((p.test_id, p.train_id) for p in near) == [("te2", "tr10"), ("te3", "tr20")]
    assert all(0.9 <= p.similarity < 1.0 for p in near)


def test_near_duplicates_match_a_dense_sklearn_reference_and_chunking(monkeypatch):
    test, train = planted()
    a = [normalise(e.inputs["text"]) for e in test]
    b = [normalise(e.inputs["text"]) for e in train]
    vec = TfidfVectorizer(analyzer="char", ngram_range=(3, 5)).fit(a + b)
    sims = cosine_similarity(vec.transform(a), vec.transform(b))
    for threshold in (0.9, 0.5, 0.05):
        ref = {(f"te{i}", f"tr{j}") for i, j in zip(*np.nonzero(sims >= threshold), strict=True)}
        ref -= {(f"te{i}", f"tr{j}") for i in range(len(a)) for j in range(len(b)) if a[i] == b[j]}
        monkeypatch.setattr(hygiene, "_CHUNK", 3)  # several chunks must give the same pairs
        _, near = find_overlap(test, train, threshold=threshold)
        assert {(p.test_id, p.train_id) for p in near} == ref
        got = {(p.test_id, p.train_id): p.similarity for p in near}
        for (ti, tj), s in got.items():
            assert s == pytest.approx(sims[int(ti[2:]), int(tj[2:])], abs=1e-5)


def test_missing_classes_and_imbalance_lines():
    train = [_ex("tr", i, f"t{i}", "a" if i < 50 else "b") for i in range(54)]
    test = [_ex("te", i, f"q{i}", "abc"[i % 3]) for i in range(9)]
    report = check_hygiene(test, train, task="classification")
    assert report.missing_classes == ["c"]
    lines = {name: (status, detail) for status, name, detail in report.lines()}
    assert lines["classes missing from train"] == (
        "warn",
        "1 test class(es) never appear in train: c",
    )
    assert lines["train label balance"] == (
        "warn",
        "2 classes, 4–50 examples per class (largest/smallest 12.5; smallest 'b') — imbalanced: "
        "report macro-F1 and per-class scores",
    )
    assert lines["test label balance"][0] == "pass"


def _write_suite(tmp_path, test_rows, train_rows):
    for name, rows in (("test", test_rows), ("train", train_rows)):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    path = tmp_path / "suite.yaml"
    path.write_text(
        """
name: hyg
task: classification
data: {test: test.jsonl, train: train.jsonl, input: text, target: label}
labels: from-data
metrics: [accuracy]
defaults: {model: openai/gpt-4o-mini, user: "{{ text }}"}
variants: [{name: a}]
"""
    )
    return path


def test_check_lists_the_pairs_and_the_threshold_option_changes_them(tmp_path):
    test, train = planted()
    path = _write_suite(
        tmp_path,
        [{"text": e.inputs["text"], "label": "a"} for e in test],
        [{"text": e.inputs["text"], "label": "a"} for e in train],
    )
    result = CliRunner().invoke(main, ["check", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)["hygiene"]
    assert len(data["exact_duplicates"]) == 2
    assert len(data["near_duplicates"]) == 2
    assert data["near_dup_threshold"] == 0.9
    text = CliRunner().invoke(main, ["check", str(path)]).output
    assert (
        "! exact duplicates: 2 pair(s) over 2 test example(s) (identical after normalisation)"
        in text
    )
    assert "! near duplicates: 2 pair(s) over 2 test example(s) (char n-gram cosine ≥ 0.9)" in text
    strict = CliRunner().invoke(
        main, ["check", str(path), "--near-dup-threshold", "0.99", "--json"]
    )
    assert json.loads(strict.output)["hygiene"]["near_duplicates"] == []
    bad = CliRunner().invoke(main, ["check", str(path), "--near-dup-threshold", "1.5"])
    assert bad.exit_code == 2
