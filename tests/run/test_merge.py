"""`harness run --shard i/N` and `harness merge`: the shards of a run joined into one run whose
summary and verdict equal an unsharded run over the same answers; every way of merging the
wrong directories is refused with exit 2."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from conftest import intent_answer, write_suite

from harness.errors import SuiteError
from harness.run.merge import merge_runs
from harness.run.options import RunOptions, parse_shard
from harness.run.pipeline import run_suite

GUARD = """
guard:
  metric: accuracy
  test: non-inferiority
  margin: 0.1
  applies_to: [few-shot]
"""
# Fields that describe when and how a run was made, not what it found.
RUN_FIELDS = {"run_id", "started_at", "finished_at", "merged_from"}


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and any relative output stay in the test's tmp_path."""


def uneven_answer(messages, body) -> str:
    """The zero-shot prompt (no worked examples) gets every 4th question wrong."""
    text = messages[-1]["content"]
    number = int(re.search(r"#(\d+)\)", text.rsplit("Question:", 1)[-1]).group(1))
    if "Q:" not in text and number % 4 == 0:
        return json.dumps({"intent": "exchange_rate" if "card" in text else "card_arrival"})
    return intent_answer(messages, body)


def comparable(summary: dict) -> dict:
    out = {k: v for k, v in summary.items() if k not in RUN_FIELDS}
    if out.get("protocol"):  # the run that registered it is run-specific
        out["protocol"] = {k: v for k, v in out["protocol"].items() if k != "registered_run_id"}
    return out


def test_merged_shards_equal_an_unsharded_run(openai_server, fake_key, tmp_path):
    server = openai_server(uneven_answer)
    suite = write_suite(tmp_path, server.url, n=31, extra=GUARD)
    # The answers once, into a cache; then the unsharded run and the shards both answer from
    # copies of it, each with a ledger of its own: the same answers, the same first iteration.
    first = run_suite(suite, runs_dir=tmp_path / "first", workers=0)
    assert first.summary["variants"]["zero-shot"]["metrics"]["accuracy"]["value"] < 1
    whole_dir, shard_dir = tmp_path / "whole", tmp_path / "sharded"
    for d in (whole_dir, shard_dir):
        d.mkdir()
        shutil.copy(tmp_path / "first" / ".cache.sqlite", d / ".cache.sqlite")
    sent = server.requests
    whole = run_suite(
        suite, runs_dir=whole_dir, workers=0, tracking_uri=f"sqlite:///{tmp_path}/a.db"
    )
    shards = [run_suite(suite, runs_dir=shard_dir, workers=0, shard=f"{i}/3") for i in (1, 2, 3)]
    assert server.requests == sent  # every answer came from the cache
    # Disjoint slices that cover the test set, sizes within one of each other.
    ids = [{r["id"] for r in s.records["zero-shot"]} for s in shards]
    assert [len(x) for x in ids] == [11, 10, 10]
    assert set().union(*ids) == {e.id for e in whole.dataset.test}
    assert sum(len(x) for x in ids) == 31
    for s in shards:  # a shard has no verdict and does not count as an iteration
        assert "guard" not in s.summary and "ledger_entry" not in s.summary
        assert s.exit_code == 0
        assert any(n.startswith(f"shard {s.summary['shard']}: ") for n in s.summary["notes"])
    merged = merge_runs(
        [s.run_dir for s in reversed(shards)],  # any order
        RunOptions(runs_dir=shard_dir, tracking_uri=f"sqlite:///{tmp_path}/b.db"),
    )
    assert merged.summary["merged_from"] == [s.run_id for s in shards]
    assert comparable(merged.summary) == comparable(whole.summary)
    assert merged.exit_code == whole.exit_code
    on_disk = json.loads((merged.run_dir / "summary.json").read_text())
    assert comparable(on_disk) == comparable(
        json.loads((whole.run_dir / "summary.json").read_text())
    )
    assert (merged.run_dir / "report.md").exists()
    # The merged run, not the shards, is in the ledger: the next run folds two runs, not five.
    again = run_suite(
        suite, runs_dir=shard_dir, workers=0, tracking_uri=f"sqlite:///{tmp_path}/b.db"
    )
    ledger = again.summary["guard"]["verdicts"]["few-shot"]["ledger"]
    assert ledger["runs"] == 2


def test_shard_option_is_checked():
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0", "1/2/3"):
        with pytest.raises(SuiteError, match=r"--shard .*: expected i/N"):
            RunOptions(shard=bad).check()


@pytest.fixture
def three_shards(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=9)
    runs = tmp_path / "runs"
    outs = [run_suite(suite, runs_dir=runs, workers=0, shard=f"{i}/3") for i in (1, 2, 3)]
    return suite, runs, outs


def test_merge_refuses_what_is_not_one_run(three_shards, tmp_path):
    suite, runs, (a, b, c) = three_shards

    def refused(dirs, match):
        with pytest.raises(SuiteError, match=match):
            merge_runs(dirs, RunOptions(runs_dir=runs))

    refused([a.run_dir, b.run_dir], r"shard 3/3 missing")
    refused([a.run_dir, b.run_dir, b.run_dir, c.run_dir], r"shard 2/3 given twice")
    refused([], r"pass the shard run directories")
    whole = run_suite(suite, runs_dir=runs, workers=0)
    refused([a.run_dir, b.run_dir, whole.run_dir], r"not a shard")
    two = run_suite(suite, runs_dir=runs, workers=0, shard="2/2")
    refused([a.run_dir, b.run_dir, c.run_dir, two.run_dir], r"is shard 2/2 but .* one of 3")
    one_variant = run_suite(suite, runs_dir=runs, workers=0, shard="3/3", variants=["zero-shot"])
    refused([a.run_dir, b.run_dir, one_variant.run_dir], r"different variants")
    # The suite edited between shards (a prompt changed): another experiment.
    suite.write_text(suite.read_text().replace("Question:", "Q?"), encoding="utf-8")
    edited = run_suite(suite, runs_dir=runs, workers=0, shard="3/3")
    refused([a.run_dir, b.run_dir, edited.run_dir], r"different suite \(variants, prompts")
    # Data changed after the shards ran.
    data = tmp_path / "data" / "test.csv"
    suite.write_text(suite.read_text().replace("Q?", "Question:"), encoding="utf-8")
    data.write_text(data.read_text() + '"When will my card arrive? (#99)",card_arrival\n')
    refused([a.run_dir, b.run_dir, c.run_dir], r"data/test.csv changed since the shards ran")


def test_merge_refuses_an_unfinished_or_tampered_shard(three_shards):
    suite, runs, (a, b, c) = three_shards
    results = b.run_dir / "results" / "zero-shot.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:-1]))
    with pytest.raises(SuiteError, match=r"variant 'zero-shot' of shard 2/3 has 1 missing result"):
        merge_runs([a.run_dir, b.run_dir, c.run_dir], RunOptions(runs_dir=runs))
    results.write_text("".join(lines) + (a.run_dir / "results" / "zero-shot.jsonl").read_text())
    with pytest.raises(SuiteError, match=r"3 result\(s\) of examples outside its slice"):
        merge_runs([a.run_dir, b.run_dir, c.run_dir], RunOptions(runs_dir=runs))
    (c.run_dir / "summary.json").unlink()
    with pytest.raises(SuiteError, match=r"shard 3/3 did not finish .* --resume"):
        merge_runs([a.run_dir, c.run_dir, b.run_dir], RunOptions(runs_dir=runs))


def test_resumed_shard_keeps_its_slice(three_shards):
    suite, runs, (a, _, _) = three_shards
    with pytest.raises(SuiteError, match=r"that run is shard 1/3"):
        run_suite(suite, runs_dir=runs, workers=0, resume=a.run_id, shard="2/3")
    again = run_suite(suite, runs_dir=runs, workers=0, resume=a.run_id)
    assert again.summary["shard"] == "1/3" and again.summary["n_examples"] == 3


def test_merge_cli_exit_codes(three_shards, tmp_path):
    suite, runs, (a, b, c) = three_shards
    cmd = [sys.executable, "-m", "harness.cli", "merge", "--runs-dir", str(runs)]
    bad = subprocess.run([*cmd, str(a.run_dir), str(b.run_dir)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.startswith("Error: shard 3/3 missing") and "Traceback" not in bad.stderr
    ok = subprocess.run(
        [*cmd, "--json", str(a.run_dir), str(b.run_dir), str(c.run_dir)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["n_examples"] == 9 and summary["merged_from"] == [a.run_id, b.run_id, c.run_id]
