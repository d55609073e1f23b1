"""strict_accuracy: right and in the label format, against scikit-learn on hand-built vectors."""

from __future__ import annotations

import json

import pytest
from sklearn.metrics import accuracy_score

from harness.data.dataset import load_dataset
from harness.errors import SuiteError
from harness.score import registry as M
from harness.score.registry import validate_suite
from harness.score.scorer import make_scorer
from harness.score.table import make_table
from harness.suite import load_suite

LABELS = ["pay_bill", "card_arrival", "lost_or_stolen_card"]
OFF = "<not in format>"  # what a strict reader makes of an answer not spelled as a label

# (output, target, what accuracy reads, what strict_accuracy reads)
CASES = [
    ('{"intent": "pay_bill"}', "pay_bill", "pay_bill", "pay_bill"),
    ('{"intent": "Pay Bill"}', "pay_bill", "pay_bill", OFF),  # right, not the label's spelling
    ("card_arrival", "card_arrival", "card_arrival", "card_arrival"),
    ('```json\n{"intent": "card_arrival"}\n```', "card_arrival", "card_arrival", OFF),  # fenced
    ('{"intent": "card_arrival"}', "lost_or_stolen_card", "card_arrival", "card_arrival"),
    ('"lost_or_stolen_card"', "lost_or_stolen_card", "lost_or_stolen_card", "lost_or_stolen_card"),
    ("Lost or stolen card.", "lost_or_stolen_card", "lost_or_stolen_card", OFF),
    (None, "pay_bill", OFF, OFF),  # the call failed
]


def scored(tmp_path, cases, *, schema=None):
    rows = [{"id": f"e{i}", "text": f"q{i}", "label": t} for i, (_, t, _, _) in enumerate(cases)]
    (tmp_path / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    lines = [
        "name: t",
        "task: classification",
        "data: {test: test.jsonl, id: id, input: text, target: label}",
        f"labels: {json.dumps(LABELS)}",
        "metrics: [accuracy, strict_accuracy]",
        "defaults: {model: openai/x, user: '{{ text }}'}",
        "variants: [{name: a}]",
    ]
    if schema is not None:
        (tmp_path / "schema.json").write_text(json.dumps(schema), encoding="utf-8")
        lines.append("output_schema: schema.json")
    path = tmp_path / "suite.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    suite = validate_suite(load_suite(path))
    dataset = load_dataset(suite)
    scorer = make_scorer(suite, dataset)
    records = []
    for ex, (output, _, _, _) in zip(dataset.test, cases, strict=True):
        s = scorer.score(ex, output, None if output is not None else "server_error: boom")
        records.append({"id": ex.id, "repeat": 0, "output": output, "error": None, **s})
        if output is None:
            records[-1]["error"] = "server_error: boom"
    table = make_table(records, {e.id: e.target for e in dataset.test}, dataset.labels)
    return {
        name: M.value_of(M.compute(name, table, {})) for name in ("accuracy", "strict_accuracy")
    }


def test_strict_accuracy_counts_only_answers_spelled_as_labels(tmp_path):
    values = scored(tmp_path, CASES)
    y_true = [t for _, t, _, _ in CASES]
    assert values["accuracy"] == accuracy_score(y_true, [a for _, _, a, _ in CASES]) == 6 / 8
    strict = accuracy_score(y_true, [s for _, _, _, s in CASES])
    assert values["strict_accuracy"] == pytest.approx(strict) and strict == 3 / 8


def test_strict_accuracy_also_requires_the_output_schema(tmp_path):
    schema = {
        "type": "object",
        "properties": {"intent": {"type": "string", "enum": LABELS}},
        "required": ["intent"],
        "additionalProperties": False,
    }
    cases = [
        ('{"intent": "pay_bill"}', "pay_bill", "pay_bill", "pay_bill"),
        ('{"intent": "pay_bill", "why": "bill"}', "pay_bill", "pay_bill", OFF),  # extra field
        ("pay_bill", "pay_bill", "pay_bill", OFF),  # right label, but not the schema's object
        ('{"intent": "Pay Bill"}', "pay_bill", "pay_bill", OFF),
    ]
    values = scored(tmp_path, cases, schema=schema)
    y_true = [t for _, t, _, _ in cases]
    assert values["accuracy"] == accuracy_score(y_true, [a for _, _, a, _ in cases]) == 1.0
    assert values["strict_accuracy"] == accuracy_score(y_true, [s for _, _, _, s in cases]) == 0.25


def test_strict_accuracy_is_for_classification_suites(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"draft": "x", "ref": "y"}\n', encoding="utf-8")
    path = tmp_path / "suite.yaml"
    path.write_text(
        "name: g\ntask: generation\ndata: {test: t.jsonl, input: draft, target: ref}\n"
        "metrics: [strict_accuracy]\ndefaults: {model: openai/x, user: '{{ draft }}'}\n"
        "variants: [{name: a}]\n",
        encoding="utf-8",
    )
    with pytest.raises(SuiteError, match="strict_accuracy"):
        validate_suite(load_suite(path))
