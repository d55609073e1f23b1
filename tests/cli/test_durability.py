"""Nothing paid twice: a run killed (SIGKILL) or interrupted (Ctrl-C) at a random point and then
resumed repeats at most the calls that were in flight. The server counts every request."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import intent_answer, write_suite

CONCURRENCY = 8
N = 240


def _start(suite, tmp_path, *extra):
    cmd = [sys.executable, "-m", "harness.cli", "run", str(suite), "--runs-dir"]
    cmd += [str(tmp_path / "runs"), "--concurrency", str(CONCURRENCY), *extra]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    return subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _stop_after(proc, server, requests: int, sig) -> tuple[str, str]:
    deadline = time.monotonic() + 120
    while server.requests < requests and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    if proc.poll() is None:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return out.decode(), err.decode()


def _suite(tmp_path, server):
    return write_suite(tmp_path, server.url, n=N, variants="\n  - name: zero-shot\n")


@pytest.mark.parametrize(
    ("workers", "first"),
    [("0", ()), ("2", ()), ("2", ("--no-cache",))],
    ids=["one-process", "workers", "workers-no-cache"],
)
def test_kill_9_at_random_points_repeats_at_most_the_calls_in_flight(
    openai_server, fake_key, tmp_path, workers, first
):
    """`first` goes to the first invocation only: the resumes are the printed resume command,
    so a --no-cache run must keep its own answer journal (and its no-cache) across them."""
    server = openai_server(intent_answer, latency=0.01)
    suite = _suite(tmp_path, server)
    rng = random.Random(20 + int(workers) + len(first))
    kills = 0
    extra = first
    while True:
        at = server.requests + rng.randint(10, 60)
        proc = _start(suite, tmp_path, "--workers", workers, *extra)
        _stop_after(proc, server, at, signal.SIGKILL)
        extra = ("--resume",)
        if proc.returncode != -signal.SIGKILL:
            break
        kills += 1
        # Each kill may repeat what was in flight, never an answered call.
        assert server.requests - len(server.prompts) <= kills * CONCURRENCY
    assert proc.returncode == 0 and kills >= 2
    assert len(server.prompts) == N  # every example answered once in the end
    assert server.requests - N <= kills * CONCURRENCY, (server.requests, kills)
    (run_dir,) = (tmp_path / "runs" / "test-suite").iterdir()
    records = [json.loads(line) for line in (run_dir / "results" / "zero-shot.jsonl").open()]
    assert len(records) == N
    # Every answer was paid for by this run, so its spend counts each once: an answer that
    # reached the cache but not results/ before a kill is this run's, not a cache hit.
    assert not [r["id"] for r in records if r["cached"]]
    assert not (run_dir / "answers.sqlite").exists()  # the --no-cache journal goes at the end
    if first:
        assert not (tmp_path / "runs" / ".cache.sqlite").exists()  # and the cache stayed out


def test_ctrl_c_exits_130_without_traceback_and_repeats_at_most_the_calls_in_flight(
    openai_server, fake_key, tmp_path
):
    server = openai_server(intent_answer, latency=0.01)
    suite = _suite(tmp_path, server)
    out, err = _stop_after(_start(suite, tmp_path, "--workers", "0"), server, 60, signal.SIGINT)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "Resume with: harness run" in err
    first = server.requests
    proc = _start(suite, tmp_path, "--workers", "0", "--resume")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert len(server.prompts) == N
    assert server.requests - N <= CONCURRENCY, (first, server.requests)


def test_two_first_runs_at_once_on_a_fresh_store_are_both_logged(openai_server, fake_key, tmp_path):
    from mlflow import MlflowClient

    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3, variants="\n  - name: zero-shot\n")
    procs = [_start(suite, tmp_path, "--workers", "0") for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e.decode()[-2000:] for _, e in outs]
    assert not any(b"MLflow logging skipped" in e for _, e in outs)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("test-suite")
    parents = client.search_runs([exp.experiment_id], "tags.`harness.role` = 'suite'")
    assert len(parents) == 2
    third = _start(suite, tmp_path, "--workers", "0")  # the store still works afterwards
    assert third.wait(300) == 0
