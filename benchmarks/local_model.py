"""The local model (SmolLM2-135M in its llama.cpp worker) on the quickstart's real prompts.

    python benchmarks/local_model.py [--skip-run]

1. Calls/s for zero-shot and few-shot on worker processes, as a run sends them: 1 worker × 1
   llama.cpp thread (the model in-process before), 1 × 2 threads, and 2 single-threaded workers
   (the default on 2 cores). Every configuration must give the same answers as the first; the
   script says so or exits 1.
2. The quickstart end to end after install: `harness run suites/quickstart.yaml` with an empty
   cache, as a subprocess (start-up, calls, summary, report, MLflow logging), then the cached re-run.
Needs the `local` extra. Run it on an otherwise idle machine: it measures CPU-bound work.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.calls import local_processes  # noqa: E402
from harness.data.dataset import load_dataset  # noqa: E402
from harness.run.plan import build_jobs  # noqa: E402
from harness.suite import load_suite  # noqa: E402

QUICKSTART = ROOT / "suites" / "quickstart.yaml"


def quickstart_jobs():
    suite = load_suite(QUICKSTART)
    dataset = load_dataset(suite, None)
    return build_jobs(suite, dataset, suite.variants)


def params(spec) -> dict:
    return {**spec.params, "response_format": spec.response_format}


def time_calls(jobs, workers: int, threads: int) -> tuple[dict[str, float], dict]:
    """Calls per second for each variant (its calls sent `workers` at a time, as a run sends
    them), and the answers."""
    os.environ[local_processes.THREADS_ENV] = str(threads)
    pool = [local_processes.new_worker() for _ in range(workers)]
    rates, answers = {}, {}
    try:
        for w in pool:  # loading the model is start-up, not a call
            w.request([{"role": "user", "content": "warm up"}], {"max_tokens": 1})
        for variant in dict.fromkeys(j.variant for j in jobs):
            todo = [j for j in jobs if j.variant == variant]

            def send(i: int, todo=todo) -> None:
                for job in todo[i::workers]:
                    out = pool[i].request(job.spec.messages, params(job.spec))
                    answers[(job.variant, job.example.id)] = out["text"]

            start = time.perf_counter()
            threads_ = [threading.Thread(target=send, args=(i,)) for i in range(workers)]
            for t in threads_:
                t.start()
            for t in threads_:
                t.join()
            rates[variant] = len(todo) / (time.perf_counter() - start)
    finally:
        for w in pool:
            w.close()
    return rates, answers


def run_quickstart(runs: Path) -> float:
    """Wall seconds of one `harness run` (the cache lives in runs/: empty at first)."""
    cmd = [sys.executable, "-m", "harness.cli", "run", str(QUICKSTART), "--runs-dir", str(runs)]
    cmd += ["--tracking-uri", f"sqlite:///{runs / 'mlflow.db'}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"quickstart failed with exit {proc.returncode}:\n{proc.stderr}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-run", action="store_true", help="only the calls/s part")
    args = ap.parse_args()
    os.environ.pop(local_processes.THREADS_ENV, None)
    jobs = quickstart_jobs()
    print(
        f"{len(jobs)} quickstart calls; the default here: {local_processes.n_workers()} worker(s) × "
        f"{local_processes.n_threads()} thread(s)"
    )
    print("workers × threads   zero-shot calls/s  few-shot calls/s  same answers")
    reference = None
    for workers, threads in [(1, 1), (1, 2), (2, 1)]:
        rates, answers = time_calls(jobs, workers, threads)
        reference = reference or answers
        same = answers == reference
        print(
            f"{workers} × {threads}{'':<14}  {rates['zero-shot']:>17.2f}  "
            f"{rates['few-shot']:>16.2f}  {'yes' if same else 'NO'}"
        )
        if not same:
            sys.exit("answers changed: the configuration is not equivalent")
    if args.skip_run:
        return
    os.environ.pop(local_processes.THREADS_ENV, None)
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        cold = run_quickstart(runs)
        warm = run_quickstart(runs)
    print(f"quickstart, empty cache: {cold:.1f} s wall (goal ≤ 60 s on 2 cores)")
    print(f"quickstart, cached re-run: {warm:.1f} s wall")


if __name__ == "__main__":
    main()
