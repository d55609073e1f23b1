"""A suite's earlier parent runs read back from MLflow: the store as a `LedgerSource` for the
sunk-cost ledger (harness.decide.history)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.decide.history import PastRun
from harness.errors import TrackingError
from harness.track.fields import loads_or
from harness.track.store import ROLE_TAG, tracking_client, tracking_uri


@dataclass
class MlflowHistory:
    uri: str
    lineage: str | None = None  # also runs of this lineage logged under other suite names
    # history(suite_name, uri, lineage) done elsewhere: harness run asks its logging child
    # (harness.track.child), which imports MLflow anyway, instead of importing it here too.
    read: Callable[[str, str, str | None], list[PastRun]] | None = None

    @classmethod
    def at(cls, uri: str | None, lineage: str | None = None, read=None) -> MlflowHistory:
        """The store `uri` names, or the default one ($MLFLOW_TRACKING_URI, else ./mlruns)."""
        return cls(tracking_uri(uri), lineage, read)

    def runs(self, suite_name: str) -> list[PastRun]:
        # No SQLite file yet means no history: skip MLflow's import and table creation.
        if self.uri.startswith("sqlite:///") and not Path(self.uri[len("sqlite:///") :]).exists():
            return []
        return (self.read or history)(suite_name, self.uri, self.lineage)


# ---------------------------------------------------------------- history (for the ledger)


def history(suite_name: str, tracking_uri: str, lineage: str | None = None) -> list[dict[str, Any]]:
    """Earlier parent runs of a suite (and, with `lineage`, of that lineage in any experiment),
    oldest first.

    Each: {"run_id": harness run id, "mlflow_run_id", "start_time": epoch ms, "hypothesis":
    dict|None, "ledger_entry": dict, "verdicts": {variant: verdict}, "suite"}. [] for a new suite.
    """
    try:
        client = tracking_client(tracking_uri)
        exp = client.get_experiment_by_name(suite_name)
        found = exp is not None and exp.lifecycle_stage != "deleted"
        if lineage:
            ids = [e.experiment_id for e in client.search_experiments()]
            where = f"tags.`{ROLE_TAG}` = 'suite' and tags.`harness.lineage` = '{lineage}'"
            out = {r["mlflow_run_id"]: r for r in _runs(client, ids, where)}
            if found:
                out.update((r["mlflow_run_id"], r) for r in _runs(client, [exp.experiment_id]))
            return sorted(out.values(), key=lambda r: r["start_time"])
        if not found:
            return []
        return _runs(client, [exp.experiment_id])
    except TrackingError as e:
        raise TrackingError(f"{e} — the sunk-cost ledger needs the run history") from None
    except Exception as e:
        raise TrackingError(
            f"could not read run history from {tracking_uri} ({type(e).__name__}: {e})"
        ) from e


def _runs(client, experiment_ids: list[str], where: str | None = None) -> list[dict[str, Any]]:
    if not experiment_ids:
        return []
    out: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string=where or f"tags.`{ROLE_TAG}` = 'suite'",
            order_by=["attributes.start_time ASC"],
            max_results=1000,
            page_token=token,
        )
        for r in page:
            tags = r.data.tags
            out.append(
                {
                    "run_id": tags.get("harness.run_id", r.info.run_name),
                    "mlflow_run_id": r.info.run_id,
                    "start_time": r.info.start_time,
                    "hypothesis": loads_or(tags.get("harness.hypothesis"), None),
                    "ledger_entry": loads_or(tags.get("harness.ledger_entry"), {}) or {},
                    "verdicts": loads_or(tags.get("harness.verdicts"), {}) or {},
                    "suite": tags.get("harness.suite"),
                    "protocol": tags.get("harness.protocol"),
                    "lineage": tags.get("harness.lineage"),
                }
            )
        token = page.token
        if not token:
            return out
