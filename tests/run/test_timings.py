"""`harness run --timings` and what a run without calls loads: a fully cached or fully resumed
run imports neither litellm nor the provider stack, nor MLflow (checked
in the CLI process's sys.modules), and is still logged to MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import FAKE_KEY, intent_answer, write_suite

from harness.run.timings import Timings

PHASES = [
    "start-up imports",
    "suite/data",
    "prompts/index",
    "calls",
    "post-call stages",
    "summary/guard",
    "report/plots",
    "tracking",
]
PROVIDER_STACK = {"litellm", "openai", "tiktoken"}


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and any relative output stay in the test's tmp_path."""


def harness_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", *args, "--timings"],
        capture_output=True,
        text=True,
        env={**os.environ, "OPENAI_API_KEY": FAKE_KEY},
        timeout=300,
    )


def timings_of(runs, run_id=None) -> dict:
    paths = sorted(runs.glob("*/*/timings.json"))
    path = paths[-1] if run_id is None else next(p for p in paths if p.parent.name == run_id)
    return json.loads(path.read_text())


def test_cached_and_resumed_runs_load_no_provider_stack(openai_server, tmp_path):
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=6)
    runs = tmp_path / "runs"
    first = harness_run(str(suite), "--runs-dir", str(runs), "--workers", "0")
    assert first.returncode == 0, first.stderr
    t = timings_of(runs)
    assert [p["name"] for p in t["phases"]] == PHASES
    assert "litellm" in t["imported"]  # it made calls, in this process
    assert all(p["wall_s"] >= 0 and p["cpu_s"] >= 0 for p in t["phases"])
    assert "phase" in first.stderr and "heavy modules loaded here: " in first.stderr
    sent = server.requests
    cached = harness_run(str(suite), "--runs-dir", str(runs))
    assert cached.returncode == 0, cached.stderr
    assert server.requests == sent
    assert not PROVIDER_STACK & set(timings_of(runs)["imported"])
    # The guard's history comes through the logging child: MLflow stays out of this process.
    assert "mlflow" not in timings_of(runs)["imported"]
    # ... and the run is still logged to MLflow (by the child process), read back.
    from mlflow import MlflowClient

    cached_id = json.loads(sorted(runs.glob("*/*/summary.json"))[-1].read_text())["run_id"]
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("test-suite")
    logged = client.search_runs([exp.experiment_id], f"tags.`harness.run_id` = '{cached_id}'")
    assert len(logged) == 1 + 2 and {r.info.status for r in logged} == {"FINISHED"}
    run_id = sorted(p.name for p in (runs / "test-suite").iterdir())[0]
    resumed = harness_run(str(suite), "--runs-dir", str(runs), "--resume", run_id, "--no-cache")
    assert resumed.returncode == 0, resumed.stderr
    assert server.requests == sent
    assert not PROVIDER_STACK & set(timings_of(runs, run_id)["imported"])


def test_phases_entered_twice_add_up():
    t = Timings()
    t.add("calls", 1.0, 0.5)
    t.add("calls", 2.0, 0.25)
    calls = [p for p in t.as_dict()["phases"] if p["name"] == "calls"]
    assert calls == [{"name": "calls", "wall_s": 3.0, "cpu_s": 0.75}]
    assert t.table().splitlines()[0].split() == ["phase", "wall", "s", "CPU", "s"]


def test_a_run_with_workers_imports_litellm_only_there(openai_server, tmp_path):
    """The checks before the first call (provider known, API key set) are answered by a worker,
    which imports litellm anyway: the run's own process loads none of the provider stack."""
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=6)
    runs = tmp_path / "runs"
    run = harness_run(str(suite), "--runs-dir", str(runs), "--workers", "2")
    assert run.returncode == 0, run.stderr
    assert server.requests == 12
    assert not PROVIDER_STACK & set(timings_of(runs)["imported"])
    # The worker's answer still stops a model litellm cannot place, before any call.
    suite.write_text(suite.read_text().replace("model: openai/fake-model", "model: fake-model"))
    bad = harness_run(str(suite), "--runs-dir", str(runs), "--workers", "2", "--no-cache")
    assert bad.returncode == 2, bad.stderr
    assert "zero-shot: model 'fake-model' names no provider litellm knows" in bad.stderr
    assert server.requests == 12
