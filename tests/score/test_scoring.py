"""Per-example scoring: tolerant answer parsing, labels, format reasons, extraction counts, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.data.dataset import Example, load_dataset
from harness.score.scorer import field_counts, make_scorer, normalize_label, normalize_text
from harness.suite import load_suite

SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": ["card_arrival", "pin_blocked", "café_menu"]}
    },
    "required": ["intent"],
    "additionalProperties": False,
}


def write_suite(
    tmp_path: Path, *, task="classification", schema=None, metrics="[accuracy]", rows=None, extra=""
):
    rows = rows or [
        {"text": "where is my card", "label": "card_arrival"},
        {"text": "pin blocked", "label": "pin_blocked"},
        {"text": "menu?", "label": "café_menu"},
    ]
    (tmp_path / "test.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    lines = [
        "name: t",
        f"task: {task}",
        "data: {test: test.jsonl, input: text, target: label}",
        f"metrics: {metrics}",
        "defaults: {model: openai/x, user: '{{ text }}'}",
        "variants: [{name: a}]",
    ]
    if task == "classification":
        lines.append("labels: from-data")
    if schema is not None:
        (tmp_path / "schema.json").write_text(json.dumps(schema))
        lines.append("output_schema: schema.json")
    p = tmp_path / "suite.yaml"
    p.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    suite = load_suite(p)
    return suite, load_dataset(suite)


def ex(target, id_="e1"):
    return Example(id=id_, inputs={"text": "x"}, target=target)


@pytest.fixture
def clf(tmp_path):
    suite, data = write_suite(tmp_path, schema=SCHEMA)
    return make_scorer(suite, data)


@pytest.fixture
def clf_plain(tmp_path):
    suite, data = write_suite(tmp_path)
    return make_scorer(suite, data)


def test_json_answer_field_from_schema(clf):
    r = clf.score(ex("card_arrival"), '{"intent": "card_arrival"}', None)
    assert r == {
        "parsed": "card_arrival",
        "scores": {"correct": 1.0, "format_ok": 1.0},
        "reasons": {"parsed": "parsed JSON field intent", "format_ok": "valid"},
    }


@pytest.mark.parametrize(
    "output,step",
    [
        (' "Card Arrival." ', "stripped trailing punctuation"),
        ("'card_arrival'", "stripped quotes"),
        ("CARD-ARRIVAL", "normalised 'card-arrival' to label 'card_arrival'"),
        ('```json\n{"intent": "card_arrival"}\n```', "removed code fence"),
        ('Answer: {"intent": "card arrival"}', "extracted JSON object from surrounding text"),
        ('{"label": "card_arrival", "confidence": 0.9}', "parsed JSON field label"),
    ],
)
def test_tolerant_parsing_records_what_it_did(clf_plain, output, step):
    r = clf_plain.score(ex("card_arrival"), output, None)
    assert r["parsed"] == "card_arrival"
    assert r["scores"]["correct"] == 1.0
    assert step in r["reasons"]["parsed"]
    # Without a schema, format is "one of the labels after normalisation".
    assert r["scores"]["format_ok"] == 1.0
    assert r["reasons"]["format_ok"] == "one of the labels after normalisation"


def test_unicode_label(clf_plain):
    r = clf_plain.score(ex("café_menu"), "Café Menu", None)
    assert r["parsed"] == "café_menu"
    assert r["scores"]["correct"] == 1.0


def test_unknown_label_is_wrong_and_not_format_ok(clf_plain):
    r = clf_plain.score(ex("card_arrival"), "something else", None)
    assert r["parsed"] is None
    assert r["scores"] == {"correct": 0.0, "format_ok": 0.0}
    assert (
        r["reasons"]["format_ok"] == "not one of the labels after normalisation: 'something else'"
    )


def test_wrong_label_is_format_ok_but_incorrect(clf):
    r = clf.score(ex("card_arrival"), '{"intent": "pin_blocked"}', None)
    assert r["parsed"] == "pin_blocked"
    assert r["scores"] == {"correct": 0.0, "format_ok": 1.0}


def test_format_reasons_parse_error_position_and_schema_path(clf):
    bad = clf.score(ex("card_arrival"), '{"intent": "card_arrival"', None)
    assert bad["scores"]["format_ok"] == 0.0
    assert (
        bad["reasons"]["format_ok"] == "invalid JSON at line 1 column 26: Expecting ',' delimiter"
    )
    wrong = clf.score(ex("card_arrival"), '{"intent": 3}', None)
    assert wrong["reasons"]["format_ok"] == "schema: intent: 3 is not of type 'string'"
    extra = clf.score(ex("card_arrival"), '{"intent": "card_arrival", "x": 1}', None)
    assert extra["reasons"]["format_ok"].startswith(
        "schema: (root): Additional properties are not allowed"
    )
    # Tolerant parsing still finds the answer inside a fence, but the format is not compliant.
    fenced = clf.score(ex("card_arrival"), '```\n{"intent": "card_arrival"}\n```', None)
    assert fenced["scores"] == {"correct": 1.0, "format_ok": 0.0}


def test_error_record_scores_zero_with_reason(clf):
    r = clf.score(ex("card_arrival"), None, "timeout: no answer after 3 attempts")
    assert r == {
        "parsed": None,
        "scores": {"correct": 0.0, "format_ok": 0.0},
        "reasons": {
            "correct": "error: timeout: no answer after 3 attempts",
            "format_ok": "error: timeout: no answer after 3 attempts",
        },
    }


def test_clashing_labels_only_match_exactly(tmp_path):
    rows = [{"text": "a", "label": "top-up"}, {"text": "b", "label": "top_up"}]
    suite, data = write_suite(tmp_path, rows=rows)
    sc = make_scorer(suite, data)
    assert sc.score(ex("top-up"), "top-up", None)["parsed"] == "top-up"
    assert sc.score(ex("top_up"), "top_up", None)["parsed"] == "top_up"
    assert sc.score(ex("top_up"), "Top Up", None)["parsed"] is None  # ambiguous: not guessed


def test_normalisers():
    assert normalize_text('  "Yes."  ') == "yes"
    assert normalize_text("Ｈｅｌｌｏ\u00a0 World!") == "hello world"
    assert normalize_label("Card  Arrival") == "card_arrival"


def test_field_counts_slot_convention():
    gold = {"people": "4", "time": "7pm", "date": "friday"}
    pred = {"people": "4 ", "time": "8pm", "first_name": "Ann", "date": None}
    # people right; time wrong (fp + fn); first_name extra (fp); date missing (fn).
    assert field_counts(pred, gold) == (1, 2, 2)
    assert field_counts({}, {}) == (0, 0, 0)


def test_extraction_scores(tmp_path):
    rows = [{"text": "table for 4 at 7pm", "label": {"people": "4", "time": "7pm"}}]
    schema = {
        "type": "object",
        "properties": {
            "people": {"type": ["string", "null"]},
            "time": {"type": ["string", "null"]},
        },
        "required": ["people", "time"],
    }
    suite, data = write_suite(
        tmp_path, task="extraction", schema=schema, metrics="[field_f1, exact_record]", rows=rows
    )
    sc = make_scorer(suite, data)
    e = data.test[0]
    perfect = sc.score(e, '{"people": "4", "time": "7PM"}', None)
    assert perfect["parsed"] == {"people": "4", "time": "7PM"}
    assert perfect["scores"] == {
        "field_tp": 2.0,
        "field_fp": 0.0,
        "field_fn": 0.0,
        "exact_record": 1.0,
        "format_ok": 1.0,
    }
    half = sc.score(e, '{"people": "4", "time": null}', None)
    assert half["scores"] == {
        "field_tp": 1.0,
        "field_fp": 0.0,
        "field_fn": 1.0,
        "exact_record": 0.0,
        "format_ok": 1.0,
    }
    garbage = sc.score(e, "no idea", None)
    assert garbage["scores"]["field_fn"] == 2.0 and garbage["scores"]["format_ok"] == 0.0
    err = sc.score(e, None, "500: server error")
    assert err["scores"] == {
        "field_tp": 0.0,
        "field_fp": 0.0,
        "field_fn": 2.0,
        "exact_record": 0.0,
        "format_ok": 0.0,
    }


def test_generation_reference_scores(tmp_path):
    rows = [{"text": "capital of France?", "label": "Paris"}]
    suite, data = write_suite(
        tmp_path,
        task="generation",
        metrics='[exact_match, contains, {regex: {pattern: "^[A-Z]"}}]',
        rows=rows,
    )
    sc = make_scorer(suite, data)
    e = data.test[0]
    assert sc.score(e, " paris. ", None)["scores"] == {
        "exact_match": 1.0,
        "contains": 1.0,
        "regex": 0.0,
    }
    assert sc.score(e, "It is Paris", None)["scores"] == {
        "exact_match": 0.0,
        "contains": 1.0,
        "regex": 1.0,
    }
    assert sc.score(e, None, "timeout")["scores"] == {
        "exact_match": 0.0,
        "contains": 0.0,
        "regex": 0.0,
    }


def test_score_is_pure(clf):
    a = clf.score(ex("card_arrival"), '{"intent": "card_arrival"}', None)
    b = clf.score(ex("card_arrival"), '{"intent": "card_arrival"}', None)
    assert a == b and a is not b


ROOT = Path(__file__).resolve().parents[2]


def test_restaurant8k_example_suite_checks_and_gold_scores_perfectly():
    from click.testing import CliRunner

    from harness.cli import main

    result = CliRunner().invoke(main, ["check", str(ROOT / "suites/restaurant8k.yaml")])
    assert result.exit_code == 0, result.output
    suite = load_suite(ROOT / "suites/restaurant8k.yaml")
    data = load_dataset(suite)
    assert len(data.test) == 100 and all(e.target for e in data.test)
    sc = make_scorer(suite, data)
    slots = list(suite.output_schema["properties"])
    for e in data.test:
        gold = {k: e.target.get(k) for k in slots}  # the answer the schema asks for: nulls included
        r = sc.score(e, json.dumps(gold), None)
        assert r["scores"]["format_ok"] == 1.0, (e.target, r["reasons"])
        assert r["scores"]["exact_record"] == 1.0
        assert r["scores"]["field_tp"] == len(e.target)


def test_answer_field_is_the_single_required_or_single_property():
    from harness.score.scorer import answer_field

    assert answer_field({"properties": {"a": {}, "b": {}}, "required": ["b"]}) == "b"
    assert answer_field({"properties": {"intent": {"enum": ["x"]}}}) == "intent"
    assert answer_field({"properties": {"a": {}, "b": {}}}) is None
    assert answer_field(None) is None
