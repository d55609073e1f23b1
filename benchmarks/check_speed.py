"""`harness check` on the full banking77 data (3,080 test, 10,003 train examples): target < 10 s.

    python benchmarks/check_speed.py [REPEATS]

Runs `harness check SUITE --json` in a fresh process (start-up, suite, data, readiness, power and
the train/test hygiene scan: exact and near duplicates) and prints its wall time and CPU time.
CPU time is the figure to compare with the target: the work is single-threaded, and other jobs on
a shared machine stretch the wall time, not the CPU time.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 10.0


def write_suite(directory: Path) -> Path:
    data = ROOT / "data" / "banking77"
    path = directory / "banking77-full.yaml"
    path.write_text(
        f"""name: banking77-full
task: classification
data: {{test: {data / "test.csv"}, train: {data / "train.csv"}, input: text, target: category}}
labels: from-data
metrics: [accuracy, macro_f1]
defaults: {{model: openai/gpt-4o-mini, user: "{{{{ text }}}}"}}
variants: [{{name: zero-shot}}]
""",
        encoding="utf-8",
    )
    return path


def time_check(suite: Path) -> tuple[float, float, dict]:
    """(wall s, CPU s of the child, the check's JSON report) of one `harness check` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "check", str(suite), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"harness check failed (exit {proc.returncode}):\n{proc.stderr}")
    return wall, cpu, json.loads(proc.stdout)


def main(repeats: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        suite = write_suite(Path(tmp))
        runs = [time_check(suite) for _ in range(repeats)]
    report = runs[0][2]
    hygiene = report.get("hygiene") or {}
    print(
        f"banking77: {report['test_examples']} test, {report['train_examples']} train examples; "
        f"{len(hygiene.get('exact_duplicates') or [])} exact and "
        f"{len(hygiene.get('near_duplicates') or [])} near train/test duplicates"
    )
    for i, (wall, cpu, _) in enumerate(runs, 1):
        print(f"run {i}: {wall:.2f} s wall, {cpu:.2f} s CPU")
    cpu = statistics.median(r[1] for r in runs)
    wall = statistics.median(r[0] for r in runs)
    verdict = "OK" if cpu < TARGET_S else "OVER TARGET"
    print(f"median: {wall:.2f} s wall, {cpu:.2f} s CPU (target < {TARGET_S:.0f} s CPU): {verdict}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
