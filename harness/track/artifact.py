"""Adding a file to a run already logged: its MLflow parent run (`harness diagnose`)."""

from __future__ import annotations

from pathlib import Path

from harness.track.fields import quote_filter_value
from harness.track.log import store_errors
from harness.track.store import ROLE_TAG, tracking_client


def log_to_parent(run_dir: str | Path, run_id: str, suite: str, file: Path, uri: str) -> str | None:
    """Log `file` as an artifact of the parent run of harness run `run_id`; its MLflow run id,
    or None when the run was never logged there (`harness report RUN_DIR --log` logs it, with
    the file). Raises TrackingError when the store can't be used."""
    with store_errors(uri, Path(run_dir)):
        client = tracking_client(uri)
        exp = client.get_experiment_by_name(suite)
        if exp is None:
            return None
        found = client.search_runs(
            [exp.experiment_id],
            filter_string=(
                f"tags.`harness.run_id` = '{quote_filter_value(run_id)}' and tags.`{ROLE_TAG}` = 'suite'"
            ),
            max_results=1,
        )
        if not found:
            return None
        parent = found[0].info.run_id
        client.log_artifact(parent, str(file))
        return parent
