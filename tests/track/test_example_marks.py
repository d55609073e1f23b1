"""examples.json's ✓/✗ (MLflow's evaluation view) for every task: right or wrong is the task's
own 0/1 score — classification's `correct`, extraction's `exact_record`, a generation suite's
`exact_match` — the same one `harness diagnose` sorts by; a graded text (chrF, a judge) is
neither, and a failed call is wrong whatever the task."""

from __future__ import annotations

from types import SimpleNamespace

from harness.track.fields import example_table


def _table(records, examples):
    run = SimpleNamespace(records={"v": records}, examples=examples)
    return example_table(run, "v").set_index("id")


def test_extraction_marks_a_whole_right_record_and_a_wrong_one():
    gold = {"amount": 12, "currency": "EUR"}
    examples = {
        "a": {"input": "pay 12 EUR", "expected": gold},
        "b": {"input": "x", "expected": gold},
    }
    scores = {"field_tp": 2.0, "field_fp": 0.0, "field_fn": 0.0, "format_ok": 1.0}
    records = [
        {
            "id": "a",
            "output": '{"amount": 12, "currency": "EUR"}',
            "parsed": gold,
            "scores": {**scores, "exact_record": 1.0},
        },
        {
            "id": "b",
            "output": '{"amount": 13}',
            "parsed": {"amount": 13},
            "scores": {"field_tp": 0.0, "field_fp": 1.0, "field_fn": 2.0, "exact_record": 0.0},
        },
    ]
    t = _table(records, examples)
    assert t.loc["a", "correct"] == True  # noqa: E712  (a numpy bool)
    assert t.loc["a", "output"] == '✓ {"amount": 12, "currency": "EUR"}'
    assert t.loc["b", "correct"] == False  # noqa: E712
    assert t.loc["b", "output"] == '✗ {"amount": 13}'


def test_generation_with_exact_match_is_marked_and_a_graded_text_is_not():
    examples = {i: {"input": f"q{i}", "expected": "Paris"} for i in ("a", "b", "c", "d")}
    records = [
        {"id": "a", "output": "Paris", "parsed": "Paris", "scores": {"exact_match": 1.0}},
        {"id": "b", "output": "Lyon | *x*", "parsed": "Lyon | *x*", "scores": {"exact_match": 0.0}},
        {"id": "c", "output": "Paris!", "parsed": "Paris!", "scores": {"chrf": 0.71}},
        {"id": "d", "output": None, "parsed": None, "error": "timeout: no answer", "scores": {}},
    ]
    t = _table(records, examples)
    assert [t.loc[i, "output"] for i in "abcd"] == [
        "✓ Paris",
        "✗ Lyon | *x*",  # the answer as the model wrote it: no markdown escaping in a JSON table
        "Paris!",
        "✗ error: timeout: no answer",
    ]
    assert t.loc["a", "correct"] == True and t.loc["b", "correct"] == False  # noqa: E712
    assert t.loc["c", "correct"] is None and t.loc["d", "correct"] == False  # noqa: E712


def test_an_answer_outside_the_labels_shows_what_the_model_wrote():
    """An unparseable answer (no label found) compares as the model's own text, marked wrong,
    as report.md's tables show it — not as an empty cell."""
    examples = {"a": {"input": "where is my card?", "expected": "card_arrival"}}
    records = [
        {
            "id": "a",
            "output": "Sorry | I can't help",
            "parsed": None,
            "scores": {"correct": 0.0, "format_ok": 0.0},
        },
    ]
    t = _table(records, examples)
    assert t.loc["a", "output"] == "✗ Sorry | I can't help"
    assert t.loc["a", "correct"] == False  # noqa: E712
