"""Where the sunk-cost ledger's past comes from: earlier runs of the suite, oldest first.

The decision layer never opens a tracking store itself. The pipeline hands it `LedgerSource`s:
`LocalHistory` (this machine's runs/<suite>/*/summary.json) and, from the tracking layer,
MLflow's parent runs (`harness.track.history.MlflowHistory`). Each past run is a mapping
{"run_id", "start_time", "hypothesis", "ledger_entry", "verdicts": {variant: verdict}}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.errors import TrackingError

PastRun = dict[str, Any]


class LedgerSource(Protocol):
    """Earlier parent runs of a suite, oldest first; raises TrackingError when unreadable."""

    def runs(self, suite_name: str) -> list[PastRun]: ...


@dataclass
class LocalHistory:
    runs_dir: str | Path | None

    def runs(self, suite_name: str) -> list[PastRun]:
        return local_history(self.runs_dir, suite_name)


def gather(
    suite_name: str, shared: LedgerSource | None, local: LocalHistory
) -> tuple[list[PastRun], list[str]]:
    """(history, notes). The shared store is the record; local runs it lacks (the store was
    unreachable then) are added by run id, so a lineage is never judged as if it had no past.
    When the store cannot be read at all, the local runs are used and a note says so."""
    notes: list[str] = []
    remote: list[PastRun] = []
    if shared is not None:
        try:
            remote = shared.runs(suite_name)
        except TrackingError as e:
            notes.append(
                f"ledger read from {local.runs_dir}/{suite_name} only: "
                f"the tracking store could not be read ({e})"
            )
    return merge_histories(remote, local.runs(suite_name)), notes


def merge_histories(remote: list[dict], local: list[dict]) -> list[dict]:
    """MLflow runs plus local runs it lacks, oldest first (run ids start with their timestamp)."""
    seen = {r.get("run_id") for r in remote}
    merged = list(remote) + [r for r in local if r.get("run_id") not in seen]
    return sorted(merged, key=lambda r: str(r.get("run_id")))


def local_history(runs_dir, suite_name: str) -> list[dict]:
    """Earlier runs read from runs/<suite>/*/summary.json, oldest first (tracking's shape).

    The fallback when the MLflow store cannot be read: the ledger still sees this machine's runs.
    """
    if runs_dir is None:
        return []
    out = []
    for path in Path(runs_dir, suite_name).glob("*/summary.json"):
        try:
            s = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        verdicts = {
            k: v.get("verdict") for k, v in ((s.get("guard") or {}).get("verdicts") or {}).items()
        }
        out.append(
            {
                "run_id": s.get("run_id") or path.parent.name,
                "start_time": s.get("started_at") or "",
                "hypothesis": s.get("hypothesis"),
                "ledger_entry": s.get("ledger_entry") or {},
                "verdicts": verdicts,
            }
        )
    return sorted(out, key=lambda r: (str(r["start_time"]), str(r["run_id"])))
