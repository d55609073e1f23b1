"""Worker processes (harness.calls.pool): one litellm import, forked workers, results back in order."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from harness.calls.engine import CallSpec
from harness.calls.pool import WorkerPool

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="the zygote forks on Linux only")


def _specs(url: str, n: int) -> list[CallSpec]:
    return [
        CallSpec(
            model="openai/fake-model",
            messages=[{"role": "user", "content": f"Question: echo {i}"}],
            api_base=url,
            params={"max_tokens": 8},
        )
        for i in range(n)
    ]


def _echo(messages, body) -> str:
    return json.dumps({"n": int(messages[-1]["content"].rsplit(" ", 1)[1])})


def _descendants(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        kids += [int(k) for k in text]
    return kids


@linux_only
def test_three_workers_from_one_import_answer_every_call(openai_server, fake_key):
    server = openai_server(_echo, latency=0.01)
    pool = WorkerPool(3, concurrency=6).start()
    assert len(pool.procs) == 1  # the first worker forks the others after its litellm import
    got: dict[int, str] = {}
    try:
        pool.run(_specs(server.url, 30), lambda i, r: got.__setitem__(i, r.output))
    finally:
        pool.close()
    assert {i: json.loads(o)["n"] for i, o in got.items()} == {i: i for i in range(30)}
    assert pool.requests == server.requests == 30
    assert not pool.procs[0].is_alive()


@linux_only
def test_a_dead_worker_turns_its_unfinished_calls_into_error_records(openai_server, fake_key):
    server = openai_server(_echo, latency=0.5)
    pool = WorkerPool(2, concurrency=2).start()
    zygote = pool.procs[0].pid
    results: dict[int, object] = {}

    def on_result(i, result):
        results[i] = result

    import threading

    def kill_the_forked_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            kids = _descendants(zygote)
            if kids and server.requests >= 2:
                os.kill(kids[0], signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_forked_worker)
    killer.start()
    try:
        pool.run(_specs(server.url, 8), on_result)
    finally:
        killer.join()
        pool.close()
    assert sorted(results) == list(range(8))
    died = [i for i, r in results.items() if r.error == "other: worker process died"]
    # Worker 1 holds the odd indices; the calls it had not returned became errors.
    assert died and all(i % 2 == 1 for i in died)
    assert all(results[i].error is None for i in range(0, 8, 2))


def test_a_small_run_stops_the_early_workers(openai_server, fake_key, tmp_path):
    import multiprocessing

    from conftest import write_suite

    from harness.run.pipeline import run_suite

    server = openai_server()
    suite = write_suite(tmp_path, server.url)
    # workers=None: the pool starts before the data loads, then 24 calls prove too few for it.
    outcome = run_suite(suite, runs_dir=tmp_path / "runs", show_progress=False)
    assert server.requests == 24 and len(outcome.records["zero-shot"]) == 12
    assert multiprocessing.active_children() == []


def test_a_data_error_stops_the_early_workers_at_once(tmp_path):
    import multiprocessing

    from conftest import write_suite

    from harness.errors import SuiteError
    from harness.run.pipeline import run_suite

    suite = write_suite(tmp_path, "http://127.0.0.1:9/v1")
    (tmp_path / "data" / "test.csv").unlink()
    start = time.monotonic()
    with pytest.raises(SuiteError, match="test.csv"):
        run_suite(suite, runs_dir=tmp_path / "runs", show_progress=False)
    # The first worker was still importing litellm: it is terminated, not waited for.
    assert time.monotonic() - start < 1.5
    assert multiprocessing.active_children() == []


def test_concurrency_and_rate_limits_are_split_without_loss():
    from harness.calls.pool import _share

    assert [_share(100, 3, k) for k in range(3)] == [34, 33, 33]  # sums to the budget
    assert [_share(6, 4, k) for k in range(4)] == [2, 2, 1, 1]
    assert [_share(1, 3, k) for k in range(3)] == [1, 1, 1]  # never 0: a worker must progress
    assert _share(None, 3, 0) is None  # no limit stays no limit
