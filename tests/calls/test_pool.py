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


def test_a_data_error_stops_the_early_workers_at_once(tmp_path, monkeypatch):
    import multiprocessing

    from conftest import write_suite

    from harness.errors import SuiteError
    from harness.run.pipeline import run_suite

    closes: list[bool] = []
    close = WorkerPool.close

    def recording_close(self, *, now: bool = False) -> None:
        closes.append(now)
        close(self, now=now)

    monkeypatch.setattr(WorkerPool, "close", recording_close)
    suite = write_suite(tmp_path, "http://127.0.0.1:9/v1")
    (tmp_path / "data" / "test.csv").unlink()
    with pytest.raises(SuiteError, match="test.csv"):
        run_suite(suite, runs_dir=tmp_path / "runs", show_progress=False, workers=2)
    # The first worker may still be importing litellm: it is terminated, not waited for.
    assert closes[0] is True
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("total", [1, 2, 3, 7, 30, 100, 101])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_a_budget_split_over_workers_sums_to_the_budget(total, n):
    from harness.calls.pool import _share

    shares = [_share(total, n, k) for k in range(n)]
    assert sum(shares) == total and max(shares) - min(shares) <= 1
    assert _share(None, n, 0) is None  # no limit stays no limit


def test_a_small_rate_limit_goes_to_one_worker_and_never_grows():
    from harness.calls.pool import plan
    from harness.suite import RateLimit

    specs = [
        CallSpec(model="m", messages=[], rate_limit_key=v) for v in ["tiny", "free"] * 6
    ]  # tiny at even indices, free (no limit) at odd ones
    work = plan(specs, 4, 8, {"tiny": RateLimit(rpm=1)})
    jobs = [[i for i, _ in w[0]] for w in work]
    # Before: every worker had rpm 1 for tiny (4 rpm in all). Now one worker has the budget
    # and all of tiny's calls; the unlimited calls go round-robin to all four, from worker 1.
    assert [w[2] for w in work] == [{"tiny": {"rpm": 1, "tpm": None}}, {}, {}, {}]
    assert jobs == [[0, 2, 4, 6, 7, 8, 10], [1, 9], [3, 11], [5]]
    assert [w[1] for w in work] == [3, 2, 2, 1]  # the concurrency, in proportion to the jobs


def test_a_large_rate_limit_is_split_over_the_workers_that_carry_it():
    from harness.calls.pool import plan
    from harness.suite import RateLimit

    specs = [CallSpec(model="m", messages=[], rate_limit_key=v) for v in ["a", "b"] * 10]
    limits = {"a": RateLimit(rpm=150, tpm=100_000), "b": RateLimit(rpm=600)}
    work = plan(specs, 4, 6, limits)
    # a: 150 rpm = 2 shares of >= 60 a minute (workers 0, 1); b: 600 rpm over all 4 (from 2).
    assert [w[2].get("a") for w in work] == [
        {"rpm": 75, "tpm": 50_000},
        {"rpm": 75, "tpm": 50_000},
        None,
        None,
    ]
    assert [w[2]["b"]["rpm"] for w in work] == [150, 150, 150, 150]
    for key, limit in limits.items():
        assert sum(w[2][key]["rpm"] for w in work if key in w[2]) == limit.rpm
        held = [k for k, w in enumerate(work) if key in w[2]]
        assert {k for k, w in enumerate(work) for _, s in w[0] if s.rate_limit_key == key} == set(
            held
        )
    assert [len(w[0]) for w in work] == [7, 7, 3, 3] and [w[1] for w in work] == [2, 2, 1, 1]


def test_concurrency_is_shared_in_proportion_to_the_jobs():
    from harness.calls.pool import _apportion

    assert _apportion(6, [10, 10, 10]) == [2, 2, 2]
    assert _apportion(8, [12, 0, 4, 4]) == [4, 0, 2, 2]
    assert _apportion(4, [100, 1, 1, 1]) == [1, 1, 1, 1]  # nobody with work is starved
    assert _apportion(5, [0, 0]) == [0, 0]


def _envelope_excess(times: list[float], rpm: int, slack: float) -> float:
    """How far the busiest window [t_i, t_j] goes past what one TokenBucket(rpm) lets through.

    harness.engine.TokenBucket starts full with a burst of max(1, rpm/60) and refills rpm/60 a
    second, so in any window of d seconds one process sends at most burst + rpm/60 * d. For
    rpm <= 60 that means at most 1 per 60/rpm s, and never more than rpm in a 60 s window.
    `slack` seconds widen each window for the delay between a token and the request's arrival.
    """
    rate = rpm / 60
    burst = max(1.0, rate)
    t = sorted(times)
    return max(
        (j - i + 1) - (burst + rate * (t[j] - t[i] + slack))
        for i in range(len(t))
        for j in range(i, len(t))
    )


@linux_only
def test_rate_limited_variants_over_four_workers_keep_their_rpm(
    openai_server, fake_key, tmp_path, monkeypatch
):
    from click.testing import CliRunner
    from conftest import intent_answer, write_suite

    from harness.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    server = openai_server(intent_answer, latency=0.01)
    # rpm 30: all of slow's calls on one worker; rpm 120: two workers of 60 each, two idle.
    rpm = {"slow-model": 30, "fast-model": 120}
    variants = "".join(
        f"""
  - name: {model.split("-")[0]}
    model: openai/{model}
    rate_limit: {{rpm: {limit}}}"""
        for model, limit in rpm.items()
    )
    suite = write_suite(tmp_path, server.url, n=6, variants=variants)
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(suite),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--workers",
            "4",
            "--concurrency",
            "16",
            "--no-cache",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert server.requests == 12
    for model, limit in rpm.items():
        times = sorted(t for t, m in server.arrivals if m == model)
        assert len(times) == 6
        # A call reaches the server a little after its token: ~0.3-0.7 s for a worker's first
        # call (litellm's first-call setup in each process; the token is taken before it), ms
        # later on, with the odd 0.2 s stall on a busy machine. 1.5 s of slack covers that; for
        # rpm 30 (a call every 2 s) the bound stays exact, for rpm 120 it allows 3 calls more.
        # Before the fix, rpm 30 over 4 workers sent 4 calls within 0.2 s (2 over the bound).
        assert _envelope_excess(times, limit, slack=1.5) <= 0, (model, times)


def test_one_worker_per_core_up_to_the_concurrency():
    from harness.calls.pool import default_workers

    assert default_workers(32, cpus=16) == 16  # was capped at 4: a 16-core runner used 4
    assert default_workers(8, cpus=16) == 8  # never a worker without a call in flight
    assert default_workers(32, cpus=2) == 2
    assert default_workers(0, cpus=2) == 1
    assert default_workers(64) == min(64, len(os.sched_getaffinity(0)))


@pytest.mark.parametrize(
    "files,cores",
    [
        ({"cpu.max": "200000 100000\n"}, 2),  # cgroup v2: `docker --cpus 2`, a pod's limit
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: 2 workers, not 1
        ({"cpu.max": "max 100000\n"}, None),  # no limit: the cores it may run on
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_a_containers_cpu_quota_bounds_the_cores(tmp_path, files, cores):
    # A 2-CPU container on a 64-core host sees 64 cores in its affinity: 32 workers (each with
    # litellm loaded) would share 2 CPUs.
    from harness.calls.local_processes import usable_cores

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    here = len(os.sched_getaffinity(0))
    assert usable_cores(cgroup=tmp_path) == (here if cores is None else min(here, cores))
    assert usable_cores(cgroup=tmp_path, affinity=64) == (64 if cores is None else cores)


@linux_only
def test_workers_report_the_path_each_variant_took(openai_server, fake_key):
    server = openai_server(_echo)
    specs = [
        CallSpec(**{**s.__dict__, "rate_limit_key": "zero-shot"}) for s in _specs(server.url, 12)
    ]
    pool = WorkerPool(2, concurrency=4).start()
    try:
        pool.run(specs, lambda i, r: None)
    finally:
        pool.close()
    assert pool.paths == {"zero-shot": {"path": "lean (openai)", "lean": 12, "litellm": 0}}
    assert pool.calls_cpu_s > 0
    assert server.requests == 12  # the placeholder each worker had litellm build was never sent
