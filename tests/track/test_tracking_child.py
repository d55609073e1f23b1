"""MLflow logging in a child process (harness.track.child), as `harness run` does it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rundir_fixture import make_run_dir

from harness.errors import TrackingError
from harness.track.child import TrackingChild


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_child_logs_a_run_dir_like_log_run(tmp_path):
    from mlflow import MlflowClient

    run_dir = make_run_dir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    child = TrackingChild().start()
    try:
        child.warm()
        child.warm()  # idempotent: one "warm" line only
        pid = child.log(run_dir, uri)
    finally:
        child.close()
    run = MlflowClient(uri).get_run(pid)
    assert run.data.tags["harness.run_id"] == "20261125-132501-ab12"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert run.data.metrics["ft-mini.macro_f1"] == pytest.approx(
        summary["variants"]["ft-mini"]["metrics"]["macro_f1"]["value"]
    )


@pytest.mark.parametrize("begun", [False, True])
def test_child_reports_an_unreachable_store_as_tracking_error(tmp_path, begun):
    """begun: the request came at begin(); the child answered and exited before "finish", which
    then meets a closed pipe — the answer still reaches the parent."""
    run_dir = make_run_dir(tmp_path)
    bad = f"http://127.0.0.1:{_free_port()}"
    child = TrackingChild().start()  # no warm: logging imports MLflow itself
    try:
        if begun:
            child.begin(run_dir, bad)
            child.proc.wait(timeout=60)
        with pytest.raises(TrackingError) as e:
            child.log(run_dir, bad)
    finally:
        child.close()
    assert str(e.value) == (
        f"tracking server {bad} is unreachable ([Errno 111] Connection refused) — results stay in "
        f"{run_dir}; log them later with `harness report {run_dir} --log`"
    )


def test_child_logs_while_the_report_is_written_and_adds_it_at_finish(tmp_path):
    """begin() once summary.json exists: the runs are logged before the report is; the report
    written after begin() is still in the parent's artifacts, and only then is it FINISHED."""
    from mlflow import MlflowClient

    run_dir = make_run_dir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    child = TrackingChild().start()
    try:
        child.warm()
        child.begin(run_dir, uri)
        parent = _wait_for_parent(uri)
        assert parent.info.status == "RUNNING"  # logged, waiting for the report
        (run_dir / "report.md").write_text("# written after begin\n")
        pid = child.log(run_dir, uri)
    finally:
        child.close()
    client = MlflowClient(uri)
    assert pid == parent.info.run_id and client.get_run(pid).info.status == "FINISHED"
    report = client.download_artifacts(pid, "report.md", str(tmp_path))
    assert Path(report).read_text() == "# written after begin\n"


def test_child_deletes_what_it_logged_when_the_report_never_comes(tmp_path):
    """The parent fails or is stopped between summary.json and its report: no half-logged run
    is left in MLflow (the run directory stays for `harness report RUN --log`)."""
    from mlflow import MlflowClient

    run_dir = make_run_dir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    child = TrackingChild().start()
    proc = child.proc
    child.warm()
    child.begin(run_dir, uri)
    parent = _wait_for_parent(uri)
    child.close()  # EOF instead of "finish"
    assert proc.returncode == 0
    exp = MlflowClient(uri).get_experiment(parent.info.experiment_id)
    assert MlflowClient(uri).search_runs([exp.experiment_id]) == []


def _wait_for_parent(uri: str, timeout: float = 300.0):
    # A wait, not a timing: a first run creates the store (~50 migrations), which on a loaded
    # 2-core CI machine took more than 60 s. Opened as harness opens it (under the store's lock):
    # a bare MlflowClient here creates and migrates the store itself, racing the child's creation
    # of it (the two-first-runs race), and the child then logged nothing.
    from harness.track.store import tracking_client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client = tracking_client(uri)
            exp = client.get_experiment_by_name("quickstart")
            runs = (
                client.search_runs(
                    [exp.experiment_id], filter_string="tags.`harness.role` = 'suite'"
                )
                if exp
                else []
            )
        except Exception:  # the child is still creating the store
            runs = []
        if runs:
            return runs[0]
        time.sleep(0.05)
    raise AssertionError("the child logged no parent run")


def test_child_exits_on_eof_without_logging(tmp_path):
    child = TrackingChild().start()
    proc = child.proc
    child.warm()
    start = time.monotonic()
    child.close()  # the run failed or was interrupted: nothing to log
    assert proc.returncode == 0
    assert time.monotonic() - start < 2  # did not wait for MLflow's import to finish


def test_cli_run_logs_through_the_child_and_exits_with_the_verdict(openai_server, tmp_path):
    """A real `harness run` process: MLflow never loads in it, the child logs the run."""
    from conftest import FAKE_KEY, write_suite
    from mlflow import MlflowClient

    server = openai_server()
    suite = write_suite(tmp_path, server.url)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    env = dict(os.environ, OPENAI_API_KEY=FAKE_KEY, MLFLOW_TRACKING_URI=uri)
    cmd = [sys.executable, "-m", "harness.cli", "run", str(suite), "--runs-dir", "runs", "--json"]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # flushed before the fast exit
    exp = MlflowClient(uri).get_experiment_by_name("test-suite")
    (parent,) = MlflowClient(uri).search_runs(
        [exp.experiment_id], filter_string="tags.`harness.role` = 'suite'"
    )
    assert parent.data.tags["harness.run_id"] == summary["run_id"]
    assert Path(tmp_path / "runs" / "test-suite" / summary["run_id"] / "report.html").exists()


def test_cli_guarded_run_reads_the_ledger_through_the_child(openai_server, tmp_path):
    """The guard's history comes from MLflow via the logging child: the second run (another
    runs directory, so only MLflow knows the first) folds the first into its ledger, and MLflow
    never loads in the `harness run` process."""
    from conftest import FAKE_KEY, intent_answer, write_suite

    server = openai_server(intent_answer)
    guard = "\nguard: {metric: accuracy, test: superiority, margin: 0.05, applies_to: [few-shot]}"
    suite = write_suite(tmp_path, server.url, extra=guard)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    env = dict(os.environ, OPENAI_API_KEY=FAKE_KEY, MLFLOW_TRACKING_URI=uri)
    summaries = []
    for runs in ("runs-a", "runs-b"):
        cmd = [sys.executable, "-m", "harness.cli", "run", str(suite), "--runs-dir", runs]
        done = subprocess.run(
            [*cmd, "--json", "--timings"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode in (0, 1), done.stderr
        summaries.append(json.loads(done.stdout))
    first, second = summaries
    rows = second["guard"]["verdicts"]["few-shot"]["ledger"]["history"]
    assert [r["run_id"] for r in rows] == [first["run_id"], None]
    (timings,) = (tmp_path / "runs-b").glob("*/*/timings.json")
    assert "mlflow" not in json.loads(timings.read_text())["imported"]


def test_cli_guarded_run_with_an_unreachable_store_says_where_its_ledger_came_from(
    openai_server, tmp_path
):
    from conftest import FAKE_KEY, intent_answer, write_suite

    server = openai_server(intent_answer)
    guard = "\nguard: {metric: accuracy, test: superiority, margin: 0.05, applies_to: [few-shot]}"
    suite = write_suite(tmp_path, server.url, extra=guard)
    bad = f"http://127.0.0.1:{_free_port()}"
    env = dict(os.environ, OPENAI_API_KEY=FAKE_KEY)
    cmd = [sys.executable, "-m", "harness.cli", "run", str(suite), "--tracking-uri", bad, "--json"]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    assert (
        f"ledger read from runs/test-suite only: the tracking store could not be read (tracking "
        f"server {bad} is unreachable ([Errno 111] Connection refused) — the sunk-cost ledger "
        "needs the run history)" in json.loads(done.stdout)["notes"]
    )
    assert "Warning: MLflow logging skipped" in done.stderr


def test_cli_run_finishes_when_the_store_is_unreachable(openai_server, tmp_path):
    from conftest import FAKE_KEY, write_suite

    server = openai_server()
    suite = write_suite(tmp_path, server.url)
    bad = f"http://127.0.0.1:{_free_port()}"
    env = dict(os.environ, OPENAI_API_KEY=FAKE_KEY)
    cmd = [sys.executable, "-m", "harness.cli", "run", str(suite), "--tracking-uri", bad]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0
    (run_dir,) = (tmp_path / "runs" / "test-suite").iterdir()
    assert (
        f"Warning: MLflow logging skipped: tracking server {bad} is unreachable ([Errno 111] "
        f"Connection refused) — results stay in runs/test-suite/{run_dir.name}; log them later with "
        f"`harness report runs/test-suite/{run_dir.name} --log`" in done.stderr
    )
    assert (run_dir / "summary.json").exists() and (run_dir / "report.md").exists()


def test_exit_process_raises_systemexit_under_a_test_runner():
    from harness.run.warmup import exit_process

    with pytest.raises(SystemExit) as e:
        exit_process(3)  # pytest swapped the streams: a normal exit, never os._exit
    assert e.value.code == 3
