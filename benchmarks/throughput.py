"""Throughput of the whole `harness run` process against the local OpenAI-compatible server.

    python benchmarks/throughput.py [--examples 2000] [--latency 0.2] [--concurrency 32]

Starts tests/support/openai_server.py in its own process with a fixed latency, writes a suite of N
examples, then times `harness run` as a subprocess (start-up, litellm import, calls, scoring and
writing results included) and compares it with the ideal `examples × latency / concurrency`.
Then re-runs the same suite: every answer comes from runs/.cache.sqlite, so the server must see
zero new requests. Prints wall times, ratio, per-call overhead and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "support" / "openai_server.py"),
            "--latency",
            str(latency),
            "--answer",
            '{"intent": "card_arrival"}',
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    url = proc.stdout.readline().strip()
    return proc, url


def requests_seen(url: str) -> int:
    with urllib.request.urlopen(url.rsplit("/v1", 1)[0] + "/stats") as r:
        return json.load(r)["requests"]


def write_suite(root: Path, url: str, n: int, name: str = "bench") -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    lines = ["text,category"] + [
        f"{name} question number {i} about my card,card_arrival" for i in range(n)
    ]
    (root / "data" / f"{name}.csv").write_text("\n".join(lines) + "\n")
    suite = root / f"{name}.yaml"
    suite.write_text(
        f"""name: {name}
task: classification
data: {{test: data/{name}.csv, input: text, target: category}}
labels: [card_arrival, exchange_rate]
metrics: [accuracy]
defaults:
  model: openai/gpt-4o-mini
  api_base: {url}
  params: {{temperature: 0, max_tokens: 16}}
  user: "Question: {{{{ text }}}}"
variants:
  - name: zero-shot
"""
    )
    return suite


def timed_run(
    suite: Path, runs: Path, concurrency: int, workers: str | None = None
) -> tuple[float, int, float, float]:
    """(wall s, peak RSS MB of the largest process, CPU s incl. workers, s until the last result).

    The last result's time is the results file's mtime: what follows it (guard, summary, report,
    MLflow logging) is not the engine's.
    """
    env = dict(os.environ, OPENAI_API_KEY="sk-bench-not-a-key")
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        str(suite),
        "--concurrency",
        str(concurrency),
        "--runs-dir",
        str(runs),
        "--timings",  # timings.json: the phase breakdown printed below
    ]
    if workers is not None:
        cmd += ["--workers", workers]
    start = time.perf_counter()
    start_clock = time.time()
    # cwd: the run's MLflow store (mlruns/) lands in the temporary directory too.
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=runs.parent
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"harness run failed with exit {os.waitstatus_to_exitcode(status)}")
    last = max(p.stat().st_mtime for p in runs.glob(f"{suite.stem}/*/results/*.jsonl"))
    return wall, usage.ru_maxrss // 1024, usage.ru_utime + usage.ru_stime, last - start_clock


def phases(runs: Path, suite: Path) -> dict:
    """The latest run's timings.json (harness run --timings)."""
    path = sorted(runs.glob(f"{suite.stem}/*/timings.json"))[-1]
    return json.loads(path.read_text())


def print_phases(t: dict) -> None:
    for p in t["phases"]:
        print(f"    {p['name']:<18} wall {p['wall_s']:6.2f} s  CPU {p['cpu_s']:6.2f} s")
    print(
        f"    this process CPU {t['process_cpu_s']:.2f} s, workers + children {t['children_cpu_s']:.2f} s;"
        f" loaded: {', '.join(t['imported']) or 'none'}"
    )


def bare_litellm(url: str, n: int, concurrency: int, config: str = "harness") -> dict:
    """benchmarks/bare_litellm.py in its own process; `config`: harness | defaults."""
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bare_litellm.py"),
            url,
            str(n),
            str(concurrency),
            "--config",
            config,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--examples", type=int, default=2000)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--workers", default=None, help="passed to harness run --workers")
    args = p.parse_args()
    ideal = args.examples * args.latency / args.concurrency
    server, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            suite = write_suite(Path(tmp), url, args.examples)
            runs = Path(tmp) / "runs"
            # A one-example run first: it creates the MLflow store (a one-time ~10 s of schema
            # migrations that every later run skips) and warms the OS file cache.
            timed_run(write_suite(Path(tmp), url, 1, name="warmup"), runs, args.concurrency, "0")
            before = requests_seen(url)
            wall, rss, cpu, calls_done = timed_run(suite, runs, args.concurrency, args.workers)
            full_phases = phases(runs, suite)
            sent = requests_seen(url) - before
            cached_wall, cached_rss, cached_cpu, cached_done = timed_run(
                suite, runs, args.concurrency, args.workers
            )
            cached_sent = requests_seen(url) - sent - before
            cached_phases = phases(runs, suite)
            bare = bare_litellm(url, args.examples, args.concurrency)
    finally:
        server.terminate()
        server.wait()
    overhead_ms = (wall - ideal) / args.examples * args.concurrency * 1000

    def ratio(t: float) -> str:  # at 0 ms latency there is no ideal to divide by
        return f"{t / ideal:.2f}x ideal" if ideal else "0 ms latency: target <= 6 s"

    print(
        f"examples {args.examples}, latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}"
    )
    print(f"ideal                 {ideal:6.2f} s")
    print(
        f"harness run           {wall:6.2f} s  ({ratio(wall)}), {sent} requests, peak RSS {rss} MB"
    )
    print(
        f"  last result written {calls_done:6.2f} s  ({ratio(calls_done)}; the rest is guard, report, MLflow)"
    )
    print(f"per-call overhead     {overhead_ms:6.1f} ms (wall beyond ideal, per call slot)")
    print(
        f"CPU                   {cpu:6.2f} s  ({cpu / args.examples * 1000:.1f} ms per call, start-up included)"
    )
    print(
        f"fully cached re-run   {cached_wall:6.2f} s  ({cached_sent} requests), peak RSS {cached_rss} MB, CPU {cached_cpu:.2f} s"
    )
    print(f"  last result written {cached_done:6.2f} s")
    print("phases of the full run (harness run --timings):")
    print_phases(full_phases)
    print("phases of the cached re-run:")
    print_phases(cached_phases)
    # CPU per call beside a bare litellm loop: both with and without the one-time imports.
    startup = sum(p["cpu_s"] for p in full_phases["phases"] if p["name"] == "start-up imports")
    bare_call = bare["calls_cpu_s"] / args.examples * 1000
    print(
        f"bare litellm loop     calls {bare['calls_wall_s']:6.2f} s wall, {bare_call:.2f} ms CPU per call"
        f" (+ import {bare['import_cpu_s']:.2f} s CPU)"
    )
    ours = (cpu - startup - bare["import_cpu_s"]) / args.examples * 1000
    print(
        f"harness CPU per call  {ours:.2f} ms beyond start-up and one litellm import"
        f" = {ours / bare_call:.2f}x bare litellm (target <= 1.5x)"
    )
    print(f"machine load (1 min)  {os.getloadavg()[0]:6.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
