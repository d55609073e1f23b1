"""Where the sunk-cost ledger's past comes from: earlier runs of the suite, oldest first.

The decision layer never opens a tracking store itself. The pipeline hands it `LedgerSource`s:
`LocalHistory` (this machine's runs/<suite>/*/summary.json) and, from the tracking layer,
MLflow's parent runs (`harness.track.history.MlflowHistory`). Each past run is a mapping
{"run_id", "start_time", "hypothesis", "ledger_entry", "verdicts": {variant: verdict}}.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.errors import SuiteError, TrackingError

PastRun = dict[str, Any]


EXCLUDED = "excluded.json"  # in a run directory: `harness ledger exclude` wrote it


class LedgerSource(Protocol):
    """Earlier parent runs of a suite, oldest first; raises TrackingError when unreadable."""

    def runs(self, suite_name: str) -> list[PastRun]: ...


def lineage_id(suite, data_hashes: dict[str, str]) -> str | None:
    """The ledger's identity: the content hash of the test data, so that renaming the suite (or
    moving its files) keeps the record. New training data is a new iteration of the same
    lineage; a new test set is a new experiment."""
    return data_hashes.get(suite.spec.data.test)


def exclude_run(runs_dir: str | Path, run_id: str, why: str) -> Path:
    """Record that `run_id` no longer counts for the ledger (`harness ledger exclude`); its
    directory under runs/<suite>/. Raises SuiteError (exit 2) for an unknown run or no reason."""
    if not why.strip():
        raise SuiteError('--why: say why the run is excluded (e.g. --why "wrong test file")')
    found = sorted(Path(runs_dir).glob(f"*/{run_id}/summary.json"))
    if not found:
        raise SuiteError(
            f"no run {run_id!r} under {runs_dir}/ — `harness ledger SUITE.yaml` lists the run ids"
        )
    run_dir = found[0].parent
    record = {"why": why.strip(), "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (run_dir / EXCLUDED).write_text(json.dumps(record) + "\n", encoding="utf-8")
    return run_dir


@dataclass
class LocalHistory:
    runs_dir: str | Path | None
    lineage: str | None = None  # also read runs of this lineage filed under other suite names

    def runs(self, suite_name: str) -> list[PastRun]:
        return local_history(self.runs_dir, suite_name, self.lineage)


def gather(
    suite_name: str, shared: LedgerSource | None, local: LocalHistory
) -> tuple[list[PastRun], list[str]]:
    """(history, notes). The shared store is the record; local runs it lacks (the store was
    unreachable then, or filed under the suite's old name) are added by run id, so a lineage is
    never judged as if it had no past. Exclusions (`harness ledger exclude`) are recorded in the
    run directory and apply to the run whichever source holds it. When the store cannot be read
    at all, the local runs are used and a note says so."""
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
    local_runs = local.runs(suite_name)
    excluded = {r["run_id"]: r["excluded"] for r in local_runs if r.get("excluded")}
    merged = merge_histories(remote, local_runs)
    for r in merged:
        if r.get("run_id") in excluded:
            r["excluded"] = excluded[r["run_id"]]
    return merged, notes


def merge_histories(remote: list[dict], local: list[dict]) -> list[dict]:
    """MLflow runs plus local runs it lacks, oldest first (run ids start with their timestamp)."""
    seen = {r.get("run_id") for r in remote}
    merged = list(remote) + [r for r in local if r.get("run_id") not in seen]
    return sorted(merged, key=lambda r: str(r.get("run_id")))


def read_json(path: Path) -> Any:
    """A JSON file, or None when it is missing or unreadable (a torn write is not a record)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def local_history(runs_dir, suite_name: str, lineage: str | None = None) -> list[dict]:
    """Earlier runs read from runs/<suite>/*/summary.json (and, with `lineage`, runs of that
    lineage under any suite name), oldest first (tracking's shape) with `excluded` when set.

    The fallback when the MLflow store cannot be read: the ledger still sees this machine's runs.
    """
    if runs_dir is None:
        return []
    out = []
    for path in Path(runs_dir).glob("*/*/summary.json"):
        s = read_json(path)
        if not isinstance(s, dict) or s.get("shard"):
            continue  # a shard is part of a run: its merged run is the one in the ledger
        if path.parent.parent.name != suite_name and (
            lineage is None or s.get("lineage") != lineage
        ):
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
                "excluded": read_json(path.parent / EXCLUDED),
                "suite": s.get("suite"),
                "protocol": (s.get("protocol") or {}).get("fingerprint"),
                "lineage": s.get("lineage"),
            }
        )
    return sorted(out, key=lambda r: (str(r["start_time"]), str(r["run_id"])))


def hypothesis_history(summary: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The iteration history of ONE hypothesis (`key`), one row per counted run of its
    lineage (oldest first, this run last): {"iteration", "run_id", "model", "training_usd",
    "metric", "baseline", "delta", "delta_ci", "verdict", "this_run"}. Δ and verdict are that
    hypothesis's own (vs its own baseline, in its own unit): this run's from its verdict, an
    earlier run's from the hypotheses it recorded; a run from before they were kept shows the
    lineage's Δ only where it was on the same metric, and its verdict only when the
    hypothesis is its lineage's one. What report.md's iteration history and MLflow's
    ledger.json both show."""
    from harness.results import hypotheses_of
    from harness.stats.numbers import verdict_label

    v = ((summary.get("guard") or {}).get("verdicts") or {}).get(key)
    led = (v.get("ledger") or {}) if isinstance(v, dict) else {}
    if not isinstance(v, dict) or not led.get("history"):
        return []
    hyps = hypotheses_of(summary)
    hyp = v.get("hypothesis") or next((h for h in hyps if h.get("key") == key), {})
    metric = hyp.get("metric") or (v.get("delta") or {}).get("metric") or ""
    alone = sum(1 for h in hyps if h.get("candidate") == hyp.get("candidate")) == 1
    models = led.get("models") or []
    rows = []
    for row in led["history"]:
        this = row.get("run_id") is None
        delta, ci, verdict = _earlier_cells(row, key, metric, alone)
        d = v.get("delta") or {}
        if this and d.get("value") is not None:  # this run's own verdict has the Δ
            ci = [d["ci_low"], d["ci_high"]] if d.get("ci_low") is not None else None
            delta = d["value"]
        if this:
            verdict = verdict_label(v)
        rows.append(
            {
                "iteration": models.index(row["model"]) + 1 if row.get("model") in models else None,
                "run_id": summary.get("run_id") if this else row.get("run_id"),
                "model": row.get("model"),
                "training_usd": row.get("training_usd"),
                "metric": metric,
                "baseline": hyp.get("baseline"),
                "delta": delta,
                "delta_ci": ci,
                "verdict": verdict,
                "this_run": this,
            }
        )
    return rows


def _earlier_cells(
    row: dict[str, Any], key: str, metric: str, alone: bool
) -> tuple[float | None, list[float] | None, str | None]:
    """(Δ, CI, verdict) of hypothesis `key` as a history row recorded them (hypothesis_history)."""
    own = (row.get("hypotheses") or {}).get(key)
    if own is not None:
        return own.get("delta"), own.get("delta_ci"), own.get("verdict")
    if row.get("hypotheses") is None and row.get("metric") == metric:
        return row.get("delta"), row.get("delta_ci"), row.get("verdict") if alone else None
    return None, None, None
