"""Logging a run directory to MLflow.

Layout: one experiment per suite; one parent run per `harness run` (tag harness.role=suite)
holding the hypothesis, verdicts (the sentences as its description), the sunk-cost ledger table
(`ledger.json`), report and resolved suite; one nested run per variant (run name = variant name,
with the iteration of a guarded one: "ft-mini · x3"; its verdict as tag harness.verdict) holding flattened settings, metrics with CI bounds, deltas, the per-example
table (`examples.json`, via log_table) and the test set (log_inputs)."""

from __future__ import annotations

import contextlib
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import TrackingError
from harness.rundir.reader import RunFiles, load_run
from harness.track import readable
from harness.track.fields import (
    LEDGER_FILE,
    example_table,
    headline_metrics,
    iso_to_ms,
    json_text,
    ledger_table,
    parent_fields,
    quote_filter_value,
    run_name,
    variant_fields,
    verdicts_of,
)
from harness.track.store import (
    PUSH_LATER,
    TABLE_FILE,
    VIEW_TAG,
    ensure_experiment,
    first_view,
    tracking_client,
)

RUN_TYPE_TAG = "mlflow.runType"

# ---------------------------------------------------------------- logging


def log_run(run_dir: str | Path | RunFiles, tracking_uri: str) -> str:
    """Log a run directory (or a run already loaded with harness.rundir.reader.load_run) to MLflow;
    return the parent run id.

    Re-logging the same harness run replaces its earlier MLflow runs (so `--log` after a partial
    push, or after `--resume`, leaves exactly one parent per harness run).
    Raises TrackingError (saying how to push later) when the store can't be used.
    """
    return begin_log(run_dir, tracking_uri).finish()


@dataclass
class PendingLog:
    """A run logged but for its report files: `finish()` adds them and ends the parent run;
    `discard()` deletes what was logged (the report never came)."""

    client: Any
    tracking_uri: str
    run_dir: Path
    parent_id: str
    created: list[str]  # the parent and its variant runs
    end: int

    def finish(self) -> str:
        with store_errors(self.tracking_uri, self.run_dir):
            _log_artifacts(self.client, self.parent_id, self.run_dir)
            self.client.set_terminated(self.parent_id, status="FINISHED", end_time=self.end)
        return self.parent_id

    def discard(self) -> None:
        with contextlib.suppress(Exception):  # best effort: `harness report --log` replaces them
            for run_id in self.created:
                self.client.delete_run(run_id)


def begin_log(run_dir: str | Path | RunFiles, tracking_uri: str) -> PendingLog:
    """Everything `log_run` logs except report.md/html, plots and the other files (`finish()`):
    the part that needs only summary.json and the results, so it can run while the report is
    rendered (harness.track.child)."""
    run = run_dir if isinstance(run_dir, RunFiles) else load_run(run_dir)
    run_dir = run.path
    with store_errors(tracking_uri, run_dir):
        client = tracking_client(
            tracking_uri
        )  # first, so an unreachable store fails before any work
    with store_errors(tracking_uri, run_dir):
        exp_id = ensure_experiment(client, run.suite_name, tracking_uri)
        _delete_previous(client, exp_id, str(run.summary.get("run_id", run_dir.name)))
        created: list[str] = []
        end = _log(client, exp_id, run, created)
    return PendingLog(client, tracking_uri, run_dir, created[0], created, end)


@contextmanager
def store_errors(tracking_uri: str, run_dir: Path):
    """Any failure of the store becomes a TrackingError that says how to push the run later."""
    try:
        yield
    except TrackingError as e:
        raise TrackingError(f"{e} — {PUSH_LATER.format(run_dir=run_dir)}") from None
    except Exception as e:  # MLflow raises many types (REST, SQLAlchemy, OS) for a broken store
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrackingError(
            f"could not log to {tracking_uri} ({type(e).__name__}: {first[:300]}) — "
            + PUSH_LATER.format(run_dir=run_dir)
        ) from e


def _delete_previous(client, exp_id: str, run_id: str) -> None:
    old = client.search_runs(
        [exp_id],
        filter_string=f"tags.`harness.run_id` = '{quote_filter_value(run_id)}'",
        max_results=1000,
    )
    for r in old:
        client.delete_run(r.info.run_id)


def _log(client, exp_id: str, run, created: list[str]) -> int:
    """The parent run and its variant runs (their ids appended to `created`, parent first);
    returns the parent's end time for `PendingLog.finish`."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    s = run.summary
    harness_run_id = str(s.get("run_id", run.path.name))
    start = iso_to_ms(s.get("started_at"))
    end = iso_to_ms(s.get("finished_at")) or int(time.time() * 1000)
    now = int(time.time() * 1000)
    verdicts = verdicts_of(s, labelled=True)  # what the runs table shows people
    # The columns the UI link opens with follow this run's headline metric.
    view = first_view(headline_metrics(s), readable.tag_widths(s))
    client.set_experiment_tag(exp_id, VIEW_TAG, view)

    parent = client.create_run(exp_id, start_time=start, run_name=harness_run_id)
    pid = parent.info.run_id
    created.append(pid)
    p_params, p_metrics, p_tags = parent_fields(run)
    _batch(
        client,
        pid,
        [Metric(k, v, now, 0) for k, v in p_metrics.items()],
        [Param(k, v) for k, v in p_params.items()],
        [RunTag(k, v) for k, v in p_tags.items()],
    )
    dataset = None
    for i, name in enumerate(run.variants):
        c_params, c_metrics, c_tags = variant_fields(run, name)
        c_tags.update({MLFLOW_PARENT_RUN_ID: pid, "harness.run_id": harness_run_id})
        # The UI expands a parent whose children are evaluation runs: the first view shows them.
        c_tags[RUN_TYPE_TAG] = "evaluation"
        verdict = readable.variant_verdict(s, name, verdicts)
        if verdict:
            c_tags["harness.verdict"] = verdict
        # The UI lists newest first: staggered start times keep the suite's order (baseline on top).
        c_start = (start or now) + len(run.variants) - i
        child = client.create_run(
            exp_id, start_time=c_start, run_name=run_name(run, name), tags=c_tags
        )
        cid = child.info.run_id
        created.append(cid)
        _batch(
            client,
            cid,
            [Metric(k, v, now, 0) for k, v in c_metrics.items()],
            [Param(k, v) for k, v in c_params.items()],
            [],
        )
        table = example_table(run, name)
        if len(table):
            client.log_table(cid, data=table, artifact_file=TABLE_FILE)
        dataset = dataset or _dataset_input(run)  # built once: schema inference is the slow part
        client.log_inputs(cid, datasets=[dataset])
        client.set_terminated(cid, end_time=end)
    ledger = ledger_table(s)
    if len(ledger):  # the sunk-cost ledger as a table (Artifacts tab: iterations, models, Δ)
        client.log_table(pid, data=ledger, artifact_file=LEDGER_FILE)
    return end


def _batch(client, run_id: str, metrics, params, tags) -> None:
    """log_batch in as few calls as MLflow's limits allow (100 params/tags, 1000 entities)."""
    from mlflow.utils.validation import MAX_ENTITIES_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

    while metrics or params or tags:
        p, params = params[:MAX_PARAMS_TAGS_PER_BATCH], params[MAX_PARAMS_TAGS_PER_BATCH:]
        t, tags = tags[:MAX_PARAMS_TAGS_PER_BATCH], tags[MAX_PARAMS_TAGS_PER_BATCH:]
        room = MAX_ENTITIES_PER_BATCH - len(p) - len(t)
        m, metrics = metrics[:room], metrics[room:]
        client.log_batch(run_id, metrics=m, params=p, tags=t)


def _log_artifacts(client, run_id: str, run_dir: Path) -> None:
    for name in ("suite.yaml", "summary.json", "report.md", "report.html", "diagnosis.json"):
        if (run_dir / name).exists():
            client.log_artifact(run_id, str(run_dir / name))
    if (run_dir / "plots").is_dir() and any((run_dir / "plots").iterdir()):
        client.log_artifacts(run_id, str(run_dir / "plots"), artifact_path="plots")


def _dataset_input(run):
    """The test set as an MLflow dataset input (context: test) shared by every variant run."""
    import mlflow.data
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    # The examples this run scored (a --limit run covers a prefix of the test set).
    ids = list(dict.fromkeys(r["id"] for recs in run.records.values() for r in recs if "id" in r))
    if run.examples and all(i in run.examples for i in ids):
        rows = [
            {
                "id": i,
                "input": json_text(run.examples[i]["input"]),
                "expected": json_text(run.examples[i]["expected"]),
            }
            for i in ids
        ]
        df, targets = pd.DataFrame(rows), "expected"
    else:  # data not re-readable: the ids still identify the test set
        df, targets = pd.DataFrame({"id": ids}), None
    data = run.suite.get("data") or {}
    source = str(data.get("test") or run.path / "suite.yaml")
    with warnings.catch_warnings():
        # A local path matches two equivalent source classes; MLflow warns and picks one.
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(
            df, source=source, targets=targets, name=f"{run.suite_name}-test"
        )
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, "test")]
    return DatasetInput(ds._to_mlflow_entity(), tags=tags)
