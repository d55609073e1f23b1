"""Throughput of the whole `harness run` process against the local OpenAI-compatible server.

    python benchmarks/throughput.py [--examples 2000] [--latency 0,0.2] [--concurrency 32] [--rounds 1]

For each server latency: starts tests/support/openai_server.py in its own process, writes a suite
of N examples, then, interleaved in each round (the order alternates), times as subprocesses:
`harness run` with the lean transport (the default), `harness run` with every call through
litellm (`HARNESS_TRANSPORT=litellm`, the path before it), a bare aiohttp loop
(bare_aiohttp.py, the floor) and a bare litellm loop (bare_litellm.py). Each harness run is the
whole process (start-up, litellm import in the workers, calls, scoring, results, report, MLflow)
in a fresh runs directory. Then re-runs the lean run's suite once: every answer comes from
runs/.cache.sqlite, so the server must see zero new requests. Prints wall times, the ratios
against the bare loop, litellm's path and the ideal `examples × latency / concurrency`, the
workers' CPU per call while sending, peak RSS, each harness run's phases, and the machine's
load average before and after (the machine is shared: read ratios from one run, not figures
across runs).
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
    suite: Path, runs: Path, concurrency: int, workers: str | None = None, transport: str = "auto"
) -> tuple[float, int, float, float]:
    """(wall s, peak RSS MB of the largest process, CPU s incl. workers, s until the last result).

    The last result's time is the results file's mtime: what follows it (guard, summary, report,
    MLflow logging) is not the engine's.
    """
    env = dict(os.environ, OPENAI_API_KEY="sk-bench-not-a-key", HARNESS_TRANSPORT=transport)
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


def bare_loop(script: str, url: str, n: int, concurrency: int, *extra: str) -> dict:
    """benchmarks/<script> (a bare client loop) in its own process: its one JSON line."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), url, str(n), str(concurrency), *extra],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bare_litellm(url: str, n: int, concurrency: int, config: str = "harness") -> dict:
    """bare_litellm.py; `config`: harness | defaults."""
    return bare_loop("bare_litellm.py", url, n, concurrency, "--config", config)


def bare_aiohttp(url: str, n: int, concurrency: int) -> dict:
    return bare_loop("bare_aiohttp.py", url, n, concurrency)


def harness_row(suite: Path, runs: Path, url: str, args, transport: str) -> dict:
    before = requests_seen(url)
    wall, rss, cpu, done = timed_run(suite, runs, args.concurrency, args.workers, transport)
    t = phases(runs, suite)
    return {
        "wall": wall,
        "rss": rss,
        "cpu": cpu,
        "done": done,
        "sent": requests_seen(url) - before,
        "phases": t,
        "workers_cpu": t.get("workers_calls_cpu_s"),
        "paths": t.get("transport", {}),
    }


def one_latency(latency: float, args, tmp: Path) -> dict:
    server, url = start_server(latency)
    try:
        tag = f"l{int(latency * 1000)}"
        suite = write_suite(tmp / tag, url, args.examples)
        # A one-example run first: it creates the MLflow store (a one-time ~10 s of schema
        # migrations that every later run skips) and warms the OS file cache.
        timed_run(
            write_suite(tmp / tag, url, 1, name="warmup"),
            tmp / tag / "runs-w",
            args.concurrency,
            "0",
        )
        rows: dict[str, list] = {"lean": [], "litellm": [], "bare aiohttp": [], "bare litellm": []}
        for r in range(args.rounds):
            order = ["lean", "litellm", "bare aiohttp", "bare litellm"]
            if r % 2:
                order.reverse()
            for name in order:
                if name in ("lean", "litellm"):
                    runs = tmp / tag / f"runs-{name}-{r}"
                    row = harness_row(
                        suite, runs, url, args, "auto" if name == "lean" else "litellm"
                    )
                    seen = {k: row[k] for k in ("wall", "cpu", "rss", "sent", "workers_cpu")}
                elif name == "bare aiohttp":
                    row = seen = bare_aiohttp(url, args.examples, args.concurrency)
                else:
                    row = seen = bare_litellm(url, args.examples, args.concurrency)
                rows[name].append(row)
                # As measured: a run cut short still shows what it got.
                print(f"[{latency * 1000:.0f} ms, round {r}] {name}: {seen}", flush=True)
        # The fully cached re-run of the first lean run (same runs directory: its cache).
        cached = harness_row(suite, tmp / tag / "runs-lean-0", url, args, "auto")
        print(
            f"[{latency * 1000:.0f} ms] fully cached re-run: "
            f"{ {k: cached[k] for k in ('wall', 'cpu', 'rss', 'sent')} }",
            flush=True,
        )
        return {"latency": latency, "rows": rows, "cached": cached}
    finally:
        server.terminate()
        server.wait()


def report(res: dict, args) -> None:
    from statistics import median

    latency, rows = res["latency"], res["rows"]
    ideal = args.examples * latency / args.concurrency
    lean = median(r["wall"] for r in rows["lean"])
    slow = median(r["wall"] for r in rows["litellm"])
    floor = median(r["calls_wall_s"] for r in rows["bare aiohttp"])
    bare_ll = median(r["calls_wall_s"] for r in rows["bare litellm"])
    n = args.examples
    print(
        f"\n=== {n} examples, server latency {latency * 1000:.0f} ms, concurrency {args.concurrency}"
        f" (median of {args.rounds} interleaved round(s))"
    )
    if ideal:
        print(f"ideal                        {ideal:6.2f} s")

    def vs(t: float) -> str:
        parts = [f"{t / floor:.2f}x bare aiohttp", f"{t / slow:.2f}x harness via litellm"]
        if ideal:
            parts.append(f"{t / ideal:.2f}x ideal")
        return ", ".join(parts)

    print(f"harness, lean transport      {lean:6.2f} s whole process  ({vs(lean)})")
    print(
        f"harness, all via litellm     {slow:6.2f} s whole process  ({slow / floor:.2f}x bare aiohttp"
        + (f", {slow / ideal:.2f}x ideal" if ideal else "")
        + ")"
    )
    print(f"bare aiohttp loop            {floor:6.2f} s (calls only; {n / floor:,.0f} calls/s)")
    print(f"bare litellm loop            {bare_ll:6.2f} s (calls only)")
    for name in ("lean", "litellm"):
        r = rows[name][0]
        w = [x["workers_cpu"] for x in rows[name] if x["workers_cpu"] is not None]
        per = f"{median(w) / n * 1000:.2f} ms" if w else "n/a"
        print(
            f"  {name:<8} workers' CPU per call while sending {per};"
            f" all processes {median(x['cpu'] for x in rows[name]):.2f} s CPU;"
            f" peak RSS {max(x['rss'] for x in rows[name])} MB; requests {r['sent']};"
            f" last result at {median(x['done'] for x in rows[name]):.2f} s"
        )
        print(f"    paths: {r['paths']}")
    bare_cpu = median(r["calls_cpu_s"] for r in rows["bare aiohttp"]) / n * 1000
    bare_ll_cpu = median(r["calls_cpu_s"] for r in rows["bare litellm"]) / n * 1000
    print(f"  bare aiohttp CPU per call {bare_cpu:.2f} ms; bare litellm {bare_ll_cpu:.2f} ms")
    print("  phases of the first lean run (harness run --timings):")
    print_phases(rows["lean"][0]["phases"])
    c = res["cached"]
    print(
        f"fully cached re-run          {c['wall']:6.2f} s  ({c['sent']} requests), peak RSS {c['rss']} MB,"
        f" CPU {c['cpu']:.2f} s"
    )
    print_phases(c["phases"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--examples", type=int, default=2000)
    p.add_argument(
        "--latency", default="0,0.2", help="server latencies in seconds, comma-separated"
    )
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--workers", default=None, help="passed to harness run --workers")
    args = p.parse_args()
    load0 = os.getloadavg()
    print(
        f"machine load (1/5/15 min) before: {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for latency in (float(x) for x in args.latency.split(",")):
            results.append(one_latency(latency, args, Path(tmp)))
    for res in results:
        report(res, args)
    load1 = os.getloadavg()
    print(
        f"\nmachine load (1/5/15 min) before {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f},"
        f" after {load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
