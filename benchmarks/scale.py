"""Memory and CPU per call of one large `harness run` (issue 20's 100k-example item).

    python benchmarks/scale.py --examples 100000 [--latency 0] [--concurrency 64]

Starts tests/support/openai_server.py in its own process, writes a suite of N examples (one
variant) and times one `harness run` as a subprocess, as benchmarks/throughput.py does, without
the cached re-run. Prints wall, CPU per call (everything: start-up, litellm import, calls,
summary, report, MLflow), the peak RSS of the largest process and of the run's own process
(timings.json), and the latency the records read. Run it at a few sizes to see the slope of
memory per example.

Then, against the same server, the bare litellm loop (benchmarks/bare_litellm.py, `--bare` calls,
one process) twice: with litellm's defaults (issue 20's "litellm's own") and configured as
harness configures it, so a gain shows as harness's or as a litellm switch's. harness's CPU per
call is compared as "marginal": everything but the run process's phases outside the calls and
one litellm import (the MLflow child's ~2-3 s stays in, so small runs read high).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from throughput import bare_litellm, phases, print_phases, start_server, timed_run, write_suite


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--examples", type=int, default=100_000)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--workers", default=None, help="passed to harness run --workers")
    p.add_argument("--bare", type=int, default=None, help="calls of each bare loop (default N)")
    args = p.parse_args()
    n_bare = args.examples if args.bare is None else args.bare
    load_before = os.getloadavg()[0]
    server, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = Path(tmp) / "runs"
            timed_run(write_suite(Path(tmp), url, 1, name="warmup"), runs, args.concurrency, "0")
            suite = write_suite(Path(tmp), url, args.examples)
            wall, rss, cpu, calls_done = timed_run(suite, runs, args.concurrency, args.workers)
            t = phases(runs, suite)
            latencies = []
            for path in runs.glob(f"{suite.stem}/*/results/*.jsonl"):
                with open(path, encoding="utf-8") as f:
                    latencies += [json.loads(line)["latency_ms"] for line in f]
            load_mid = os.getloadavg()[0]
            bare = {
                c: bare_litellm(url, n_bare, args.concurrency, c) for c in ("defaults", "harness")
            }
    finally:
        server.terminate()
        server.wait()
    n = args.examples
    print(f"examples {n}, latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}")
    print(f"wall                  {wall:7.1f} s (last result written at {calls_done:.1f} s)")
    print(f"CPU                   {cpu:7.1f} s = {cpu / n * 1000:.2f} ms per call, all processes")
    print(
        f"peak RSS              {rss} MB largest process; run process {t['process_peak_rss_mb']} MB"
    )
    print(
        f"latency_ms p50 / p95  {statistics.median(latencies):.1f} / "
        f"{statistics.quantiles(latencies, n=20)[-1]:.1f} (server: {args.latency * 1000:.0f} ms)"
    )
    print_phases(t)
    outside_calls = sum(p["cpu_s"] for p in t["phases"] if p["name"] != "calls")
    marginal = (cpu - outside_calls - bare["harness"]["import_cpu_s"]) / n * 1000
    print(
        f"harness marginal      {marginal:.2f} ms per call (all processes, less the run process's"
        " phases outside the calls and one litellm import)"
    )
    for config, b in bare.items():
        per_call = b["calls_cpu_s"] / n_bare * 1000
        print(
            f"bare litellm, {config:<8} {per_call:.2f} ms per call ({n_bare} calls, {b['calls_wall_s']:.1f} s;"
            f" import {b['import_cpu_s']:.2f} s): harness = {marginal / per_call:.2f}x"
        )
    print(
        f"machine load (1 min)  {load_before:.2f} before, {load_mid:.2f} after the run,"
        f" {os.getloadavg()[0]:.2f} after the bare loops"
    )


if __name__ == "__main__":
    main()
