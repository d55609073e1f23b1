"""CONTRIBUTING's three how-tos, each done once and run through `harness run`'s pipeline:
a metric with an option, a variant kind, a retrieval method. Built-ins use the same paths."""

from __future__ import annotations

import pytest
from conftest import keyword_rag_suite, write_suite

from harness.errors import SuiteError
from harness.retrieve import indexes
from harness.run import RunOptions, run_suite
from harness.score.registry import validate_suite
from harness.suite import load_suite
from harness.suite.kinds import KINDS, RETRIEVAL_METHODS, Kind


def _run(path, tmp_path):
    return run_suite(path, RunOptions(runs_dir=tmp_path / "runs", workers=0, show_progress=False))


def test_a_metric_with_an_option_is_one_file_and_one_import(openai_server, tmp_path, fake_key):
    import starts_with_metric  # noqa: F401  (the one line: registers the metric)

    server = openai_server()
    path = write_suite(tmp_path, server.url, variants="\n  - name: zero-shot\n")
    text = path.read_text().replace(
        "metrics: [accuracy]",
        """metrics: [accuracy, {starts_with: {prefix: '{"intent": "card'}}]""",
    )
    path.write_text(text)
    summary = _run(path, tmp_path).summary
    got = summary["variants"]["zero-shot"]["metrics"]["starts_with"]
    # 12 questions, every third about a card arriving: the scripted model answers card_arrival.
    assert got["value"] == pytest.approx(4 / 12)
    assert got["ci_low"] < got["value"] < got["ci_high"]

    # Its options model validates the suite, with the file:line of the entry.
    path.write_text(text.replace("prefix:", "prefx:"))
    with pytest.raises(SuiteError) as e:
        validate_suite(load_suite(path))
    assert "metrics[1]: unknown option 'prefx' for starts_with — allowed: prefix" in str(e.value)
    assert f"{path}:" in str(e.value)


@pytest.fixture
def agent_kind(monkeypatch):
    monkeypatch.setitem(KINDS, "agent", Kind("agent"))


def test_a_variant_kind_is_one_table_entry(openai_server, tmp_path, fake_key, agent_kind):
    server = openai_server()
    path = write_suite(
        tmp_path, server.url, variants="\n  - name: zero-shot\n  - name: planner\n    kind: agent\n"
    )
    summary = _run(path, tmp_path).summary
    assert summary["variants"]["planner"]["kind"] == "agent"
    assert summary["variants"]["planner"]["metrics"]["accuracy"]["value"] == 1.0
    # Not a retrieving kind: retrieval settings on it are refused like on `kind: prompt`.
    path.write_text(path.read_text().replace("kind: agent", "kind: agent\n    retriever: x:y"))
    with pytest.raises(SuiteError, match="retrieval settings need `kind: rag`"):
        load_suite(path)


@pytest.fixture
def keyword_index(monkeypatch):
    """A toy method: chunks scored by how many query words they contain."""
    monkeypatch.setattr(indexes, "INDEXES", dict(indexes.INDEXES))
    monkeypatch.setattr(indexes, "_INDEXES", {})
    known = list(RETRIEVAL_METHODS)

    @indexes.index("keyword")
    class KeywordIndex(indexes.TextIndex):
        def __init__(self, texts):
            self.words = [set(t.lower().split()) for t in texts]

        def search(self, queries, k):
            out = []
            for q in queries:
                words = set(q.lower().split())
                scores = [(i, float(len(w & words))) for i, w in enumerate(self.words)]
                out.append(sorted((s for s in scores if s[1] > 0), key=lambda s: -s[1])[:k])
            return out

    yield KeywordIndex
    RETRIEVAL_METHODS[:] = known


def test_a_retrieval_method_is_one_registered_class(
    openai_server, tmp_path, fake_key, keyword_index
):
    server = openai_server()
    path = keyword_rag_suite(tmp_path, server.url)
    outcome = _run(path, tmp_path)
    records = outcome.records["rag"]
    by_text = {e.id: e.inputs["text"] for e in outcome.dataset.test}
    for r in records:
        question = by_text[r["id"]].lower()
        want = "docs/cards.md" if "card" in question else "docs/rates.md"
        assert [p["id"] for p in r["retrieved"]] == [want], question
    # Unregistered, the suite refuses the name with the list of methods.
    RETRIEVAL_METHODS.remove("keyword")
    with pytest.raises(SuiteError, match="expected one of 'bm25', 'tfidf', 'embedding' or 'gold'"):
        load_suite(path)
