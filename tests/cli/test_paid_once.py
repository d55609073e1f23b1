"""Paid objects are created once: a provider that creates the file, the fine-tuning job or the
batch and then answers 500 gets no second create; harness finds the object by its metadata (a
file by its name and purpose), adopts it and records it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import intent_answer, write_suite

from harness.cli import main
from harness.finetune.records import JobStore, suite_lineage
from harness.suite import load_suite


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and runs/ stay in the test's tmp_path."""


def _ft_suite(tmp_path, url):
    from finetune.test_finetune import write_suite as ft_suite

    return ft_suite(tmp_path, url)


def test_finetune_job_and_uploads_created_once_when_the_provider_answers_500(
    openai_server, fake_key, tmp_path
):
    from finetune.test_finetune import answer

    server = openai_server(answer, fail_after_create={"files": 1, "jobs": 1})
    suite = _ft_suite(tmp_path, server.url)
    result = CliRunner().invoke(
        main, ["finetune", str(suite), "--poll-interval", "0"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    # One training upload, one validation upload, one job: the 500s were looked up and adopted.
    assert len(server.files.uploads) == 2
    assert len(server.fine_tuning.created) == 1
    jobs = JobStore("runs", suite_lineage(load_suite(suite))).jobs("ft")
    assert [j["job_id"] for j in jobs] == ["ftjob-000001"]
    assert jobs[0]["status"] == "succeeded"


def test_finetune_records_and_cancels_duplicates_an_earlier_retry_created(
    openai_server, fake_key, tmp_path
):
    from finetune.test_finetune import answer

    server = openai_server(answer)
    suite = _ft_suite(tmp_path, server.url)
    assert _finetune(suite).exit_code == 0
    store = JobStore("runs", suite_lineage(load_suite(suite)))
    # The record is lost, and the provider holds a second job for the same inputs (what a blind
    # SDK retry of the create left): the next command adopts one and counts the other.
    store.path.unlink()
    dup = dict(server.fine_tuning.jobs["ftjob-000001"], id="ftjob-000009", status="running")
    dup["created_at"] += 1
    server.fine_tuning.jobs["ftjob-000009"] = dup
    server.fine_tuning._events["ftjob-000009"] = []
    server.fine_tuning._checkpoints["ftjob-000009"] = []
    server.fine_tuning._state["ftjob-000009"] = dict(server.fine_tuning._state["ftjob-000001"])
    result = _finetune(suite)
    assert result.exit_code == 0, result.output
    assert "job ftjob-000009 is a duplicate of ftjob-000001" in result.output
    assert len(server.fine_tuning.created) == 1  # nothing new was created
    assert server.fine_tuning.jobs["ftjob-000009"]["status"] == "cancelled"
    jobs = {j["job_id"]: j for j in store.jobs("ft")}
    assert jobs["ftjob-000009"]["duplicate_of"] == "ftjob-000001"
    assert jobs["ftjob-000009"]["status"] == "cancelled"
    assert store.latest("ft")["job_id"] == "ftjob-000001"


def _finetune(suite):
    return CliRunner().invoke(
        main, ["finetune", str(suite), "--poll-interval", "0"], catch_exceptions=False
    )


def test_batch_created_once_when_the_provider_answers_500(openai_server, fake_key, tmp_path):
    server = openai_server(
        intent_answer, batch_delay=0.1, fail_after_create={"files": 1, "batches": 1}
    )
    suite = write_suite(tmp_path, server.url, n=6)
    result = CliRunner().invoke(
        main,
        ["run", str(suite), "--batch", "--batch-poll", "0.05", "--variant", "zero-shot"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert server.batch_api.created == 1
    assert len([o for o in server.files.uploads if o["purpose"] == "batch"]) == 1
    state = json.loads(next((tmp_path / "runs").glob("*/*/batch.json")).read_text())
    assert [b["joined"] for b in state["batches"]] == [True]
    assert server.requests == 0  # no live call either
