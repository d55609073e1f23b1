"""The MLflow tracking store: where it is, opening it quietly, and the `harness ui` command.

Everything goes through an explicit MlflowClient(tracking_uri): no global mlflow state, no
reliance on MLflow's implicit default store."""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from pathlib import Path

from harness.errors import SuiteError, TrackingError

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


# Stores MLflow can open (a database URL or a tracking server); anything else fails only when
# the run is logged, after every call was paid for.
STORE_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


def check_uri(uri: str) -> None:
    """A tracking URI MLflow can use, checked before the first call (exit 2, SuiteError)."""
    if uri.startswith("sqlite:") and not uri.startswith("sqlite:///"):
        raise SuiteError(
            f"--tracking-uri {uri!r}: a SQLite store is sqlite:/// followed by the file's path"
        )
    try:
        _check_not_file_store(uri)
    except TrackingError as e:
        raise SuiteError(f"--tracking-uri: {e}") from None
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in STORE_SCHEMES:
        raise SuiteError(
            f"--tracking-uri {uri!r}: unknown store {scheme!r} — use sqlite:///path/mlflow.db, "
            "an MLflow server (http://host:5000) or a database URL (postgresql://...)"
        )


def _check_not_file_store(uri: str) -> None:
    if uri.startswith("file:") or ("://" not in uri and not uri.startswith("databricks")):
        raise TrackingError(
            f"tracking URI {uri!r}: MLflow's file store is deprecated — use "
            "sqlite:///path/mlflow.db or an MLflow server URL (http://host:5000)"
        )


def set_mlflow_env() -> None:
    # setdefault keeps a user's explicit setting.
    # An unreachable server would otherwise be retried for minutes (7 retries, backoff x2);
    # the runner must carry on quickly.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # MLflow sends usage telemetry to a remote endpoint by default; an eval harness run in CI
    # or offline should not phone home (and it costs ~1 s per run).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # With a tracking server MLflow writes "View run … at: URL" to stdout for every run it
    # ends: that broke `--json` output and the logging child's one-line answer (found by the
    # team-setup test, tests/run/test_team_setup.py).
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def prewarm() -> threading.Thread:
    """Import MLflow in a background thread while the run makes its (I/O-bound) calls.

    `import mlflow` costs 1-2 s of CPU; doing it during the run keeps it off the time logging
    adds at the end. Call it only after any worker processes are forked: a fork while another
    thread holds an import lock can hang the child.
    """

    def load():
        set_mlflow_env()
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


def tracking_client(uri: str):
    set_mlflow_env()
    from mlflow import MlflowClient

    _quiet_logs()
    _check_not_file_store(uri)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrackingError(f"cannot create {db.parent} for the tracking store ({e})") from None
        with _store_lock(db):
            # MLflow creates and migrates the tables on first use; two first runs at once
            # would race in alembic ("table _alembic_tmp_... already exists") and can leave
            # the file broken. One process at a time opens the store; the others wait.
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)
        return client
    if uri.startswith(("http://", "https://")):
        probe_tracking_server(uri)
    return MlflowClient(tracking_uri=uri)


@contextlib.contextmanager
def _store_lock(db: Path):
    """An exclusive lock on <db>.lock (POSIX flock; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(db.with_name(db.name + ".lock"), "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def probe_tracking_server(uri: str) -> None:
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


def ensure_experiment(client, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    root = artifact_root(uri)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        if root and uri.startswith("sqlite:///"):
            relocate_artifacts(uri, exp.experiment_id, exp.artifact_location, root)
        return exp.experiment_id
    location = f"{root}/{_safe(name)}" if root else None
    # Without the kind, MLflow 3's UI opens a new experiment on its GenAI traces dashboard
    # (empty here) instead of the runs table users browse.
    tags = {"harness.suite": name, EXPERIMENT_KIND_TAG: "custom_model_development"}
    try:
        return client.create_experiment(name, artifact_location=location, tags=tags)
    except Exception:
        # Another run created it between the lookup and here (two first runs at once).
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def relocate_artifacts(uri: str, experiment_id: str, location: str | None, root: str) -> bool:
    """Point an experiment's artifacts back beside its SQLite store when the store was copied or
    moved with its project: MLflow records an absolute location, so a copy would write its
    artifacts into the original's mlruns/ (and a moved one into a deleted path). True when the
    location was rewritten (the experiment's and its runs' artifact URIs)."""
    import sqlite3

    if not location or not location.startswith("file:") or location.startswith(root + "/"):
        return False
    old_root = location.rsplit("/", 1)[0]
    db = Path(uri[len("sqlite:///") :])
    with sqlite3.connect(db, timeout=30) as con:
        con.execute(
            "UPDATE experiments SET artifact_location = ? || substr(artifact_location, ?) "
            "WHERE experiment_id = ?",
            (root, len(old_root) + 1, int(experiment_id)),
        )
        con.execute(
            "UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
            "WHERE experiment_id = ? AND artifact_uri LIKE ? || '%'",
            (root, len(old_root) + 1, int(experiment_id), old_root),
        )
    return True


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"

# The MLflow UI (3.x) opens an experiment with the columns of a "shared view" named in its URL
# (?viewStateShareKey=K) and stored as the experiment tag mlflow.sharedViewState.K. Without one
# the runs table shows no metric column until the user picks some from dozens.
VIEW_KEY = "harness"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"


def first_view(metric_keys: list[str], tag_widths: dict[str, int] | None = None) -> str:
    """The shared view's JSON: the verdict, the readable figures (tags in % and $, each with
    its width), the model, the headline metrics and the costs, each column wide enough for its
    name (delta_x_ci_low and delta_x_ci_high must not look alike)."""
    tag_widths = tag_widths or {}
    columns = [
        "tags.`harness.verdict`",
        *(f"tags.`{k}`" for k in tag_widths),
        "params.`model`",
        *(f"metrics.`{k}`" for k in [*metric_keys, "cost_usd", "spent_usd"]),
    ]
    # The UI applies widths only to the columns it is told the order of.
    order = ["attributes.`Run Name`", *columns]
    widths = {c: max(120, 8 * len(c.split("`")[1]) + 36) for c in order}
    widths.update({f"tags.`{k}`": w for k, w in tag_widths.items()})
    widths["attributes.`Run Name`"] = 170
    widths["params.`model`"] = 250  # fine-tuned ids are long: openai/ft:gpt-4o-mini:acme::x3
    return json.dumps(
        {
            "selectedColumns": columns,
            "columnOrder": order,
            "columnWidths": widths,
            "orderByKey": "attributes.start_time",
            "orderByAsc": False,
        }
    )


def experiment_url(server: str, experiment_id: str) -> str:
    """The link that opens a suite's runs table (not MLflow 3's GenAI overview) in its first view."""
    return (
        f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs"
        f"?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"
    )


def experiment_link(server: str, suite_name: str, timeout: float = 10) -> str | None:
    """The runs-table link of a suite's experiment on an MLflow server or UI, asked over its REST
    API (no MLflow import); None when the server has no such experiment."""
    import urllib.error
    import urllib.parse
    import urllib.request

    query = urllib.parse.urlencode({"experiment_name": suite_name})
    url = f"{server.rstrip('/')}/api/2.0/mlflow/experiments/get-by-name?{query}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            exp = json.loads(r.read())["experiment"]
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise TrackingError(
            f"{server} answered HTTP {e.code} for experiment {suite_name!r}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        raise TrackingError(f"tracking server {server} is unreachable ({e})") from None
    return experiment_url(server, exp["experiment_id"])


def ui_link(uri: str, suite_name: str) -> str | None:
    """The suite's runs-table link when the store is a server someone can browse; else None
    (a local store has no UI until `harness ui` starts one). Never fails: it is a convenience."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        return experiment_link(uri, suite_name)
    except TrackingError:
        return None


def ui_env() -> dict[str, str]:
    """Environment of `harness ui`: MLflow's background job workers (GenAI scorers: 7 extra
    processes that outlive a SIGTERM) are off unless the user turns them on; browsing runs
    doesn't need them."""
    set_mlflow_env()
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


def _safe(name: str) -> str:
    return re.sub(r"[^\w.\-]", "_", name)
