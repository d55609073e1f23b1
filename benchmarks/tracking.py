"""What MLflow logging adds to a run: 2000 examples x 4 variants into the SQLite store.

    python benchmarks/tracking.py [--examples 2000]

Builds a synthetic finished run directory (the tests' fixture), renders its report, then times
`log_run` in a fresh process state (mlflow not yet imported, as in `harness run`), twice:
into a new store (creates the SQLite schema) and into an existing one (the usual case).
The target is < 3 s for the existing store.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys, time
import numpy, pandas  # already loaded by any harness run
w, c = time.perf_counter(), time.process_time()
from harness.track import log, store
store.prewarm().join()  # harness run does this in the background during its calls
w1, c1 = time.perf_counter(), time.process_time()
log.log_run(sys.argv[1], sys.argv[2])
w2, c2 = time.perf_counter(), time.process_time()
print(w1 - w, c1 - c, w2 - w1, c2 - c1)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=2000)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from rundir_fixture import make_run_dir

    from harness.report.render import render_report

    with tempfile.TemporaryDirectory() as tmp:
        variants = {"zero-shot": 0.6, "few-shot": 0.7, "rag": 0.72, "ft-mini": 0.8}
        run_dir = make_run_dir(Path(tmp), n=args.examples, variants=variants)
        t = time.perf_counter()
        render_report(run_dir)
        render_s = time.perf_counter() - t
        uri = f"sqlite:///{tmp}/mlruns/mlflow.db"

        def timed() -> list[float]:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(run_dir), uri],
                capture_output=True,
                text=True,
                check=True,
            )
            return [float(x) for x in out.stdout.strip().splitlines()[-1].split()]

        fresh = timed()
        warm = sorted((timed() for _ in range(3)), key=lambda r: r[2])[1]  # median by log wall time
        load = os.getloadavg()[0]
    n_rows = args.examples * len(variants)
    print(
        f"examples: {args.examples} x {len(variants)} variants ({n_rows} table rows); load average {load:.1f} on {os.cpu_count()} cores"
    )
    print(f"report render (md + html + plots): {render_s:.2f} s")
    print(
        f"import mlflow (prewarm, overlaps the run's calls): wall {warm[0]:.2f} s, cpu {warm[1]:.2f} s"
    )
    print(
        f"log_run, new SQLite store (schema creation): wall {fresh[2]:.2f} s, cpu {fresh[3]:.2f} s"
    )
    print(
        f"log_run, existing SQLite store (median of 3): wall {warm[2]:.2f} s, cpu {warm[3]:.2f} s"
    )
    print("target: < 3 s added to the run (existing store)")


if __name__ == "__main__":
    main()
