import json

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.data.dataset import load_dataset
from harness.export.finetune import export_finetune, validate_chat_jsonl
from harness.prompt.templates import render_messages
from harness.rundir.writer import write_resolved_suite
from harness.suite import load_suite

LABELS = ["card_arrival", "pin_blocked", "age_limit"]
SCHEMA = {
    "type": "object",
    "properties": {"intent": {"type": "string", "enum": LABELS}},
    "required": ["intent"],
    "additionalProperties": False,
}
TRAIN = [
    {"text": f"train question number {i} about {LABELS[i % 3]}", "label": LABELS[i % 3]}
    for i in range(24)
]
TEST = [{"text": f"test question number {i}", "label": LABELS[i % 3]} for i in range(9)]
# Planted leakage: a train row that is a test row up to case and punctuation.
TRAIN.append({"text": "TEST question number 4!", "label": LABELS[1]})

SUITE = """
name: exp
task: classification
data: {test: test.jsonl, train: train.jsonl, input: text, target: label}
labels: from-data
output_schema: intent.json
metrics: [accuracy, format_compliance]
defaults:
  system: "Route the question. Answer as JSON {\\"intent\\": ...}."
  user: "Question: {{ text }}"
variants:
  - {name: zero-shot, model: openai/gpt-4o-mini}
  - name: ft
    kind: fine-tuned
    model: openai/ft:gpt-4o-mini-2024-07-18:acme::x
    base_model: openai/gpt-4o-mini
    training: {price_per_1m: 3.0, epochs: 2}
baseline: zero-shot
"""


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def suite_path(tmp_path):
    _jsonl(tmp_path / "train.jsonl", TRAIN)
    _jsonl(tmp_path / "test.jsonl", TEST)
    (tmp_path / "intent.json").write_text(json.dumps(SCHEMA))
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    return path


def _token_count(model, messages):
    # Imported late: harness (imported above) sets LITELLM_LOCAL_MODEL_COST_MAP so litellm
    # never fetches its price list from the internet.
    import litellm

    return litellm.token_counter(model=model, messages=messages)


def test_train_export_round_trips_and_counts_tokens_and_cost(suite_path, tmp_path):
    out = tmp_path / "ft.jsonl"
    result = CliRunner().invoke(main, ["export", str(suite_path), "--out", str(out)])
    assert result.exit_code == 0, result.output

    rows = pd.read_json(out, lines=True).to_dict(orient="records")  # an independent JSONL reader
    assert len(rows) == 24  # the leaked row is dropped
    suite = load_suite(suite_path)
    train = load_dataset(suite).train
    ft = suite.variant("ft")
    expected = [
        render_messages(ft, e)
        + [{"role": "assistant", "content": json.dumps({"intent": e.target})}]
        for e in train[:24]
    ]
    assert [r["messages"] for r in rows] == expected
    assert rows[0]["messages"][-1]["content"] == '{"intent": "card_arrival"}'
    assert validate_chat_jsonl(out) == []

    tokens = sum(_token_count("openai/gpt-4o-mini", m) for m in expected)
    meta = json.loads((tmp_path / "ft.jsonl.meta.json").read_text())
    assert meta["n_examples"] == 24
    assert meta["n_tokens"] == tokens
    assert meta["cost_usd"] == pytest.approx(3.0 * tokens / 1e6 * 2)
    assert meta["skipped"] == {"in the test set (same id or same normalised text)": 1}
    assert result.output.splitlines() == [
        f"wrote 24 examples to {out} (train, templates of ft)",
        f"  tokens: {tokens} (openai/gpt-4o-mini tokenizer)",
        f"  training cost: ${meta['cost_usd']:.2f} ($3 per 1M tokens × {tokens} tokens × 2 epoch(s))",
        "  skipped 1: in the test set (same id or same normalised text)",
        "  format: valid OpenAI chat fine-tuning JSONL",
    ]


def test_cli_options_override_price_and_epochs(suite_path, tmp_path):
    out = tmp_path / "ft.jsonl"
    args = [
        "export",
        str(suite_path),
        "--out",
        str(out),
        "--price-per-1m",
        "25",
        "--epochs",
        "4",
        "--json",
    ]
    data = json.loads(CliRunner().invoke(main, args).output)
    assert (data["price_per_1m"], data["epochs"]) == (25.0, 4)
    assert data["cost_usd"] == pytest.approx(25 * data["n_tokens"] / 1e6 * 4)


def _teacher_run(tmp_path):
    """A finished run of a teacher suite whose test split is the train file."""
    teacher_suite = tmp_path / "teacher.yaml"
    teacher_suite.write_text(SUITE.replace("test: test.jsonl", "test: train.jsonl"))
    suite = load_suite(teacher_suite)
    dataset = load_dataset(suite)
    run = tmp_path / "runs" / "exp" / "r1"
    (run / "results").mkdir(parents=True)
    write_resolved_suite(run / "suite.yaml", suite, dataset, {})
    (run / "summary.json").write_text(
        json.dumps({"schema_version": 2, "suite": "exp", "variants": {}})
    )
    records = []
    for i, e in enumerate(dataset.test):
        answer = json.dumps({"intent": e.target})
        scores = {"correct": 1.0, "format_ok": 1.0}
        error = None
        if i % 5 == 1:
            scores = {"correct": 0.0, "format_ok": 1.0}
        elif i % 5 == 2:
            answer, scores = "card_arrival", {"correct": 1.0, "format_ok": 0.0}
        elif i % 5 == 3 and i < 10:
            answer, scores, error = None, {"correct": 0.0, "format_ok": 0.0}, "timeout"
        records.append(
            {"id": e.id, "repeat": 0, "output": answer, "scores": scores, "error": error}
        )
    records.append({**records[0], "repeat": 1})  # a second sample of an exported example
    _jsonl(run / "results" / "teacher.jsonl", records)
    return run, dataset.test


def test_teacher_export_keeps_correct_compliant_outputs_not_in_test(suite_path, tmp_path):
    run, examples = _teacher_run(tmp_path)
    out = tmp_path / "distil.jsonl"
    suite = load_suite(suite_path)
    result = export_finetune(suite, out, from_variant="teacher", run_dir=run)
    kept_idx = [
        i for i in range(len(examples)) if i % 5 not in (1, 2) and not (i % 5 == 3 and i < 10)
    ]
    kept_idx.remove(24)  # the planted test-set row
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["messages"][1]["content"] for r in rows] == [
        f"Question: {examples[i].inputs['text']}" for i in kept_idx
    ]
    assert result.n_examples == len(kept_idx) == 12
    assert result.source == f"teacher:teacher ({run})"
    assert result.skipped == {
        "teacher output not correct and format-compliant": 10,
        "teacher error or empty output": 2,
        "repeat of an exported example": 1,
        "in the test set (same id or same normalised text)": 1,
    }
    assert validate_chat_jsonl(out) == []

    everything = export_finetune(
        suite, out, from_variant="teacher", run_dir=run, include_incorrect=True
    )
    assert everything.n_examples == 12 + 10


def test_teacher_export_errors_say_how_to_fix(suite_path, tmp_path):
    run, _ = _teacher_run(tmp_path)
    out = str(tmp_path / "x.jsonl")
    r = CliRunner().invoke(main, ["export", str(suite_path), "--out", out, "--run", str(run)])
    assert r.exit_code == 2
    assert "--run needs --from-variant NAME" in r.output
    r = CliRunner().invoke(
        main, ["export", str(suite_path), "--out", out, "--from-variant", "gpt5", "--run", str(run)]
    )
    assert r.exit_code == 2
    assert (
        f"Error: {run / 'results' / 'gpt5.jsonl'} not found — variants with results in this run: ['teacher']"
        in r.output
    )
    runs = tmp_path / "runs"
    args = ["export", str(suite_path), "--out", out, "--runs-dir", str(runs)]
    r = CliRunner().invoke(
        main, [*args, "--from-variant", "teacher"]
    )  # the latest run with results
    assert r.exit_code == 0, r.output
    assert r.output.startswith(
        f"wrote 12 examples to {out} (teacher:teacher ({run}), templates of ft)"
    )
    r = CliRunner().invoke(main, [*args, "--from-variant", "gpt5"])
    assert r.exit_code == 2
    assert (
        f"Error: no run of suite 'exp' under {runs / 'exp'} has results for 'gpt5' — run it first "
        "(harness run SUITE.yaml --variant gpt5) or pass --run RUN_DIR"
    ) in r.output
    r = CliRunner().invoke(main, ["export", str(suite_path), "--out", out, "--variant", "nope"])
    assert r.exit_code == 2
    assert "unknown variant 'nope'" in r.output


def test_validator_reports_each_rule(tmp_path):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    rows = [good] * 9 + [
        {"messages": [{"role": "user", "content": "hi"}]},
        {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]},
        {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": " "}]},
        {
            "messages": [
                {"role": "user", "content": "x", "extra": 1},
                {"role": "assistant", "content": "y"},
            ]
        },
        {"prompt": "x"},
        [1, 2],
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    assert validate_chat_jsonl(path) == [
        "line 10: no assistant message",
        "line 11: last message is 'user' — it must be the assistant's",
        "line 12: messages[0]: role 'robot' — use one of ['assistant', 'function', 'system', 'tool', 'user']",
        "line 12: messages[1]: empty or non-text content",
        "line 13: messages[0]: unknown key(s) ['extra']",
        "line 14: missing or empty `messages` list",
        "line 15: expected a JSON object, got list",
        "line 16: invalid JSON (Expecting property name enclosed in double quotes at column 2)",
    ]
    few = tmp_path / "few.jsonl"
    few.write_text(json.dumps(good) + "\n")
    assert validate_chat_jsonl(few) == ["1 example(s) — fine-tuning needs at least 10"]
    long = tmp_path / "long.jsonl"
    long.write_text((json.dumps(good) + "\n") * 10)
    n = _token_count("gpt-4o-mini", good["messages"])
    problems = validate_chat_jsonl(long, model="gpt-4o-mini", max_tokens=n - 1)
    assert problems[0] == f"line 1: {n} tokens — over the {n - 1}-token limit per example"
    assert len(problems) == 10


def test_export_with_format_problems_exits_2(suite_path, tmp_path):
    out = tmp_path / "ft.jsonl"
    r = CliRunner().invoke(
        main, ["export", str(suite_path), "--out", str(out), "--max-tokens-per-example", "5"]
    )
    assert r.exit_code == 2
    assert "line 1: " in r.output and "-token limit per example" in r.output
    assert (
        f"Error: {out}: 24 format problem(s) — fix the data or templates and export again"
        in r.output
    )


def test_dedup_uses_the_whole_test_file_when_the_suite_samples(suite_path, tmp_path):
    # The sample keeps test rows 0 and 7; the leaked train row copies row 4, outside the sample.
    text = suite_path.read_text().replace(
        "target: label}", "target: label, sample: {n: 2, seed: 1}}"
    )
    suite_path.write_text(text)
    suite = load_suite(suite_path)
    assert [e.inputs["text"] for e in load_dataset(suite).test] == [
        "test question number 0",
        "test question number 7",
    ]
    result = export_finetune(suite, tmp_path / "ft.jsonl")
    assert result.n_examples == 24
    assert result.skipped == {"in the test set (same id or same normalised text)": 1}


def test_targets_outside_the_schema_or_empty_are_skipped(suite_path, tmp_path):
    _jsonl(
        tmp_path / "train.jsonl",
        [*TRAIN[:24], {"text": "odd one", "label": "not_a_label"}, {"text": "blank", "label": ""}],
    )
    result = export_finetune(load_suite(suite_path), tmp_path / "ft.jsonl")
    assert result.n_examples == 24
    assert result.skipped == {
        "empty target": 1,
        "target does not validate against output_schema": 1,
    }


def test_export_without_train_split_says_how_to_fix(suite_path, tmp_path):
    suite_path.write_text(suite_path.read_text().replace("train: train.jsonl, ", ""))
    r = CliRunner().invoke(main, ["export", str(suite_path), "--out", str(tmp_path / "x.jsonl")])
    assert r.exit_code == 2
    assert (
        "data: export needs `data.train` (or --from-variant with a run) — add the train split"
        in r.output
    )
