"""Memory and CPU per call of one large `harness run` (issue 20's 100k-example item).

    python benchmarks/scale.py --examples 100000 [--latency 0] [--concurrency 64]

Starts tests/support/openai_server.py in its own process, writes a suite of N examples (one
variant) and times one `harness run` as a subprocess, as benchmarks/throughput.py does, without
the cached re-run and the bare-litellm loop. Prints wall, CPU per call (everything: start-up,
litellm import, calls, summary, report, MLflow), the peak RSS of the largest process and of the
run's own process (timings.json), and the latency the records read. Run it at a few sizes to see
the slope of memory per example.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from throughput import phases, print_phases, start_server, timed_run, write_suite


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--examples", type=int, default=100_000)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--workers", default=None, help="passed to harness run --workers")
    args = p.parse_args()
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
    print(f"machine load (1 min)  {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
