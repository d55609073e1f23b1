"""The blessed run of a suite: the baseline `harness compare RUN` measures a new run against.

`harness bless RUN_DIR` records the run in runs/<suite>/blessed.json with the suite and data
hashes it ran on, so a comparison can say when the blessed run is older than the suite or the
data (then a "regression" may be the change itself, not the model)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness._util.jsonl import write_json_atomic
from harness.errors import SuiteError

BLESSED = "blessed.json"


def bless(run_dir: str | Path) -> dict[str, Any]:
    """Make a finished run its suite's blessed run; returns what blessed.json now holds."""
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(
            f"{summary_path} not found — bless a finished run directory (runs/<suite>/<run-id>)"
        ) from None
    except (OSError, ValueError) as e:
        raise SuiteError(f"{summary_path} is not readable JSON ({e})") from None
    if summary.get("limit") is not None:
        raise SuiteError(
            f"{run_dir} is a smoke run (--limit {summary['limit']}): bless a full run, the "
            "baseline of every later comparison"
        )
    entry = {
        "run_id": summary.get("run_id", run_dir.name),
        "run_dir": run_dir.name,  # next to blessed.json: the folder moves with runs/
        "suite": summary.get("suite"),
        "suite_hash": summary.get("suite_hash"),
        "data_hashes": summary.get("data_hashes") or {},
        "blessed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(run_dir.parent / BLESSED, entry)
    return entry


def blessed_run(run_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """The blessed run of the suite `run_dir` belongs to (its folder, blessed.json's entry)."""
    suite_dir = Path(run_dir).parent
    path = suite_dir / BLESSED
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(
            f"no blessed run for {suite_dir} — bless one with `harness bless "
            f"{suite_dir}/<run-id>`, or compare two runs: `harness compare RUN_A RUN_B`"
        ) from None
    except (OSError, ValueError) as e:
        raise SuiteError(f"{path} is not readable JSON ({e}) — bless a run again") from None
    blessed = suite_dir / str(entry.get("run_dir", ""))
    if not (blessed / "summary.json").exists():
        raise SuiteError(
            f"{path} names {blessed}, which is gone — bless another run with `harness bless`"
        )
    return blessed, entry
