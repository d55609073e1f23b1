"""MLflow logging read back with MlflowClient (SQLite store) and through a real `mlflow server`'s REST API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from rundir_fixture import add_retrieval, make_run_dir

from harness.cli import main
from harness.errors import TrackingError
from harness.report.render import render_report
from harness.track.history import history
from harness.track.log import log_run
from harness.track.store import TABLE_FILE, experiment_link, tracking_uri, ui_command

SERVER_START_TIMEOUT_S = 120  # `mlflow server` imports a lot; 2 busy cores can take ~30 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sqlite(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Factory of empty SQLite stores: the schema is created once and copied (creating it runs
    ~50 migrations, seconds each time on a busy machine)."""
    from mlflow import MlflowClient

    template = tmp_path_factory.mktemp("tpl") / "mlflow.db"
    MlflowClient(f"sqlite:///{template}").search_experiments()

    def make(tmp: Path) -> str:
        db = tmp / "mlruns" / "mlflow.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(template, db)
        return f"sqlite:///{db}"

    return make


@pytest.fixture(scope="module")
def logged(tmp_path_factory, store):
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("trk")
    run_dir = make_run_dir(root)
    render_report(run_dir)  # as `harness run` and `harness report --log` do before logging
    uri = store(root)
    pid = log_run(run_dir, uri)
    return root, run_dir, uri, pid, MlflowClient(uri)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    # Anything that slipped to MLflow's implicit default would land in tmp, not the repo.
    monkeypatch.chdir(tmp_path)


def test_tracking_uri_precedence(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking_uri() == "http://mlflow.example:5000"
    assert tracking_uri("sqlite:////x/y.db") == "sqlite:////x/y.db"


def test_file_store_uri_rejected(tmp_path):
    run_dir = make_run_dir(tmp_path)
    with pytest.raises(TrackingError, match="file store is deprecated"):
        log_run(run_dir, f"file://{tmp_path}/mlruns")


def test_experiment_parent_and_children(logged):
    root, run_dir, uri, pid, client = logged
    exp = client.get_experiment_by_name("quickstart")
    # Artifacts go where we said (next to the SQLite file), not to MLflow's implicit default.
    assert exp.artifact_location == (root / "mlruns").as_uri() + "/quickstart"
    # The UI opens on the runs table, not MLflow 3's GenAI traces view.
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = client.get_run(pid)
    assert parent.info.run_name == "20261125-132501-ab12"
    assert parent.info.status == "FINISHED"
    assert parent.info.end_time - parent.info.start_time == 100_000  # started_at/finished_at
    tags = parent.data.tags
    assert tags["harness.role"] == "suite"
    assert tags["harness.run_id"] == "20261125-132501-ab12"
    assert json.loads(tags["harness.verdicts"]) == {"ft-mini": "inconclusive"}
    assert json.loads(tags["harness.hypothesis"]) == {
        "metric": "macro_f1",
        "test": "superiority",
        "margin": 0.05,
        "confidence": 0.95,
    }
    assert json.loads(tags["harness.ledger_entry"])["variants"]["ft-mini"]["training_usd"] == 12.0
    assert "target +5.0 not shown" in tags["mlflow.note.content"]
    assert parent.data.params["suite_hash"] == "0123456789abcdef"
    assert parent.data.params["data_hash.data/test.csv"] == "f" * 64
    assert parent.data.params["hypothesis.margin"] == "0.05"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert parent.data.metrics["ft-mini.macro_f1"] == pytest.approx(
        summary["variants"]["ft-mini"]["metrics"]["macro_f1"]["value"]
    )
    assert parent.data.metrics["exit_code"] == 1.0

    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{pid}'"
    )
    # A guarded variant's run carries its iteration: the runs table tells iterations apart.
    assert sorted(c.info.run_name for c in children) == ["few-shot", "ft-mini · x2", "zero-shot"]
    ft = next(c for c in children if c.info.run_name == "ft-mini · x2")
    v = summary["variants"]["ft-mini"]
    m = ft.data.metrics
    assert m["accuracy"] == pytest.approx(v["metrics"]["accuracy"]["value"])
    assert m["accuracy_ci_low"] == pytest.approx(v["metrics"]["accuracy"]["ci_low"])
    assert m["macro_f1_ci_high"] == pytest.approx(v["metrics"]["macro_f1"]["ci_high"])
    assert m["delta_macro_f1"] == pytest.approx(v["delta"]["macro_f1"]["value"])
    assert m["delta_macro_f1_p_value"] == pytest.approx(0.04)
    assert m["cost_usd"] == pytest.approx(v["cost_usd"])
    assert m["tokens_in"] == 2400 and m["n_errors"] == v["n_errors"]
    records = [
        json.loads(x) for x in (run_dir / "results" / "ft-mini.jsonl").read_text().splitlines()
    ]
    lat = [
        r["latency_ms"] for r in records if r["error"] is None
    ]  # errors' time-to-give-up left out
    assert 0 < len(lat) < 30
    assert m["latency_p95_ms"] == pytest.approx(pd.Series(lat).quantile(0.95))
    p = ft.data.params
    assert p["model"] == "openai/ft:gpt-4o-mini:acme::x1"
    assert p["kind"] == "fine-tuned" and p["base_model"] == "openai/gpt-4o-mini"
    assert p["params.temperature"] == "0" and p["params.max_tokens"] == "16"  # from defaults
    assert p["training.cost_usd"] == "12.0"
    assert len(p["user_template_hash"]) == 12
    assert ft.data.tags["harness.verdict"] == "inconclusive"
    few = next(c for c in children if c.info.run_name == "few-shot")
    assert few.data.params["few_shot.k"] == "4"
    base = next(c for c in children if c.info.run_name == "zero-shot")
    assert "delta_accuracy" not in base.data.metrics  # the baseline has no delta


def test_per_example_table_and_dataset(logged, tmp_path):
    root, run_dir, uri, pid, client = logged
    exp = client.get_experiment_by_name("quickstart")
    ft = client.search_runs(
        [exp.experiment_id], filter_string="tags.`harness.variant` = 'ft-mini'"
    )[0]
    # (client.load_table searches through the global tracking URI, so read the artifact directly.)
    table = pd.read_json(
        client.download_artifacts(ft.info.run_id, TABLE_FILE, str(tmp_path)), orient="split"
    )
    records = [
        json.loads(line)
        for line in (run_dir / "results" / "ft-mini.jsonl").read_text().splitlines()
    ]
    assert len(table) == len(records) == 30
    for col in (
        "input",
        "expected",
        "output",
        "raw_output",
        "parsed",
        "score",
        "reason",
        "latency_ms",
        "cost_usd",
    ):
        assert col in table.columns
    row = table.set_index("id").loc[records[5]["id"]]
    assert row["expected"] in {"card_arrival", "card_lost", "refund"}
    assert row["input"].startswith("question 5 |")
    assert row["score"] == records[5]["scores"]["correct"]
    assert row["latency_ms"] == records[5]["latency_ms"]
    errors = table[table["error"].notna()]
    assert (errors["reason"].str.startswith("error: timeout")).all() and (
        errors["score"] == 0
    ).all()
    assert json.loads(ft.data.tags["mlflow.loggedArtifacts"]) == [
        {"path": TABLE_FILE, "type": "table"}
    ]
    (ds,) = ft.inputs.dataset_inputs
    assert ds.dataset.name == "quickstart-test"
    assert json.loads(ds.dataset.profile)["num_rows"] == 30
    assert {t.key: t.value for t in ds.tags}["mlflow.data.context"] == "test"
    artifacts = {a.path for a in client.list_artifacts(pid)}
    assert {"suite.yaml", "summary.json", "report.md", "report.html", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(pid, "plots")}
    assert "plots/cost_quality.png" in plots


def test_relog_replaces_and_history_is_oldest_first(tmp_path, store):
    uri = store(tmp_path)
    first = make_run_dir(tmp_path / "a", run_id="20261101-090000-aaaa", verdict="fail")
    second = make_run_dir(tmp_path / "b", run_id="20261102-090000-bbbb", verdict="pass")
    summary = json.loads((first / "summary.json").read_text())
    summary["started_at"] = "2026-11-01T09:00:00+00:00"
    (first / "summary.json").write_text(json.dumps(summary))
    assert history("quickstart", uri) == []
    log_run(second, uri)
    log_run(first, uri)
    again = log_run(first, uri)  # e.g. `harness report --log` after a partial push
    h = history("quickstart", uri)
    assert [e["run_id"] for e in h] == ["20261101-090000-aaaa", "20261102-090000-bbbb"]
    assert h[0]["mlflow_run_id"] == again
    assert h[0]["verdicts"] == {"ft-mini": "fail"} and h[1]["verdicts"] == {"ft-mini": "pass"}
    assert h[0]["hypothesis"]["margin"] == 0.05
    assert h[0]["ledger_entry"]["variants"]["ft-mini"]["model"] == "openai/ft:gpt-4o-mini:acme::x1"
    assert h[0]["start_time"] < h[1]["start_time"]


def test_unreachable_server_fails_fast_with_push_command(tmp_path):
    run_dir = make_run_dir(tmp_path)
    uri = f"http://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    with pytest.raises(TrackingError) as e:
        log_run(run_dir, uri)
    assert time.monotonic() - t0 < 15
    msg = str(e.value)
    assert msg.startswith(f"tracking server {uri} is unreachable")
    assert msg.endswith(
        f"results stay in {run_dir}; log them later with `harness report {run_dir} --log`"
    )
    with pytest.raises(TrackingError, match="unreachable"):
        history("quickstart", uri)


def test_unusable_sqlite_path(tmp_path):
    run_dir = make_run_dir(tmp_path)
    (tmp_path / "blocker").write_text("a file, not a directory")
    with pytest.raises(TrackingError, match=r"cannot create .*blocker.* `harness report .* --log`"):
        log_run(run_dir, f"sqlite:///{tmp_path / 'blocker' / 'mlflow.db'}")


def test_cli_report_log(tmp_path, store):
    run_dir = make_run_dir(tmp_path)
    uri = store(tmp_path)
    result = CliRunner().invoke(main, ["report", str(run_dir), "--log", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert f"logged to MLflow at {uri}: parent run " in result.output
    assert [e["run_id"] for e in history("quickstart", uri)] == ["20261125-132501-ab12"]
    bad = f"http://127.0.0.1:{_free_port()}"
    result = CliRunner().invoke(main, ["report", str(run_dir), "--log", "--tracking-uri", bad])
    assert result.exit_code == 3
    assert f"log them later with `harness report {run_dir} --log`" in result.output


def test_ui_command(tmp_path):
    uri = _sqlite(tmp_path)
    cmd = ui_command(uri, "127.0.0.1", 5001)
    assert cmd[:4] == [sys.executable, "-m", "mlflow", "ui"]
    assert cmd[cmd.index("--backend-store-uri") + 1] == uri
    assert cmd[cmd.index("--port") + 1] == "5001"
    assert cmd[cmd.index("--artifacts-destination") + 1] == (tmp_path / "mlruns").as_uri()
    assert ui_command("http://mlflow.example:5000", "127.0.0.1", 5000) is None
    result = CliRunner().invoke(
        main, ["ui", "--tracking-uri", "http://mlflow.example:5000", "--no-browser"]
    )
    assert result.output == (
        "experiments (one per suite): http://mlflow.example:5000/#/experiments  — "
        "`harness ui SUITE.yaml` opens a suite's runs\n"
    )


# ---------------------------------------------------------------- a real MLflow server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("srv")
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{tmp / 'server.db'}",
        "--artifacts-destination", str(tmp / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with open(tmp / "server.log", "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start: {(tmp / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield url, tmp
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _rest(url: str, path: str, body: dict | None = None, **query) -> dict:
    full = f"{url}/api/2.0/mlflow/{path}"
    if query:
        full += "?" + urllib.parse.urlencode(query)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(full, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_real_server_rest_api(server, tmp_path):
    url, _ = server
    run_dir = make_run_dir(tmp_path)
    render_report(run_dir)
    pid = log_run(run_dir, url)
    exp = _rest(url, "experiments/get-by-name", experiment_name="quickstart")["experiment"]
    runs = _rest(
        url, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100}
    )["runs"]
    by_name = {r["info"]["run_name"]: r for r in runs}
    assert set(by_name) == {"20261125-132501-ab12", "zero-shot", "few-shot", "ft-mini · x2"}
    assert by_name["20261125-132501-ab12"]["info"]["run_id"] == pid
    for name in ("zero-shot", "few-shot", "ft-mini · x2"):
        tags = {t["key"]: t["value"] for t in by_name[name]["data"]["tags"]}
        assert tags["mlflow.parentRunId"] == pid
    by_name["ft-mini"] = by_name["ft-mini · x2"]
    metrics = {m["key"]: m["value"] for m in by_name["ft-mini"]["data"]["metrics"]}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert metrics["macro_f1"] == pytest.approx(
        summary["variants"]["ft-mini"]["metrics"]["macro_f1"]["value"]
    )
    assert metrics["delta_accuracy_ci_low"] == pytest.approx(
        summary["variants"]["ft-mini"]["delta"]["accuracy"]["ci_low"]
    )
    ft_id = by_name["ft-mini"]["info"]["run_id"]
    files = {f["path"] for f in _rest(url, "artifacts/list", run_id=ft_id).get("files", [])}
    assert TABLE_FILE in files
    parent_files = {f["path"] for f in _rest(url, "artifacts/list", run_id=pid).get("files", [])}
    assert {"report.html", "summary.json", "suite.yaml", "plots"} <= parent_files
    # The table itself comes back through the server's artifact proxy.
    with urllib.request.urlopen(
        f"{url}/get-artifact?path={TABLE_FILE}&run_uuid={ft_id}", timeout=30
    ) as r:
        table = json.loads(r.read())
    assert len(table["data"]) == 30 and "expected" in table["columns"]
    assert [e["run_id"] for e in history("quickstart", url)] == ["20261125-132501-ab12"]
    _first_view_through_rest(url, exp, by_name, pid, summary)


def _first_view_through_rest(url, exp, by_name, pid, summary):
    """What the UI link opens: the experiment's shared view names columns every child fills."""
    exp_id = exp["experiment_id"]
    link = (
        f"{url}/#/experiments/{exp_id}/runs?workflowType=machine_learning&viewStateShareKey=harness"
    )
    assert experiment_link(url, "quickstart") == link
    assert experiment_link(url, "no-such-suite") is None
    tags = {t["key"]: t["value"] for t in exp["tags"]}
    view = json.loads(tags["mlflow.sharedViewState.harness"])
    assert view["selectedColumns"] == [
        "tags.`harness.verdict`",
        "tags.`macro_f1`",  # the readable figures: 80.0% [68.0%, 92.0%]
        "tags.`Δ macro_f1 vs zero-shot`",
        "tags.`spent`",
        "tags.`would cost`",
        "params.`model`",
        "metrics.`macro_f1`",  # the guard's metric, its interval and the paired Δ
        "metrics.`macro_f1_ci_low`",
        "metrics.`macro_f1_ci_high`",
        "metrics.`delta_macro_f1`",
        "metrics.`delta_macro_f1_ci_low`",
        "metrics.`delta_macro_f1_ci_high`",
        "metrics.`cost_usd`",
        "metrics.`spent_usd`",
    ]
    ft = by_name["ft-mini"]
    ft_metrics = {m["key"]: m["value"] for m in ft["data"]["metrics"]}
    d = summary["variants"]["ft-mini"]["delta"]["macro_f1"]
    assert ft_metrics["delta_macro_f1_ci_high"] == pytest.approx(d["ci_high"])
    for col in view["selectedColumns"]:
        kind, key = col.split(".", 1)
        if kind == "metrics":
            assert key.strip("`") in ft_metrics, col
    # Widths apply to the columns given an order: every selected one, after the run name.
    assert view["columnOrder"] == ["attributes.`Run Name`", *view["selectedColumns"]]
    assert set(view["columnWidths"]) == set(view["columnOrder"])
    ft_tags = {t["key"]: t["value"] for t in ft["data"]["tags"]}
    assert ft_tags["harness.verdict"] == "inconclusive"
    assert ft_tags["mlflow.runType"] == "evaluation"  # the UI expands the parent on first visit
    assert ft_tags["harness.variant"] == "ft-mini"
    for col in view["selectedColumns"]:  # every readable column is filled on a variant row
        kind, key = col.split(".", 1)
        if kind == "tags" and key != "`harness.verdict`":
            assert key.strip("`") in ft_tags, col
    m = summary["variants"]["ft-mini"]["metrics"]["macro_f1"]
    pct = [f"{m[k] * 100:.1f}%" for k in ("value", "ci_low", "ci_high")]
    assert ft_tags["macro_f1"] == f"{pct[0]} [{pct[1]}, {pct[2]}]"
    # The parent row: the verdicts, the sentence as its description, the total cost.
    parent = by_name["20261125-132501-ab12"]
    p_tags = {t["key"]: t["value"] for t in parent["data"]["tags"]}
    assert p_tags["harness.verdict"] == "ft-mini: inconclusive"
    # The decision first, then the hypotheses, then the verdict sentences.
    assert p_tags["mlflow.note.content"] == (
        "- **undecided** on `ft-mini` vs `zero-shot` (inconclusive): no paired macro-F1 "
        "difference; next: ~420 test examples would decide.\n\n"
        "Hypotheses (pre-registered):\n"
        "- `ft-mini` vs `zero-shot`: superiority on `macro_f1`, margin 5.0 pts, confidence 95%\n\n"
        "- **ft-mini** (inconclusive): ft-mini: +3.1 pts macro-F1 vs zero-shot; "
        "target +5.0 not shown — inconclusive."
    )
    p_metrics = {m["key"]: m["value"] for m in parent["data"]["metrics"]}
    assert p_metrics["cost_usd"] == pytest.approx(
        sum(v["cost_usd"] for v in summary["variants"].values())
    )
    # The sunk-cost ledger as a table artifact of the parent: one row per iteration.
    files = {f["path"] for f in _rest(url, "artifacts/list", run_id=pid).get("files", [])}
    assert "ledger.json" in files
    with urllib.request.urlopen(
        f"{url}/get-artifact?path=ledger.json&run_uuid={pid}", timeout=30
    ) as r:
        ledger = json.loads(r.read())
    rows = [dict(zip(ledger["columns"], row, strict=True)) for row in ledger["data"]]
    assert rows == [
        {
            "variant": "ft-mini",
            "hypothesis": "ft-mini",
            "iteration": 1,
            "run_id": "20261120-101500-cd34",
            "model": "openai/ft:gpt-4o-mini:acme::x0",
            "training_usd": 8.0,
            "metric": "macro_f1",
            "baseline": summary["baseline"],
            "delta": -0.012,
            "delta_ci_low": -0.09,
            "delta_ci_high": 0.066,
            "verdict": "fail",
        },
        {
            "variant": "ft-mini",
            "hypothesis": "ft-mini",
            "iteration": 2,
            "run_id": "20261125-132501-ab12",
            "model": "openai/ft:gpt-4o-mini:acme::x1",
            "training_usd": 12.0,
            "metric": "macro_f1",
            "baseline": summary["baseline"],
            "delta": 0.031,
            "delta_ci_low": -0.049,
            "delta_ci_high": 0.111,
            "verdict": "inconclusive",
        },
    ]
    # `harness ui SUITE` on a server prints the real link (no literal <id>).
    out = CliRunner().invoke(main, ["ui", "quickstart", "--tracking-uri", url, "--no-browser"])
    assert (out.exit_code, out.output) == (0, f"quickstart: {link}\n")
    out = CliRunner().invoke(main, ["ui", "nope", "--tracking-uri", url, "--no-browser"])
    assert out.exit_code == 2
    assert out.output == (
        f"Error: no experiment 'nope' in {url} yet — run the suite first (`harness run`)\n"
    )


# ---------------------------------------------------------------- the whole `harness run`


def test_harness_run_logs_and_reports(openai_server, fake_key, tmp_path, store):
    from conftest import write_suite
    from mlflow import MlflowClient

    from harness.run.pipeline import run_suite

    server = openai_server()
    suite = write_suite(tmp_path, server.url)
    uri = store(tmp_path)
    outcome = run_suite(suite, runs_dir=tmp_path / "runs", workers=0, tracking_uri=uri)
    assert (outcome.run_dir / "report.md").exists() and (outcome.run_dir / "report.html").exists()
    (entry,) = history("test-suite", uri)
    assert entry["run_id"] == outcome.run_id
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("test-suite")
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{entry['mlflow_run_id']}'"
    )
    assert sorted(c.info.run_name for c in children) == ["few-shot", "zero-shot"]
    zs = next(c for c in children if c.info.run_name == "zero-shot")
    path = client.download_artifacts(zs.info.run_id, TABLE_FILE, str(tmp_path))
    table = pd.read_json(path, orient="split")
    # Inputs and expected labels re-read from the suite's data through the run's suite.yaml.
    assert len(table) == 12
    assert table["input"].str.contains(r"\(#\d+\)").all()
    assert set(table["expected"]) == {"card_arrival", "lost_or_stolen_card", "exchange_rate"}
    assert (table["score"] == (table["expected"] == table["parsed"]).astype(float)).all()


def test_harness_run_survives_unreachable_store(openai_server, fake_key, tmp_path, capsys):
    from conftest import write_suite

    from harness.run.pipeline import run_suite

    server = openai_server()
    suite = write_suite(tmp_path, server.url)
    bad = f"http://127.0.0.1:{_free_port()}"
    outcome = run_suite(suite, runs_dir=tmp_path / "runs", workers=0, tracking_uri=bad)
    assert (outcome.run_dir / "summary.json").exists() and (outcome.run_dir / "report.md").exists()
    err = capsys.readouterr().err
    assert f"Warning: MLflow logging skipped: tracking server {bad} is unreachable" in err
    assert f"`harness report {outcome.run_dir} --log`" in err


# ---------------------------------------------------------------- judge, retrieval, quiet logs


@pytest.fixture(scope="module")
def judged_logged(tmp_path_factory, store):
    """A real `harness run` with judge + preference (tests/judged_run.py), logged to a fresh store."""
    from judged_run import judged_run
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("judged")
    uri = store(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", "sk-test-FAKE-0123456789abcdef")
        outcome = judged_run(root, uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("gen-suite")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    return outcome.run_dir, client, runs


def test_judge_metrics_parent_and_children(judged_logged):
    from sklearn.metrics import cohen_kappa_score

    run_dir, client, runs = judged_logged
    summary = json.loads((run_dir / "summary.json").read_text())
    lines = [
        json.loads(x)
        for f in sorted((run_dir / "results").glob("*.judge.jsonl"))
        for x in f.read_text().splitlines()
    ]
    ok = [x for x in lines if x["error"] is None]
    parent = runs[summary["run_id"]].data.metrics
    # The judge's cost from its own tokens at its pricing ($1 / $2 per 1M), apart from the variants'.
    cost = sum(x["tokens_in"] for x in ok) * 1e-6 + sum(x["tokens_out"] for x in ok) * 2e-6
    assert parent["judge_cost_usd"] == pytest.approx(cost)
    assert parent["judge_calls"] == len(lines) == 36
    assert parent["judge_errors"] == 2 and parent["judge_cached_calls"] == 0
    assert parent["judge_tokens_in"] == sum(x["tokens_in"] for x in lines)
    variants_cost = sum(summary["variants"][v]["cost_usd"] for v in ("base", "cand"))
    assert parent["total_cost_usd"] == pytest.approx(variants_cost)  # judge cost not in it

    cand = runs["cand"].data.metrics
    assert cand["judge"] == 1.0 and cand["preference"] == 1.0
    assert cand["preference_wins"] == 6 and cand["preference_losses"] == 0
    assert cand["position_bias"] == 0.0
    assert cand["judge_unscored"] == 1 and cand["judge_agreement_second_model_pairs"] == 5
    assert "judge_agreement_second_model" not in cand  # both judges pass all 5: kappa undefined
    base_lines = [
        json.loads(x) for x in (run_dir / "results" / "base.judge.jsonl").read_text().splitlines()
    ]
    prim = {x["id"]: x["score"] for x in base_lines if x["model"] == "openai/judge"}
    sec = {x["id"]: x["score"] for x in base_lines if x["model"] == "openai/judge2"}
    ids = sorted(prim)
    kappa = cohen_kappa_score([prim[i] for i in ids], [sec[i] for i in ids])
    base = runs["base"].data.metrics
    assert base["judge_agreement_second_model"] == pytest.approx(kappa)
    assert base["judge_agreement"] == pytest.approx(kappa)
    assert base["judge"] == 0.0 and base["judge_agreement_second_model_pairs"] == 6


def test_judge_scores_and_reasons_in_the_example_table(judged_logged, tmp_path):
    run_dir, client, runs = judged_logged
    assert set(runs) == {
        json.loads((run_dir / "summary.json").read_text())["run_id"],
        "base",
        "cand",
    }
    path = client.download_artifacts(runs["cand"].info.run_id, TABLE_FILE, str(tmp_path))
    table = pd.read_json(path, orient="split", dtype=False).set_index("id")
    assert len(table) == 6
    ex0, ex2 = table.loc["ex0"], table.loc["ex2"]
    assert ex0["score.judge"] == 1.0 and ex0["score.preference"] == 1.0
    assert json.loads(ex0["judge_samples"]) == [1] and json.loads(ex0["judge_second"]) == [1]
    assert ex0["judge_reason"] == "verdict on cand reply for"
    assert ex0["preference_reason"] == "variant shown first: preferred; shown second: preferred"
    # ex2: both judges answered something that is not JSON: unscored, with the reason.
    assert json.loads(ex2["judge_samples"]) == [] and ex2["judge_errors"] == 2
    assert ex2["judge_reason"].startswith("judge error: judge_invalid")
    assert pd.isna(ex2["score.judge"])


def test_retrieval_metrics_and_retrieved_passages(tmp_path, store):
    from mlflow import MlflowClient

    run_dir = make_run_dir(tmp_path)
    add_retrieval(run_dir, gold_missed={"value": None, "n": 0})
    uri = store(tmp_path)
    log_run(run_dir, uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("quickstart")
    ft = client.search_runs(
        [exp.experiment_id], filter_string="tags.`harness.variant` = 'ft-mini'"
    )[0]
    m = ft.data.metrics
    assert m["recall_at_k"] == 0.75 and m["mrr"] == pytest.approx(0.6071428571)
    assert m["retrieval_k"] == 2 and m["retrieval_n_gold"] == 28
    assert m["accuracy_gold_retrieved"] == pytest.approx(0.9047619) and m["n_gold_retrieved"] == 21
    assert "accuracy_gold_missed" not in m and m["n_gold_missed"] == 0  # no example: no value
    table = pd.read_json(
        client.download_artifacts(ft.info.run_id, TABLE_FILE, str(tmp_path)), orient="split"
    )
    assert json.loads(table["retrieved_ids"][0]) == ["docs/a.md", "docs/b.md"]
    assert json.loads(table["retrieved_scores"][0]) == [7.25, 3.5]
    assert json.loads(table["retrieved_sources"][0]) == ["docs/a.md:1", "docs/b.md:3"]
    zs = client.search_runs([exp.experiment_id], filter_string="attributes.run_name = 'zero-shot'")
    assert "recall_at_k" not in zs[0].data.metrics


def test_mlflow_info_lines_are_quiet_warnings_are_not(tmp_path, capsys, monkeypatch):
    import logging

    from mlflow.utils.logging_utils import _configure_mlflow_loggers

    from harness.track import store

    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    _configure_mlflow_loggers("mlflow")  # as a fresh `import mlflow` leaves them: mlflow at INFO
    assert logging.getLogger("mlflow").level == logging.INFO
    client = store.tracking_client(_sqlite(tmp_path))  # a new store: MLflow creates its tables
    client.search_experiments()
    logging.getLogger("mlflow.store.db.utils").warning("a real warning")
    logging.getLogger("alembic.runtime.migration").error("a real error")
    err = capsys.readouterr().err
    assert "Creating initial MLflow database tables" not in err
    assert "Updating database tables" not in err and " INFO " not in err
    assert "WARNING mlflow.store.db.utils: a real warning" in err
    assert "ERROR alembic.runtime.migration: a real error" in err
    # A user who asks for MLflow's INFO lines keeps them.
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "INFO")
    monkeypatch.setattr(logging.getLogger("mlflow"), "level", logging.INFO)
    store.tracking_client(_sqlite(tmp_path))
    assert logging.getLogger("mlflow").level == logging.INFO


def test_harness_run_prints_the_suite_link_of_a_server(server, openai_server, fake_key, tmp_path):
    from conftest import write_suite

    url, _ = server
    api = openai_server()
    suite = write_suite(tmp_path, api.url)
    result = CliRunner().invoke(
        main,
        ["run", str(suite), "--runs-dir", str(tmp_path / "runs"), "--workers", "0",
         "--tracking-uri", url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    link = experiment_link(url, "test-suite")
    assert link.startswith(f"{url}/#/experiments/") and "<id>" not in link
    assert result.output.splitlines()[-1] == f"MLflow: {link}"
