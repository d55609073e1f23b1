"""Run directory: resolved suite, JSONL appends, torn lines, resume bookkeeping."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import write_suite

from harness._util.jsonl import read_valid_prefix
from harness.data.dataset import load_dataset
from harness.errors import SuiteError
from harness.rundir.reader import resolved_suite
from harness.rundir.writer import ResultsWriter, create_run, open_run
from harness.suite import load_suite


@pytest.fixture
def suite_and_data(tmp_path):
    suite = load_suite(write_suite(tmp_path, "http://127.0.0.1:9/v1", n=6))
    return suite, load_dataset(suite)


def testresolved_suite_has_hashes_run_options_and_reloads(tmp_path, suite_and_data):
    suite, data = suite_and_data
    run = create_run(tmp_path / "runs", suite, data, variants=["zero-shot"], limit=3)
    assert run.path.parent == tmp_path / "runs" / "test-suite"
    doc = yaml.safe_load((run.path / "suite.yaml").read_text())
    assert doc["data_hashes"] == data.hashes and len(doc["data_hashes"]["data/test.csv"]) == 64
    assert doc["run"]["variants"] == ["zero-shot"] and doc["run"]["limit"] == 3
    few = next(v for v in doc["variants"] if v["name"] == "few-shot")
    assert few["model"] == "openai/fake-model" and few["few_shot"]["k"] == 2  # defaults applied
    # The report side can rebuild the suite from this file alone.
    from harness.rundir.reader import RunFiles

    rebuilt = resolved_suite(RunFiles(path=run.path, summary={}, suite=doc, records={}))
    assert [v.name for v in rebuilt.variants] == ["zero-shot", "few-shot"]
    assert len(load_dataset(rebuilt).test) == 6


def test_the_resolved_suite_of_a_finetune_variant_reloads(tmp_path):
    variants = (
        "\n  - name: zero-shot\n  - name: lora\n    kind: fine-tuned\n"
        "    base_model: local/smollm2\n    finetune: {provider: local, method: lora}\n"
    )
    suite = load_suite(write_suite(tmp_path, "http://127.0.0.1:9/v1", n=6, variants=variants))
    run = create_run(
        tmp_path / "runs", suite, load_dataset(suite), variants=["zero-shot"], limit=None
    )
    doc = yaml.safe_load((run.path / "suite.yaml").read_text())
    from harness.rundir.reader import RunFiles

    rebuilt = resolved_suite(RunFiles(path=run.path, summary={}, suite=doc, records={}))
    assert [(v.name, v.model) for v in rebuilt.variants] == [
        ("zero-shot", "openai/fake-model"),
        ("lora", "finetune:lora"),
    ]


def test_writer_appends_lines_and_close_flushes(tmp_path, suite_and_data):
    suite, data = suite_and_data
    run = create_run(tmp_path / "runs", suite, data, variants=["zero-shot"], limit=None)
    writer = ResultsWriter(run, interval=0.05)
    for i in range(25):
        writer.append(
            "zero-shot", {"id": f"e{i}", "repeat": 0, "output": '{"a": "ü"}', "error": None}
        )
    writer.close()
    records, valid = read_valid_prefix(run.results_path("zero-shot"))
    assert [r["id"] for r in records] == [f"e{i}" for i in range(25)]
    assert records[0]["output"] == '{"a": "ü"}'
    assert valid == run.results_path("zero-shot").stat().st_size


def test_resume_cuts_a_torn_line_and_drops_error_records(tmp_path, suite_and_data):
    suite, data = suite_and_data
    run = create_run(tmp_path / "runs", suite, data, variants=["zero-shot"], limit=None)
    path = run.results_path("zero-shot")
    lines = [
        json.dumps({"id": "a", "repeat": 0, "error": None}),
        json.dumps({"id": "b", "repeat": 0, "error": "timeout: x"}),
        json.dumps({"id": "a", "repeat": 1, "error": None}),
    ]
    path.write_text("\n".join(lines) + '\n{"id": "c", "rep')  # killed mid-write
    reopened = open_run(tmp_path / "runs", suite, None)
    assert reopened.run_id == run.run_id
    assert reopened.prepare_resume("zero-shot") == {("a", 0), ("a", 1)}
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["a", "a"]


def test_open_run_errors_name_the_fix(tmp_path, suite_and_data):
    suite, data = suite_and_data
    with pytest.raises(
        SuiteError, match="no run of suite 'test-suite'.*start one without --resume"
    ):
        open_run(tmp_path / "runs", suite, None)
    run = create_run(tmp_path / "runs", suite, data, variants=["zero-shot"], limit=None)
    with pytest.raises(SuiteError, match=f"no run 'nope'.*runs: {run.run_id}"):
        open_run(tmp_path / "runs", suite, "nope")
    assert open_run(tmp_path / "runs", suite, run.run_id).meta["variants"] == ["zero-shot"]
