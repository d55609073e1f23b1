"""summary.json read back as typed values (harness.results): a file of this version, one of
the version before (upgraded), and the clear errors for a foreign, newer or broken file."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError
from harness.results import SCHEMA_VERSION, family_fingerprint, parse_summary, read_summary
from harness.rundir.reader import load_run

V1_SINGLE = {
    "schema_version": 1,
    "suite": "s",
    "baseline": "base",
    "hypothesis": {"metric": "macro_f1", "test": "superiority", "margin": 0.05, "confidence": 0.95},
    "variants": {"base": {}, "ft": {}},
    "guard": {
        "fingerprint": "abc",
        "verdicts": {"ft": {"verdict": "fail", "delta": {"metric": "macro_f1", "value": 0.01}}},
    },
}


def test_version_1_single_guard_is_a_list_of_one():
    s = parse_summary(V1_SINGLE)
    assert [(h.key, h.candidate, h.baseline, h.metric, h.margin) for h in s.hypotheses] == [
        ("ft", "ft", "base", "macro_f1", 0.05)
    ]
    assert s.schema_version == SCHEMA_VERSION == 2
    assert s.guard.verdicts["ft"].verdict == "fail"
    assert s.guard.verdicts["ft"].delta.value == 0.01


def test_version_1_list_guard_keeps_its_entries():
    hyps = [
        {
            "key": "a",
            "candidate": "a",
            "baseline": "b",
            "metric": "accuracy",
            "test": "non-inferiority",
            "margin": 0.03,
            "confidence": 0.9,
        },
    ]
    s = parse_summary({**V1_SINGLE, "hypothesis": {"hypotheses": hyps, "correction": "holm"}})
    assert [h.key for h in s.hypotheses] == ["a"] and s.hypotheses[0].confidence == 0.9


def test_family_fingerprint_sees_every_hypothesis():
    h = {
        "key": "a",
        "candidate": "a",
        "baseline": "b",
        "metric": "m",
        "test": "superiority",
        "margin": 0.03,
        "confidence": 0.95,
    }
    assert family_fingerprint([h]) != family_fingerprint([{**h, "margin": 0.02}])
    assert family_fingerprint([h]) != family_fingerprint([h, {**h, "key": "c"}])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x"}, "not a harness summary.json (no schema_version / suite)"),
        ([1, 2], "not a harness summary.json"),
        ({**V1_SINGLE, "schema_version": 99}, "schema_version 99 is newer than this harness"),
        (
            {**V1_SINGLE, "guard": {"verdicts": {"ft": {"verdict": "maybe"}}}},
            "guard.verdicts.ft.verdict: Input should be 'pass', 'fail', 'inconclusive' or "
            "'abandon'",
        ),
        # A variant's figures are typed: a hand-edited or foreign figure is named, not read.
        (
            {**V1_SINGLE, "variants": {"ft": {"n_calls": "many"}}},
            "variants.ft.n_calls: Input should be a valid integer",
        ),
        (
            {**V1_SINGLE, "variants": {"ft": {"metrics": {"accuracy": {"value": 0.9, "lo": 1}}}}},
            "variants.ft.metrics.accuracy.lo: Extra inputs are not permitted",
        ),
        (
            {**V1_SINGLE, "variants": {"ft": {"delta": {"accuracy": {"ci_low": "wide"}}}}},
            "variants.ft.delta.accuracy.ci_low: Input should be a valid number",
        ),
    ],
)
def test_foreign_newer_or_broken_files_name_the_file_and_the_fix(tmp_path, data, message):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(data))
    with pytest.raises(HarnessError) as e:
        read_summary(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)
    assert "—" in str(e.value)  # and what to do


def test_run_reader_rejects_a_foreign_summary(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"accuracy": 0.9}))
    with pytest.raises(HarnessError, match="not a harness summary.json"):
        load_run(tmp_path)


def test_harness_report_on_a_foreign_summary_exits_2_with_the_fix(tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    (tmp_path / "summary.json").write_text(json.dumps({"schema_version": 7, "suite": "s"}))
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'summary.json'}: schema_version 7 is newer than this harness" in (
        result.output
    )
    assert "Traceback" not in result.output
