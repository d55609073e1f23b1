"""A suite's earlier parent runs read back from MLflow: the store as a `LedgerSource` for the
sunk-cost ledger (harness.decide.history)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.decide.history import PastRun
from harness.errors import TrackingError
from harness.track.fields import _loads
from harness.track.store import ROLE_TAG, _client, tracking_uri


@dataclass
class MlflowHistory:
    uri: str

    @classmethod
    def at(cls, uri: str | None) -> MlflowHistory:
        """The store `uri` names, or the default one ($MLFLOW_TRACKING_URI, else ./mlruns)."""
        return cls(tracking_uri(uri))

    def runs(self, suite_name: str) -> list[PastRun]:
        # No SQLite file yet means no history: skip MLflow's import and table creation.
        if self.uri.startswith("sqlite:///") and not Path(self.uri[len("sqlite:///") :]).exists():
            return []
        return history(suite_name, self.uri)


# ---------------------------------------------------------------- history (for the ledger)


def history(suite_name: str, tracking_uri: str) -> list[dict[str, Any]]:
    """Earlier parent runs of a suite, oldest first.

    Each: {"run_id": harness run id, "mlflow_run_id", "start_time": epoch ms, "hypothesis":
    dict|None, "ledger_entry": dict, "verdicts": {variant: verdict}}. [] for a new suite.
    """
    try:
        client = _client(tracking_uri)
        exp = client.get_experiment_by_name(suite_name)
        if exp is None or exp.lifecycle_stage == "deleted":
            return []
        out: list[dict[str, Any]] = []
        token = None
        while True:
            page = client.search_runs(
                [exp.experiment_id],
                filter_string=f"tags.`{ROLE_TAG}` = 'suite'",
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
                        "hypothesis": _loads(tags.get("harness.hypothesis"), None),
                        "ledger_entry": _loads(tags.get("harness.ledger_entry"), {}) or {},
                        "verdicts": _loads(tags.get("harness.verdicts"), {}) or {},
                    }
                )
            token = page.token
            if not token:
                return out
    except TrackingError as e:
        raise TrackingError(f"{e} — the sunk-cost ledger needs the run history") from None
    except Exception as e:
        raise TrackingError(
            f"could not read run history from {tracking_uri} ({type(e).__name__}: {e})"
        ) from e
