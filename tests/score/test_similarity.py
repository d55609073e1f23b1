"""chrF and ROUGE-L equal the reference libraries' values on fixed inputs."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer
from sacrebleu.metrics import CHRF

from harness.score import registry as M
from harness.score import similarity as sim
from harness.score.table import make_table

PAIRS = [
    ("Hi there, your parcel is late.", "Hi there, I'm sorry your parcel is late."),
    ("The refund was sent yesterday", "Your refund was sent yesterday."),
    ("completely unrelated words", "Hi there, thanks for asking."),
]


def records(outputs: list[str | None]) -> list[dict]:
    return [
        {"id": f"e{i}", "repeat": 0, "output": o, "error": None if o is not None else "timeout: x"}
        for i, o in enumerate(outputs)
    ]


def test_sentence_scores_equal_the_libraries():
    chrf = CHRF()
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    for hyp, ref in PAIRS:
        assert sim.chrf(hyp, ref) == pytest.approx(chrf.sentence_score(hyp, [ref]).score / 100)
        assert sim.rouge_l(hyp, ref) == pytest.approx(scorer.score(ref, hyp)["rougeL"].fmeasure)
    assert sim.chrf("same text", "same text") == pytest.approx(1.0)
    # By hand: the/refund/was/sent/yesterday vs your/refund/was/sent/yesterday: LCS 4 of 5 words.
    assert sim.rouge_l(*PAIRS[1]) == pytest.approx(0.8)
    assert sim.rouge_l(*PAIRS[2]) == 0.0  # no word in common


def test_metrics_average_over_calls_errors_score_zero_and_missing_references_skip():
    chrf = CHRF()
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    outputs = [h for h, _ in PAIRS] + [None, "no reference here"]
    targets = {f"e{i}": r for i, (_, r) in enumerate(PAIRS)}
    targets["e3"] = "Hi there, a reference."
    targets["e4"] = None  # no reference: not counted
    table = make_table(records(outputs), targets)
    want_chrf = sum(chrf.sentence_score(h, [r]).score / 100 for h, r in PAIRS) / 4
    want_rouge = sum(scorer.score(r, h)["rougeL"].fmeasure for h, r in PAIRS) / 4
    assert M.value_of(M.compute("chrf", table)) == pytest.approx(want_chrf)
    assert M.value_of(M.compute("rouge_l", table)) == pytest.approx(want_rouge)
    assert M.compute("chrf", make_table([], {})) is None


def test_registered_and_validated_like_other_metrics(tmp_path):
    from harness.errors import SuiteError
    from harness.score.registry import validate_suite
    from harness.suite import load_suite

    assert M.lookup("chrf").tasks == M.ALL_TASKS and M.lookup("rouge_l").quality
    (tmp_path / "t.jsonl").write_text('{"draft": "a"}\n')
    (tmp_path / "s.yaml").write_text(
        "name: s\ntask: generation\ndata: {test: t.jsonl, input: draft}\nmetrics: [chrf]\n"
        "variants: [{name: a, model: openai/x, user: '{{ draft }}'}]\n"
    )
    with pytest.raises(SuiteError, match="chrf compares with a reference — set `data.target:`"):
        validate_suite(load_suite(tmp_path / "s.yaml"))


def test_embedding_cosine_through_the_scripted_server_and_kept_for_resume(openai_server, tmp_path):
    import numpy as np
    from openai_server import embed

    from harness.data.dataset import load_dataset
    from harness.score.registry import validate_suite
    from harness.score.stages import run_post_call_stages
    from harness.suite import load_suite

    server = openai_server()
    rows = [("a", "Hi there, your parcel is late."), ("b", "Hi there, refund sent.")]
    (tmp_path / "t.jsonl").write_text(
        "".join(f'{{"id": "{i}", "draft": "d {i}", "ref": "{r}"}}\n' for i, r in rows)
    )
    (tmp_path / "s.yaml").write_text(
        "name: s\ntask: generation\ndata: {test: t.jsonl, id: id, input: draft, target: ref}\n"
        f"metrics: [{{embedding_cosine: {{model: openai/emb, api_base: '{server.url}'}}}}]\n"
        "variants: [{name: a, model: openai/x, user: '{{ draft }}'}]\n"
    )
    suite = validate_suite(load_suite(tmp_path / "s.yaml"))
    dataset = load_dataset(suite)
    outputs = {"a": "your parcel is late", "b": None}

    def records():
        return {
            "a": [
                {"id": i, "repeat": 0, "output": o, "error": None if o else "timeout: x"}
                for i, o in outputs.items()
            ]
        }

    recs = records()
    section = run_post_call_stages(suite, dataset, recs, tmp_path / "run")
    want = float(np.dot(embed("your parcel is late"), embed(rows[0][1])))
    got = {r["id"]: r["scores"]["embedding_cosine"] for r in recs["a"]}
    assert got == {"a": pytest.approx(want), "b": 0.0}  # an error scores 0
    assert section == {"embedding": {"model": "openai/emb", "embedded": 1}}
    table = make_table(recs["a"], {i: r for i, r in rows})
    assert M.value_of(M.compute("embedding_cosine", table)) == pytest.approx(want / 2)
    before = server.embedding_requests
    again = records()
    run_post_call_stages(suite, dataset, again, tmp_path / "run")
    assert server.embedding_requests == before  # read back, not embedded again
    assert again["a"][0]["scores"]["embedding_cosine"] == pytest.approx(want)
