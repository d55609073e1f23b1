import json
from collections import Counter

import pandas as pd
import pytest

from harness.data.dataset import file_hash, load_dataset, sample
from harness.errors import SuiteError
from harness.suite import load_suite

ROWS = [{"text": f"question {i}", "label": "ab"[i % 2] if i % 5 else "c"} for i in range(40)]


def suite_for(tmp_path, test_name, extra=""):
    p = tmp_path / "suite.yaml"
    p.write_text(
        f"""
name: d
task: classification
data: {{test: {test_name}, input: text, target: label{extra}}}
labels: from-data
metrics: [accuracy]
defaults: {{model: openai/gpt-4o-mini, user: "{{{{ text }}}}"}}
variants: [{{name: a}}]
"""
    )
    return load_suite(p)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "parquet"])
def test_every_format_loads_the_same_examples(tmp_path, fmt):
    df = pd.DataFrame(ROWS)
    path = tmp_path / f"test.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    elif fmt == "json":
        path.write_text(json.dumps(ROWS))
    else:
        df.to_parquet(path)
    ds = load_dataset(suite_for(tmp_path, path.name))
    assert [e.inputs for e in ds.test] == [{"text": r["text"]} for r in ROWS]
    assert [e.target for e in ds.test] == [r["label"] for r in ROWS]
    assert ds.labels == ["a", "b", "c"]
    assert ds.hashes == {path.name: file_hash(path)}


def test_ids_are_stable_and_unique_even_for_duplicate_rows(tmp_path):
    rows = ROWS + [ROWS[0]]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ids = [e.id for e in load_dataset(suite_for(tmp_path, "t.jsonl")).test]
    assert len(set(ids)) == len(ids)
    assert ids[-1] == ids[0] + "-2"
    # Reordering the file does not change an example's id.
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in reversed(ROWS)))
    again = {e.inputs["text"]: e.id for e in load_dataset(suite_for(tmp_path, "t.jsonl")).test}
    assert again["question 3"] == ids[3]


def test_sampling_is_deterministic_and_stratified(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps(ROWS))
    s = suite_for(tmp_path, "t.json", ", sample: {n: 20, seed: 3, stratify: true}")
    first = [e.id for e in load_dataset(s).test]
    assert first == [e.id for e in load_dataset(s).test]
    labels = [e.target for e in load_dataset(s).test]
    # 40 rows: c = 8, a = 16, b = 16 -> 20 drawn keeps 4 / 8 / 8.
    assert (labels.count("c"), labels.count("a"), labels.count("b")) == (4, 8, 8)
    other = [
        e.id for e in load_dataset(suite_for(tmp_path, "t.json", ", sample: {n: 20, seed: 4}")).test
    ]
    assert other != first and len(other) == 20


def test_sample_larger_than_data_keeps_everything():
    assert sample(list(range(5)), 10, 0, False) == [0, 1, 2, 3, 4]


def test_limit_draws_a_stratified_deterministic_subset(tmp_path):
    # A class-sorted file: its first 10 rows hold one class only (issue 14, item 3).
    rows = sorted(ROWS, key=lambda r: r["label"])
    (tmp_path / "t.json").write_text(json.dumps(rows))
    s = suite_for(tmp_path, "t.json")
    drawn = load_dataset(s, limit=10).test
    assert [e.id for e in drawn] == [e.id for e in load_dataset(s, limit=10).test]
    # 16 a, 16 b, 8 c of 40 → 4, 4, 2 of 10.
    assert Counter(e.target for e in drawn) == {"a": 4, "b": 4, "c": 2}


def test_empty_target_is_an_error(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\nhi,a\nyo,\n")
    with pytest.raises(SuiteError, match="1 test record\\(s\\) have an empty 'label'"):
        load_dataset(suite_for(tmp_path, "t.csv"))


def test_csv_reads_as_pandas_did_for_well_formed_files(tmp_path):
    """Quoted commas and line breaks, CRLF, a BOM, blank lines, short rows, "" escapes."""
    from harness.data.dataset import read_table

    text = 'text,label,note\r\n"hi, you",a,\r\n\r\n"two\nlines",b\r\n  \r\nshort,c\r\n"say ""x""",a,n\r\n'
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    expected = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert read_table(path) == expected.to_dict(orient="records")
    assert [r["text"] for r in read_table(path)] == ["hi, you", "two\nlines", "short", 'say "x"']


@pytest.mark.parametrize(
    "text, message",
    [
        # pandas took the first column as an index here and shifted every value (silently).
        ("text,label\nhi,a,extra\nyo,b\n", "t.csv:2: 3 fields, but the header has 2"),
        ('text,label\nhi,a\n"unterminated,b\n', "t.csv:3: cannot parse CSV"),
        ("text,text\nhi,a\n", "duplicate column header 'text'"),
        ("text,label\n", "no records"),
    ],
)
def test_malformed_csv_names_the_line(tmp_path, text, message):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(SuiteError, match=message.replace("(", "\\(")):
        load_dataset(suite_for(tmp_path, "t.csv"))


def test_csv_values_stay_text(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\n007,NA\n")
    ex = load_dataset(suite_for(tmp_path, "t.csv")).test[0]
    assert ex.inputs == {"text": "007"} and ex.target == "NA"


def test_a_smoke_run_has_the_full_runs_labels_and_checks_every_row(tmp_path):
    # 16 a, 16 b, 8 c: a 2-row smoke sample cannot hold all three classes, but its prompts list
    # the labels the full run lists, and a label typo past the sample is found before any call.
    (tmp_path / "t.json").write_text(json.dumps(ROWS))
    s = suite_for(tmp_path, "t.json")
    smoke = load_dataset(s, limit=2)
    assert len({e.target for e in smoke.test}) < 3
    assert smoke.labels == load_dataset(s).labels == ["a", "b", "c"]
    typo = [*ROWS, {"text": "question 40", "label": "cc"}]
    (tmp_path / "t.json").write_text(json.dumps(typo))
    s.spec.labels = ["a", "b", "c"]
    with pytest.raises(SuiteError, match=r"test targets not in the label list: \['cc'\]"):
        load_dataset(s, limit=2)
