"""RAG retrieval: chunking, built-in methods, user retrievers, errors, metrics, the pubmedqa suite."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.data.dataset import Example, load_dataset
from harness.errors import SuiteError
from harness.prompt.templates import render_messages
from harness.retrieve import (
    build_retriever,
    chunk_text,
    gold_hits,
    gold_ids,
    indexes,
    retrieval_metrics,
    validate_retrieval,
)
from harness.suite import load_suite

ROOT = Path(__file__).resolve().parents[2]

DOCS = {
    "docs/cards.md": "# Card delivery\nA new card arrives by post within five working days of the order.",
    "docs/pin.md": "# Blocked PIN\nAfter three wrong PIN entries the PIN is blocked; unblock it at any cash machine.",
    "docs/fx.txt": "Exchange rates: we convert foreign currency at the interbank rate plus a small margin.",
}

TEST_CSV = """question,answer,gold
When will my new card arrive by post?,five days,docs/cards.md
My PIN is blocked after wrong entries,cash machine,pin.md
What exchange rate do you use for foreign currency?,interbank,fx
"""

USER = "Context:\n{% for c in context %}{{ c.text }}\n{% endfor %}Q: {{ question }}"


def make_suite(
    tmp_path: Path, retrieval_yaml: str, *, docs=None, user: str = USER, extra: str = ""
) -> Path:
    for rel, text in (DOCS if docs is None else docs).items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    (tmp_path / "test.csv").write_text(TEST_CSV, encoding="utf-8")
    suite = f"""\
name: rag-test
task: generation
data: {{test: test.csv, input: question, target: answer, gold: gold}}
metrics: [exact_match]
defaults: {{model: openai/fake, user: "Q: {{{{ question }}}}"}}
variants:
  - name: closed-book
  - name: rag
    kind: rag
    user: {json.dumps(user)}
{textwrap.indent(retrieval_yaml.strip(), "    ")}
{extra}"""
    path = tmp_path / "suite.yaml"
    path.write_text(suite, encoding="utf-8")
    return path


def rag(path: Path):
    suite = load_suite(path)
    return suite, suite.variant("rag"), load_dataset(suite).test


def check_cli(path: Path):
    return CliRunner().invoke(main, ["check", str(path)])


# ---------------------------------------------------------------- chunking


def test_char_chunks_are_exact_windows():
    assert chunk_text("abcdefghij", 4, 1) == ["abcd", "defg", "ghij"]
    assert chunk_text("abcdefghijk", 4, 1) == ["abcd", "defg", "ghij", "jk"]
    assert chunk_text("short", 10, 2) == ["short"]
    assert chunk_text("   \n", 10, 2) == []


def test_char_chunk_overlap_is_exact_on_long_text():
    rng = random.Random(3)
    text = "".join(rng.choice("abcdefgh \n") for _ in range(5003))
    chunks = chunk_text(text, 800, 100)
    assert all(len(c) == 800 for c in chunks[:-1])
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a[-100:] == b[:100]
    assert "".join([chunks[0]] + [c[100:] for c in chunks[1:]]) == text  # nothing lost or doubled


def test_token_chunks_keep_original_spacing():
    text = "a b  c\nd e f g"
    assert chunk_text(text, 3, 1, "tokens") == ["a b  c", "c\nd e", "e f g"]
    assert chunk_text(text, 10, 2, "tokens") == [text]
    with pytest.raises(ValueError, match="overlap"):
        chunk_text(text, 3, 3)


# ---------------------------------------------------------------- built-in methods


@pytest.mark.parametrize("method", ["bm25", "tfidf"])
def test_builtin_method_finds_the_named_passage(tmp_path, method):
    path = make_suite(
        tmp_path,
        f"retrieval: {{corpus: 'docs/*', method: {method}, k: 2, chunk: {{size: 200, overlap: 20}}}}",
    )
    suite, variant, examples = rag(path)
    retriever = build_retriever(suite, variant, runs_dir=tmp_path / "runs")
    got = {ex.inputs["question"]: retriever.retrieve(ex) for ex in examples}
    assert [hits[0]["id"] for hits in got.values()] == [
        "docs/cards.md",
        "docs/pin.md",
        "docs/fx.txt",
    ]
    first = got["My PIN is blocked after wrong entries"][0]
    assert first["text"] == DOCS["docs/pin.md"]
    assert first["source"] == "docs/pin.md" and first["score"] > 0
    for hits in got.values():  # best first, at most k, no zero-score filler
        assert len(hits) <= 2
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_data_column_corpus_and_query_template(tmp_path):
    rows = [
        {"pmid": "111", "abstract": "Aspirin lowers fever in adults with influenza."},
        {"pmid": "222", "abstract": "Statins reduce cholesterol and cardiovascular events."},
        {"pmid": "333", "abstract": "Physical exercise improves sleep quality in older people."},
    ]
    (tmp_path / "passages.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows), encoding="utf-8"
    )
    path = make_suite(
        tmp_path,
        """retrieval:
  corpus: {path: passages.jsonl, text: abstract, id: pmid}
  k: 1
  query: "statins {{ question }}"
""",
    )
    suite, variant, examples = rag(path)
    hits = build_retriever(suite, variant).retrieve(
        examples[0]
    )  # question about cards; query adds "statins"
    assert [(h["id"], h["source"]) for h in hits] == [("222", "passages.jsonl:2")]


def test_index_is_built_once_per_corpus_content(tmp_path, monkeypatch):
    path = make_suite(tmp_path, "retrieval: {corpus: docs, method: bm25}")
    built = []
    real = indexes.Bm25Index

    class Counting(real):
        def __init__(self, texts):
            built.append(len(texts))
            super().__init__(texts)

    monkeypatch.setitem(indexes.INDEXES, "bm25", Counting)
    monkeypatch.setattr(indexes, "_INDEXES", {})
    suite, variant, _ = rag(path)
    a = build_retriever(suite, variant)
    b = build_retriever(load_suite(path), variant)
    assert a.index is b.index and built == [3]
    (tmp_path / "docs/fx.txt").write_text("Exchange rates changed.", encoding="utf-8")
    c = build_retriever(suite, variant)
    assert c.index is not a.index and built == [3, 3]


def test_embedding_method_against_the_test_server(tmp_path, monkeypatch):
    from openai_server import FakeOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    monkeypatch.setattr(indexes, "_INDEXES", {})
    with FakeOpenAI() as server:
        path = make_suite(
            tmp_path,
            f"retrieval: {{corpus: 'docs/*', method: embedding, embedding_model: openai/fake-embed, k: 3}}\n"
            f"api_base: {server.url}",
        )
        suite, variant, examples = rag(path)
        runs = tmp_path / "runs"
        hits = build_retriever(suite, variant, runs_dir=runs).retrieve_all(examples)
        assert hits[examples[1].id][0]["id"] == "docs/pin.md"
        assert all(len(h) == 3 for h in hits.values())  # embeddings keep every top-k chunk
        cached = list((runs / ".embeddings").glob("*-openai_fake-embed.npy"))
        assert len(cached) == 1
        corpus_and_queries = server.embedding_requests
        assert corpus_and_queries == 2  # one batch for the corpus, one for the 3 queries

        # A new process (empty in-process cache) reads the vectors from disk: only the query is sent.
        monkeypatch.setattr(indexes, "_INDEXES", {})
        again = build_retriever(suite, variant, runs_dir=runs)
        assert server.embedding_requests == corpus_and_queries
        assert again.retrieve(examples[1])[0]["id"] == "docs/pin.md"
        assert server.embedding_requests == corpus_and_queries + 1


# ---------------------------------------------------------------- the user's own retriever


def test_user_retriever_is_imported_and_its_chunks_reach_the_prompt(tmp_path):
    (tmp_path / "my_search.py").write_text(
        textwrap.dedent(
            """\
            CALLS = []

            def search(query, k):
                CALLS.append((query, k))
                return [{"text": "FROM-USER-RETRIEVER " + query, "id": "u1", "score": 0.9}, "plain chunk"]
            """
        ),
        encoding="utf-8",
    )
    path = make_suite(tmp_path, 'retriever: "my_search:search"')
    suite, variant, examples = rag(path)
    retriever = build_retriever(suite, variant)
    chunks = retriever.retrieve(examples[0])
    import my_search

    assert my_search.CALLS == [("When will my new card arrive by post?", 4)]
    assert chunks == [
        {
            "text": "FROM-USER-RETRIEVER When will my new card arrive by post?",
            "id": "u1",
            "score": 0.9,
            "source": "my_search:search",
        },
        {"text": "plain chunk", "id": "1", "score": None, "source": "my_search:search"},
    ]
    prompt = render_messages(variant, examples[0], context=chunks)[-1]["content"]
    assert "FROM-USER-RETRIEVER When will my new card arrive" in prompt and "plain chunk" in prompt


@pytest.mark.parametrize(
    ("module", "spec", "message"),
    [
        (None, "no_such_module:search", "cannot import 'no_such_module'"),
        (
            "def other(query, k):\n    return []\n",
            "retr_a:search",
            "'retr_a' has no function 'search' (functions: other)",
        ),
        (
            "def search(query):\n    return []\n",
            "retr_b:search",
            "retr_b:search must accept (query, k) — got search(query)",
        ),
        (
            "raise RuntimeError('boom')\n",
            "retr_c:search",
            "importing 'retr_c' failed: RuntimeError: boom",
        ),
    ],
)
def test_bad_retriever_exits_2_with_a_clear_message(tmp_path, module, spec, message):
    if module is not None:
        (tmp_path / f"{spec.split(':')[0]}.py").write_text(module, encoding="utf-8")
    path = make_suite(tmp_path, f'retriever: "{spec}"')
    with pytest.raises(SuiteError) as err:
        validate_retrieval(load_suite(path))
    assert message in str(err.value) and "variants[1].retriever" in str(err.value)
    result = check_cli(path)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("returns", "message"),
    [
        ('"just text"', "returned str; expected a list of chunks"),
        ("[{'id': 1}]", "chunk 0 has no 'text' string (keys: ['id'])"),
        ("[{'text': 'x', 'score': 'high'}]", "chunk 0 has a non-numeric 'score' 'high'"),
        ("[42]", "returned a int at position 0"),
    ],
)
def test_user_retriever_results_are_validated(tmp_path, returns, message):
    name = f"retr_bad_{abs(hash(returns))}"
    (tmp_path / f"{name}.py").write_text(
        f"def search(query, k):\n    return {returns}\n", encoding="utf-8"
    )
    suite, variant, examples = rag(make_suite(tmp_path, f'retriever: "{name}:search"'))
    with pytest.raises(SuiteError, match="variants\\[1\\].retriever") as err:
        build_retriever(suite, variant).retrieve(examples[0])
    assert message in str(err.value)


# ---------------------------------------------------------------- corpus errors (exit 2)


@pytest.mark.parametrize(
    ("corpus", "docs", "message"),
    [
        ("docs", {"docs/empty.md": "  \n"}, "the corpus is empty: docs holds no text"),
        ("'docs/*.md'", {"docs/a.txt": "text"}, "'docs/*.md' matches no files"),
        ("docs/missing.md", {"docs/a.md": "text"}, "file not found:"),
        (
            "'docs/*'",
            {"docs/a.md": "text", "docs/manual.pdf": "%PDF"},
            "docs/manual.pdf: unsupported corpus file type .pdf — use .md or .txt",
        ),
        ("docs", {"docs/a.md": "text"}, None),  # control: valid
    ],
)
def test_corpus_problems_exit_2(tmp_path, corpus, docs, message):
    path = make_suite(tmp_path, f"retrieval: {{corpus: {corpus}}}", docs=docs)
    result = check_cli(path)
    if message is None:
        assert result.exit_code == 0, result.output
        assert "retrieval (rag): 1 documents → 1 chunks, bm25, k=4" in result.output
        return
    assert result.exit_code == 2, result.output
    assert "suite.yaml:" in result.output and "variants[1].retrieval.corpus" in result.output
    assert message in result.output and "Traceback" not in result.output


def test_unreadable_corpus_file_names_file_and_line(tmp_path):
    path = make_suite(tmp_path, "retrieval: {corpus: docs}", docs={"docs/a.md": "ok"})
    (tmp_path / "docs/latin1.txt").write_bytes("line one\ncaf\xe9\n".encode("latin-1"))
    result = check_cli(path)
    assert result.exit_code == 2
    assert "docs/latin1.txt:2: not UTF-8 (byte 12) — save the file as UTF-8" in result.output


def test_corpus_column_and_settings_errors(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"pid": "1", "body": "text"}\n', encoding="utf-8")
    bad_col = make_suite(tmp_path, "retrieval: {corpus: {path: p.jsonl, text: abstract, id: pid}}")
    result = check_cli(bad_col)
    assert result.exit_code == 2
    assert (
        "variants[1].retrieval.corpus.text: column 'abstract' not in p.jsonl (columns: body, pid)"
        in result.output
    )

    overlap = make_suite(tmp_path, "retrieval: {corpus: docs, chunk: {size: 100, overlap: 100}}")
    result = check_cli(overlap)
    assert (
        result.exit_code == 2 and "overlap (100) must be smaller than size (100)" in result.output
    )

    no_model = make_suite(tmp_path, "retrieval: {corpus: docs, method: embedding}")
    result = check_cli(no_model)
    assert result.exit_code == 2 and "method: embedding needs `embedding_model:`" in result.output

    bad_query = make_suite(tmp_path, "retrieval: {corpus: docs, query: '{{ answer }}'}")
    result = check_cli(bad_query)
    assert result.exit_code == 2
    assert "query template uses answer — it sees only the input fields question" in result.output


def test_check_warns_when_templates_ignore_context(tmp_path):
    path = make_suite(tmp_path, "retrieval: {corpus: docs}", user="Q: {{ question }}")
    lines = validate_retrieval(load_suite(path))
    assert ("warn", "retrieval (rag)") in [(s, n) for s, n, _ in lines]
    assert ("pass", "retrieval metrics", "recall@k and MRR against data.gold (gold)") in lines


# ---------------------------------------------------------------- metrics


def _ex(ex_id, gold):
    return Example(id=ex_id, inputs={}, gold=gold)


def _rec(ex_id, ids, correct, repeat=0):
    retrieved = [{"id": i, "source": i, "score": 1.0} for i in ids]
    return {"id": ex_id, "repeat": repeat, "retrieved": retrieved, "scores": {"correct": correct}}


def test_recall_and_mrr_equal_hand_computed_values():
    examples = {
        "a": _ex("a", "d1"),
        "b": _ex("b", '["d2", "d4"]'),  # two gold passages, as JSON text (CSV)
        "c": _ex("c", "d9"),
        "d": _ex("d", None),  # no gold: left out of the retrieval metrics
    }
    records = [
        _rec("a", ["d3", "d1", "d2"], 1.0),
        _rec("a", ["d3", "d1", "d2"], 0.0, repeat=1),
        _rec("b", ["d2", "d5", "d4"], 1.0),
        _rec("c", ["d1", "d2"], 0.0),
        _rec("d", ["d1"], 1.0),
    ]
    # k=2: a recall 1, rr 1/2; b recall 1/2, rr 1; c 0, 0.
    m2 = retrieval_metrics(records, examples, k=2)
    assert m2["n"] == 3
    assert m2["recall_at_k"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m2["mrr"] == pytest.approx((0.5 + 1 + 0) / 3)
    # a (mean of repeats 0.5) and b (1.0) had gold retrieved; c (0.0) did not.
    assert m2["accuracy_gold_retrieved"] == {"value": pytest.approx(0.75), "n": 2}
    assert m2["accuracy_gold_missed"] == {"value": 0.0, "n": 1}
    # k=3: b now finds both gold passages; k=1: only b's first chunk counts.
    m3 = retrieval_metrics(records, examples, k=3)
    assert m3["recall_at_k"] == pytest.approx((1 + 1 + 0) / 3)
    m1 = retrieval_metrics(records, examples, k=1)
    assert m1["recall_at_k"] == pytest.approx(0.5 / 3) and m1["mrr"] == pytest.approx(1 / 3)
    assert m1["accuracy_gold_retrieved"] == {"value": 1.0, "n": 1}


def test_metrics_edge_cases():
    assert retrieval_metrics([], {}, 4) == {
        "k": 4,
        "n": 0,
        "recall_at_k": None,
        "mrr": None,
        "accuracy_gold_retrieved": {"value": None, "n": 0},
        "accuracy_gold_missed": {"value": None, "n": 0},
    }
    # A failed call with no retrieval counts as a miss; file golds match by path, name or stem.
    assert gold_hits(None, {"x"}, 3) == (0.0, 0.0, False)
    hits = [{"id": "docs/faq/pin.md", "source": "docs/faq/pin.md"}]
    for gold in ("docs/faq/pin.md", "pin.md", "pin"):
        assert gold_hits(hits, {gold}, 1) == (1.0, 1.0, True)
    assert gold_ids(12345) == {"12345"} and gold_ids(["a", "b"]) == {"a", "b"}


# ---------------------------------------------------------------- the shipped pubmedqa suite


def test_pubmedqa_suite_checks_and_bm25_finds_the_abstracts():
    result = check_cli(ROOT / "suites/pubmedqa.yaml")
    assert result.exit_code == 0, result.output
    assert "retrieval (rag): 300 documents → 576 chunks, bm25, k=2" in result.output
    suite, variant, examples = rag(ROOT / "suites/pubmedqa.yaml")
    assert len(examples) == 100
    hits = build_retriever(suite, variant).retrieve_all(examples)
    records = [{"id": e.id, "retrieved": hits[e.id], "scores": {"correct": 1.0}} for e in examples]
    m = retrieval_metrics(records, {e.id: e for e in examples}, k=2)
    # Measured once and pinned: the question's own abstract is in the top 2 for 96 of 100.
    assert (m["n"], m["recall_at_k"], m["mrr"]) == (100, 0.96, 0.955)


# ---------------------------------------------------------------- end to end on the scripted server

WRONG = {"yes": "no", "no": "maybe", "maybe": "yes"}


def test_pubmedqa_rag_beats_closed_book_exactly_as_scripted(tmp_path, openai_server, fake_key):
    from harness.run.pipeline import run_suite

    rows = [
        json.loads(line) for line in (ROOT / "data/pubmedqa/test.jsonl").read_text().splitlines()
    ]

    def scripted(messages, body):
        # Right only when the question's own abstract is in the prompt; wrong otherwise.
        prompt = "\n".join(m["content"] for m in messages)
        row = next(r for r in rows if r["question"] in prompt)
        seen = f"[PMID {row['pmid']}]" in prompt
        return json.dumps({"answer": row["answer"] if seen else WRONG[row["answer"]]})

    server = openai_server(scripted)
    text = (ROOT / "suites/pubmedqa.yaml").read_text(encoding="utf-8")
    text = text.replace("../data/pubmedqa/", f"{ROOT}/data/pubmedqa/")
    text = text.replace(
        "model: local/smollm2", f"model: openai/fake-model\n  api_base: {server.url}"
    )
    text = text.split("\nguard:")[0] + "\n"  # the verdict is tested elsewhere; skip MLflow here
    path = tmp_path / "pubmedqa.yaml"
    path.write_text(text, encoding="utf-8")

    outcome = run_suite(
        path,
        limit=20,
        runs_dir=tmp_path / "runs",
        show_progress=False,
    )
    closed, rag_records = outcome.records["closed-book"], outcome.records["rag"]
    assert len(closed) == len(rag_records) == 20
    assert all(r["retrieved"] is None for r in closed)
    assert (
        sum(r["scores"]["correct"] for r in closed) == 0
    )  # closed-book: always wrong, as scripted
    # RAG: right exactly where the retriever put the gold abstract in the prompt.
    examples = outcome.dataset.by_id()
    for r in rag_records:
        assert [set(c) for c in r["retrieved"]] == [{"id", "source", "score"}] * 2
        hit = any(c["id"] == examples[r["id"]].gold for c in r["retrieved"])
        assert r["scores"]["correct"] == float(hit)
    m = retrieval_metrics(rag_records, examples, k=2)
    assert m["n"] == 20 and m["recall_at_k"] >= 0.9
    assert m["accuracy_gold_retrieved"]["value"] == 1.0 and m["accuracy_gold_missed"]["value"] in (
        0.0,
        None,
    )
    assert sum(r["scores"]["correct"] for r in rag_records) == m["accuracy_gold_retrieved"]["n"]


def test_embedding_without_credentials_stops_before_any_request(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = make_suite(
        tmp_path,
        "retrieval: {corpus: docs, method: embedding, embedding_model: openai/text-embedding-3-small}",
    )
    suite, variant, _ = rag(path)
    with pytest.raises(SuiteError) as err:
        build_retriever(suite, variant, runs_dir=tmp_path / "runs")
    assert (
        "variants[1].retrieval.embedding_model: embedding model openai/text-embedding-3-small needs OPENAI_API_KEY"
        in str(err.value)
    )
    assert not (tmp_path / "runs").exists()


def test_user_retriever_takes_k_and_query_from_retrieval(tmp_path):
    (tmp_path / "echo_retr.py").write_text(
        "def search(query, k):\n    return [{'text': f'{query}|{k}', 'id': str(i)} for i in range(k)]\n",
        encoding="utf-8",
    )
    path = make_suite(
        tmp_path, 'retriever: "echo_retr:search"\nretrieval: {k: 2, query: "find: {{ question }}"}'
    )
    suite, variant, examples = rag(path)
    chunks = build_retriever(suite, variant).retrieve(examples[1])
    assert [c["text"] for c in chunks] == ["find: My PIN is blocked after wrong entries|2"] * 2
    assert ("pass", "retrieval (rag)", "your retriever echo_retr:search (imported), k=2") in (
        validate_retrieval(suite)
    )


@pytest.mark.parametrize(
    ("retrieval_yaml", "message"),
    [
        (
            'retriever: "x:y"\nretrieval: {corpus: docs}',
            "variants[1].retrieval.corpus: `retrieval.corpus` is for built-in retrieval — with `retriever:` your function searches",
        ),
        (
            "retrieval: {k: 3}",
            "variants[1].retrieval.corpus: required — files/globs (e.g. docs/*.md)",
        ),
    ],
)
def test_corpus_and_retriever_rules(tmp_path, retrieval_yaml, message):
    result = check_cli(make_suite(tmp_path, retrieval_yaml))
    assert result.exit_code == 2 and message in result.output, result.output


def test_check_warns_about_gold_ids_missing_from_the_corpus(tmp_path):
    path = make_suite(tmp_path, "retrieval: {corpus: docs}")
    assert "match no corpus document" not in check_cli(path).output  # all three golds found
    (tmp_path / "docs/fx.txt").unlink()
    result = check_cli(path)
    assert result.exit_code == 0
    assert (
        "1 of 3 gold ids in 'gold' match no corpus document (first: 'fx' of example"
        in result.output
    )
