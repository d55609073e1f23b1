"""MLflow logging of a run directory, and reading a suite's earlier runs back (for the ledger).

Layout in MLflow: one experiment per suite; one parent run per `harness run` (tag
harness.role=suite) holding the hypothesis, verdicts, report and resolved suite; one nested run per
variant (run name = variant name) holding flattened settings, metrics with CI bounds, deltas,
the per-example table (`examples.json`, via log_table) and the test set (log_inputs).

Everything goes through an explicit MlflowClient(tracking_uri): no global mlflow state, no
reliance on MLflow's implicit default store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
import time
import warnings
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import TrackingError

if TYPE_CHECKING:
    from harness.rundir import RunFiles

TABLE_FILE = "examples.json"
ROLE_TAG = "harness.role"
PUSH_LATER = "results stay in {run_dir}; log them later with `harness report {run_dir} --log`"


def tracking_uri(cli_value: str | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlruns/mlflow.db."""
    if cli_value:
        return cli_value
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return "sqlite:///" + str(Path.cwd() / "mlruns" / "mlflow.db")


def artifact_root(uri: str) -> str | None:
    """Where a new experiment's artifacts go: next to a SQLite store (mlruns/), else the server's choice.

    An MLflow server (http) or a database server decides its own artifact store; for a local
    SQLite file we set it explicitly so nothing depends on MLflow's implicit ./mlruns default.
    """
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent if db.is_absolute() else Path.cwd() / db.parent).as_uri()
    _check_not_file_store(uri)
    return None


def _check_not_file_store(uri: str) -> None:
    if uri.startswith("file:") or ("://" not in uri and not uri.startswith("databricks")):
        raise TrackingError(
            f"tracking URI {uri!r}: MLflow's file store is deprecated — use "
            "sqlite:///path/mlflow.db or an MLflow server URL (http://host:5000)"
        )


def _mlflow_env() -> None:
    # setdefault keeps a user's explicit setting.
    # An unreachable server would otherwise be retried for minutes (7 retries, backoff x2);
    # the runner must carry on quickly.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # MLflow sends usage telemetry to a remote endpoint by default; an eval harness run in CI
    # or offline should not phone home (and it costs ~1 s per run).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def prewarm() -> threading.Thread:
    """Import MLflow in a background thread while the run makes its (I/O-bound) calls.

    `import mlflow` costs 1-2 s of CPU; doing it during the run keeps it off the time logging
    adds at the end. Call it only after any worker processes are forked: a fork while another
    thread holds an import lock can hang the child.
    """

    def load():
        _mlflow_env()
        try:
            import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
            from mlflow import MlflowClient  # noqa: F401

            _quiet_logs()
        except Exception:  # only a head start: log_run imports (and reports) for real later
            pass

    t = threading.Thread(target=load, name="harness-mlflow-prewarm", daemon=True)
    t.start()
    return t


def _quiet_logs() -> None:
    """Keep MLflow's and alembic's INFO lines ("Creating initial MLflow database tables...",
    "Updating database tables") off the user's stderr; warnings and errors still show.

    Must run after `import mlflow`, which sets its loggers from MLFLOW_LOGGING_LEVEL (default
    INFO); a user who sets that variable keeps their level.
    """
    import logging

    if os.environ.get("MLFLOW_LOGGING_LEVEL"):
        return
    for name in ("mlflow", "alembic"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def _client(uri: str):
    _mlflow_env()
    from mlflow import MlflowClient

    _quiet_logs()
    _check_not_file_store(uri)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrackingError(f"cannot create {db.parent} for the tracking store ({e})") from None
    elif uri.startswith(("http://", "https://")):
        _probe(uri)
    return MlflowClient(tracking_uri=uri)


def _probe(uri: str) -> None:
    """Fail in seconds, not minutes, when an MLflow server does not answer."""
    import urllib.error
    import urllib.request

    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            resp.read()
    except urllib.error.HTTPError:
        return  # it answered (health may be behind auth or a proxy path): let MLflow decide
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise TrackingError(f"tracking server {uri} is unreachable ({reason})") from None


def _experiment_id(client, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    root = artifact_root(uri)
    location = f"{root}/{_safe(name)}" if root else None
    # Without the kind, MLflow 3's UI opens a new experiment on its GenAI traces dashboard
    # (empty here) instead of the runs table users browse.
    tags = {"harness.suite": name, EXPERIMENT_KIND_TAG: "custom_model_development"}
    return client.create_experiment(name, artifact_location=location, tags=tags)


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"


def ui_env() -> dict[str, str]:
    """Environment of `harness ui`: MLflow's background job workers (GenAI scorers: 7 extra
    processes that outlive a SIGTERM) are off unless the user turns them on; browsing runs
    doesn't need them."""
    _mlflow_env()
    return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}


def ui_command(uri: str, host: str, port: int) -> list[str] | None:
    """The `mlflow ui` command serving a local store; None when the store is already a server."""
    import sys

    if uri.startswith(("http://", "https://")):
        return None
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
        # One user browsing a local store: one worker instead of MLflow's 4 (RAM, start-up).
        "--workers",
        "1",
    ]
    root = artifact_root(uri)
    if root:
        Path(root.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        # Experiments created from the UI also keep their artifacts under mlruns/.
        cmd += ["--artifacts-destination", root]
    return cmd


# ---------------------------------------------------------------- logging


def publish(run_dir: str | Path, cli_uri: str | None = None, warn=None, log=None) -> str | None:
    """The end of `harness run`: render the report, then log to MLflow.

    An unusable tracking store never fails the run: the warning says how to push later, the
    results stay in run_dir and the exit code still reflects the verdict. Returns the parent
    run id, or None when logging failed. `log(run_dir, uri)` replaces `log_run` (the runner
    passes harness.tracking_child's, which logs in a child process).
    """
    import sys

    from harness.report import render_report
    from harness.rundir import load_run

    run = load_run(run_dir)  # read once for the report and an in-process log_run
    render_report(run)
    try:
        if log is None:
            return log_run(run, tracking_uri(cli_uri))
        return log(run_dir, tracking_uri(cli_uri))  # a child process reads the run itself
    except TrackingError as e:
        (warn or (lambda m: print(m, file=sys.stderr)))(f"Warning: MLflow logging skipped: {e}")
        return None


def log_run(run_dir: str | Path | RunFiles, tracking_uri: str) -> str:
    """Log a run directory (or a run already loaded with harness.rundir.load_run) to MLflow;
    return the parent run id.

    Re-logging the same harness run replaces its earlier MLflow runs (so `--log` after a partial
    push, or after `--resume`, leaves exactly one parent per harness run).
    Raises TrackingError (saying how to push later) when the store can't be used.
    """
    from harness.report import render_report
    from harness.rundir import RunFiles, load_run

    run = run_dir if isinstance(run_dir, RunFiles) else load_run(run_dir)
    run_dir = run.path
    with _store_errors(tracking_uri, run_dir):
        client = _client(tracking_uri)  # first, so an unreachable store fails before any work
    if not (run_dir / "report.md").exists():
        render_report(run)
    with _store_errors(tracking_uri, run_dir):
        exp_id = _experiment_id(client, run.suite_name, tracking_uri)
        _delete_previous(client, exp_id, str(run.summary.get("run_id", run_dir.name)))
        return _log(client, exp_id, run)


@contextmanager
def _store_errors(tracking_uri: str, run_dir: Path):
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
        [exp_id], filter_string=f"tags.`harness.run_id` = '{_quote(run_id)}'", max_results=1000
    )
    for r in old:
        client.delete_run(r.info.run_id)


def _log(client, exp_id: str, run) -> str:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    s = run.summary
    harness_run_id = str(s.get("run_id", run.path.name))
    start = _ms(s.get("started_at"))
    end = _ms(s.get("finished_at")) or int(time.time() * 1000)
    now = int(time.time() * 1000)
    verdicts = _verdicts(s)

    parent = client.create_run(exp_id, start_time=start, run_name=harness_run_id)
    pid = parent.info.run_id
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
        if name in verdicts:
            c_tags["harness.verdict"] = verdicts[name]
        # The UI lists newest first: staggered start times keep the suite's order (baseline on top).
        c_start = (start or now) + len(run.variants) - i
        child = client.create_run(exp_id, start_time=c_start, run_name=name, tags=c_tags)
        cid = child.info.run_id
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
    _log_artifacts(client, pid, run.path)
    client.set_terminated(pid, status="FINISHED", end_time=end)
    return pid


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
    for name in ("suite.yaml", "summary.json", "report.md", "report.html"):
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
                "input": _text(run.examples[i]["input"]),
                "expected": _text(run.examples[i]["expected"]),
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


# ---------------------------------------------------------------- what gets logged (pure)


def parent_fields(run) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    """Params, metrics and tags of the suite-level parent run."""
    s = run.summary
    params: dict[str, str] = {
        "suite_hash": str(s.get("suite_hash")),
        "task": str(s.get("task")),
        "baseline": str(s.get("baseline")),
        "n_examples": str(s.get("n_examples")),
        "variants": ",".join(run.variants),
    }
    for path, digest in (s.get("data_hashes") or {}).items():
        params[_key(f"data_hash.{path}")] = str(digest)
    for k, v in (s.get("hypothesis") or {}).items():
        params[f"hypothesis.{k}"] = str(v)

    metrics: dict[str, float] = {}
    total_cost = 0.0
    for name, v in (s.get("variants") or {}).items():
        for m, val in (v.get("metrics") or {}).items():
            if isinstance(val, dict) and _finite(val.get("value")):
                metrics[_key(f"{name}.{m}")] = float(val["value"])
        hyp_metric = (s.get("hypothesis") or {}).get("metric")
        d = (v.get("delta") or {}).get(hyp_metric) if hyp_metric else None
        if d and _finite(d.get("value")):
            metrics[_key(f"{name}.delta_{hyp_metric}")] = float(d["value"])
        if _finite(v.get("cost_usd")):
            metrics[_key(f"{name}.cost_usd")] = float(v["cost_usd"])
            total_cost += float(v["cost_usd"])
    metrics["total_cost_usd"] = total_cost  # the variants' calls; the judge's is apart
    judge = s.get("judge") if isinstance(s.get("judge"), dict) else {}
    for k in ("cost_usd", "calls", "cached_calls", "errors", "tokens_in", "tokens_out"):
        if _finite(judge.get(k)):
            metrics[f"judge_{k}"] = float(judge[k])
    if _finite(s.get("exit_code")):
        metrics["exit_code"] = float(s["exit_code"])

    verdicts = _verdicts(s)
    tags = {
        ROLE_TAG: "suite",
        "harness.suite": run.suite_name,
        "harness.run_id": str(s.get("run_id", run.path.name)),
        "harness.hypothesis": json.dumps(s.get("hypothesis")),
        "harness.ledger_entry": json.dumps(s.get("ledger_entry", {}), default=str),
        "harness.verdicts": json.dumps(verdicts),
        "harness.exit_code": str(s.get("exit_code")),
        "mlflow.note.content": _note(s),
    }
    for name, verdict in verdicts.items():
        tags[_key(f"harness.verdict.{name}")] = verdict
    commit = git_commit(_suite_dir(run))
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return params, metrics, tags


def variant_fields(run, name: str) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    """Params, metrics and tags of one variant's nested run."""
    v = (run.summary.get("variants") or {}).get(name) or {}
    spec = _merged_spec(run, name)
    params = {
        k: val for k, val in flatten(spec).items() if k not in ("name", "system", "user", "index")
    }
    for field in ("system", "user"):
        if spec.get(field):
            params[f"{field}_template_hash"] = hashlib.sha256(
                str(spec[field]).encode()
            ).hexdigest()[:12]
    params.setdefault("model", v.get("model"))
    params.setdefault("kind", v.get("kind"))
    if v.get("base_model"):
        params.setdefault("base_model", v.get("base_model"))
    params = {_key(k): _param_value(val) for k, val in params.items() if val is not None}

    metrics: dict[str, float] = {}
    for m, val in (v.get("metrics") or {}).items():
        metrics.update(_ci_metrics(m, val))
    for m, d in (v.get("delta") or {}).items():
        metrics.update(_ci_metrics(f"delta_{m}", d, _CI_PARTS + (("p_value", "_p_value"),)))
    for k in (
        "cost_usd",
        "tokens_in",
        "tokens_out",
        "n_calls",
        "n_errors",
        "error_rate",
        "cached_calls",
        "n_examples",
    ):
        if _finite(v.get(k)):
            metrics[k] = float(v[k])
    metrics.update(_latency(run.records.get(name) or [], metrics))
    judge = (run.summary.get("judge") or {}).get("variants") or {}
    for k, val in judge_child_metrics(judge.get(name) or {}).items():
        metrics.setdefault(k, val)  # a declared metric's own value (with its CI) comes first
    metrics.update(retrieval_child_metrics(v.get("retrieval") or {}))

    tags = {ROLE_TAG: "variant", "harness.suite": run.suite_name, "harness.variant": name}
    if v.get("kind"):
        tags["harness.kind"] = str(v["kind"])
    return params, metrics, tags


_CI_PARTS = (("value", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high"))


def _ci_metrics(name: str, entry: Any, parts=_CI_PARTS) -> dict[str, float]:
    """A summary {value, ci_low, ci_high} entry as metrics name, name_ci_low, name_ci_high."""
    if not isinstance(entry, dict):
        return {}
    return {_key(name + suffix): float(entry[p]) for p, suffix in parts if _finite(entry.get(p))}


def judge_child_metrics(j: dict[str, Any]) -> dict[str, float]:
    """One variant's summary["judge"]["variants"] entry as flat child-run metrics."""
    out: dict[str, float] = {}
    for m in ("judge", "preference", "style_consistency"):
        out.update(_ci_metrics(m, j.get(m)))
    agreement = j.get("agreement") or {}
    for which in ("repeats", "second_model"):
        if _finite(agreement.get(which)):
            out[f"judge_agreement_{which}"] = float(agreement[which])
        if _finite(agreement.get(f"{which}_pairs")):
            out[f"judge_agreement_{which}_pairs"] = float(agreement[f"{which}_pairs"])
    # The judge_agreement metric: kappa between repeats, else between the two judge models.
    for which in ("repeats", "second_model"):
        if f"judge_agreement_{which}" in out:
            out["judge_agreement"] = out[f"judge_agreement_{which}"]
            break
    for key, metric in (
        ("unscored", "judge_unscored"),
        ("wins", "preference_wins"),
        ("losses", "preference_losses"),
        ("ties_or_split", "preference_ties"),
        ("unscored_preference", "preference_unscored"),
        ("position_bias", "position_bias"),
    ):
        if _finite(j.get(key)):
            out[metric] = float(j[key])
    return out


def retrieval_child_metrics(r: dict[str, Any]) -> dict[str, float]:
    """A RAG variant's summary["retrieval"] (gold passages) as flat child-run metrics."""
    out: dict[str, float] = {}
    for key, metric in (
        ("recall_at_k", "recall_at_k"),
        ("mrr", "mrr"),
        ("k", "retrieval_k"),
        ("n", "retrieval_n_gold"),
    ):
        if _finite(r.get(key)):
            out[metric] = float(r[key])
    for group in ("gold_retrieved", "gold_missed"):
        g = r.get(f"accuracy_{group}") or {}
        if _finite(g.get("value")):
            out[f"accuracy_{group}"] = float(g["value"])
        if _finite(g.get("n")):
            out[f"n_{group}"] = float(g["n"])
    return out


def _merged_spec(run, name: str) -> dict[str, Any]:
    """The variant's settings with suite defaults filled in (the resolved suite may list them apart)."""
    spec = run.variant_spec(name)
    defaults = run.suite.get("defaults") or {}
    merged = {**defaults, **spec}
    if isinstance(defaults.get("params"), dict) and isinstance(spec.get("params"), dict):
        merged["params"] = {**defaults["params"], **spec["params"]}
    return merged


def example_table(run, name: str):
    """The per-example table of one variant (one row per record), for mlflow.log_table."""
    import pandas as pd

    from harness.report import example_score, reason_text

    rows = []
    for r in run.records.get(name) or []:
        ex = run.examples.get(r.get("id"), {})
        row = {
            "id": r.get("id"),
            "repeat": r.get("repeat", 0),
            "input": _text(ex.get("input")),
            "expected": _text(ex.get("expected")),
            "output": r.get("output"),
            "parsed": _text(r.get("parsed")),
            "score": example_score(r),
            "reason": reason_text(r),
            "latency_ms": r.get("latency_ms"),
            "cost_usd": r.get("cost_usd"),
            "tokens_in": r.get("tokens_in"),
            "tokens_out": r.get("tokens_out"),
            "cached": bool(r.get("cached")),
            "error": r.get("error"),
        }
        for k, val in (r.get("scores") or {}).items():
            row[f"score.{k}"] = val
        if r.get("judge"):  # the judge stage's raw samples (scores.judge is their mean)
            j = r["judge"]
            row["judge_samples"] = json.dumps(j.get("samples") or [])
            row["judge_second"] = json.dumps(j["second"]) if j.get("second") else None
            row["judge_scale"] = j.get("scale")
            row["judge_errors"] = j.get("errors", 0)
        reasons = r.get("reasons") or {}
        for k in ("judge", "preference"):
            if reasons.get(k):
                row[f"{k}_reason"] = reasons[k]
        if r.get("retrieved") is not None:  # RAG: what the model was shown, in rank order
            passages = [p for p in r["retrieved"] if isinstance(p, dict)]
            row["retrieved_ids"] = json.dumps([p.get("id") for p in passages])
            row["retrieved_scores"] = json.dumps([p.get("score") for p in passages])
            row["retrieved_sources"] = json.dumps([p.get("source") for p in passages])
        rows.append(row)
    return pd.DataFrame(rows)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"params": {"temperature": 0}} -> {"params.temperature": 0}; lists become JSON."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif prefix:
        out[prefix[:-1]] = json.dumps(obj, default=str) if isinstance(obj, (list, tuple)) else obj
    return out


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


# ---------------------------------------------------------------- small pure helpers


def git_commit(directory: Path | None) -> str | None:
    """HEAD commit of the git repository holding the suite, if any."""
    if directory is None or not directory.exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _suite_dir(run) -> Path:
    return run.suite_origin.parent if run.suite_origin else run.path


def _verdicts(s: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, v in ((s.get("guard") or {}).get("verdicts") or {}).items():
        out[name] = str(v.get("verdict") if isinstance(v, dict) else v)
    return out


def _note(s: dict[str, Any]) -> str:
    """The run's description in the MLflow UI: the verdict sentences."""
    lines = []
    for name, v in ((s.get("guard") or {}).get("verdicts") or {}).items():
        if isinstance(v, dict) and v.get("sentence"):
            lines.append(f"- **{name}** ({v.get('verdict')}): {v['sentence']}")
    return "\n".join(lines) or f"harness run {s.get('run_id', '')} of suite {s.get('suite', '')}"


def _latency(records: list[dict], have: dict[str, float]) -> dict[str, float]:
    import numpy as np

    lat = [r["latency_ms"] for r in records if isinstance(r.get("latency_ms"), (int, float))]
    if not lat:
        return {}
    out = {}
    for q in (50, 95):
        if f"latency_p{q}" not in have:
            out[f"latency_p{q}_ms"] = float(np.percentile(lat, q))
    return out


def _ms(iso: Any) -> int | None:
    if not isinstance(iso, str):
        return None
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _finite(x: Any) -> bool:
    return (
        isinstance(x, (int, float))
        and not isinstance(x, bool)
        and x == x
        and abs(x) != float("inf")
    )


def _key(k: str) -> str:
    # MLflow keys allow alphanumerics, _ - . space : and /; no leading '/' and no '..'.
    k = re.sub(r"[^\w\-. :/]", "_", k).lstrip("/")
    return k.replace("..", "._")


def _safe(name: str) -> str:
    return re.sub(r"[^\w.\-]", "_", name)


def _quote(s: str) -> str:
    return s.replace("'", "\\'")


def _param_value(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return text[:6000]


def _text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)


def _loads(text: str | None, default):
    if not text:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return default
