"""What a manager reads in MLflow after the flagship suite's run (tests/support/clinc_surfaces.py:
three variants, a guard list on macro_f1 and on dollars, `value:`), read back with MlflowClient:
the readable figures in % and $ beside the raw metrics, spent beside would-cost, the decision
lines opening the parent's description, report.html on the parent run, and the per-example table
MLflow's evaluation view compares run by run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from clinc_surfaces import run, scripted, write

from harness.track.store import TABLE_FILE, VIEW_TAG


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _pts(x: float, unit: bool = False) -> str:
    return f"{x * 100:+.1f}".replace("-", "−") + (" pts" if unit else "")


@pytest.fixture(scope="module")
def flagship(tmp_path_factory, openai_server_module):
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("flagship")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    server = openai_server_module(scripted)
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    try:
        out = run(root, write(root, server.url))
    finally:
        mp.undo()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(out["summary"]["suite"])
    runs = client.search_runs([exp.experiment_id])
    by_role = {}
    for r in runs:
        by_role.setdefault(r.data.tags["harness.role"], []).append(r)
    children = {r.data.tags["harness.variant"]: r for r in by_role["variant"]}
    return out, client, exp, by_role["suite"][0], children, root


@pytest.fixture(scope="module")
def openai_server_module():
    from openai_server import FakeOpenAI

    servers = []

    def start(answer):
        servers.append(FakeOpenAI(answer).start())
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def test_readable_figures_beside_the_raw_metrics(flagship):
    out, _, _, _, children, _ = flagship
    s = out["summary"]
    ft = children["ft-mini"]
    v = s["variants"]["ft-mini"]
    m, d = v["metrics"]["macro_f1"], v["delta"]["macro_f1"]
    tags, metrics = ft.data.tags, ft.data.metrics
    assert tags["macro_f1"] == f"{_pct(m['value'])} [{_pct(m['ci_low'])}, {_pct(m['ci_high'])}]"
    assert tags["Δ macro_f1 vs gpt-4o"] == (
        f"{_pts(d['value'], unit=True)} [{_pts(d['ci_low'])}, {_pts(d['ci_high'])}]"
    )
    assert metrics["macro_f1"] == pytest.approx(m["value"])  # the number stays for sorting
    net = s["value"]["vs_baseline"]["ft-mini"]
    assert metrics["net_monthly_value"] == pytest.approx(net["value"])
    assert metrics["net_monthly_value_ci_low"] == pytest.approx(net["ci_low"])
    text = tags["net/month vs gpt-4o"]
    sign = lambda x: "+" if x >= 0 else "−"  # noqa: E731
    assert text == "{}${:,.0f}/month [{}${:,.0f}, {}${:,.0f}]".format(
        *(f(net[k]) for k in ("value", "ci_low", "ci_high") for f in (sign, abs))
    )
    # Spent beside would-cost, as numbers and as dollars.
    assert metrics["spent_usd"] == pytest.approx(v["spent_usd"])
    assert metrics["cost_usd"] == pytest.approx(v["cost_usd"])
    assert tags["spent"].startswith("$") and tags["would cost"].startswith("$")
    # The baseline has no Δ and no dollars against itself.
    base = children["gpt-4o"].data.tags
    assert "macro_f1" in base and "Δ macro_f1 vs gpt-4o" not in base
    assert "net/month vs gpt-4o" not in base
    # A variant under two hypotheses shows both verdicts, by metric; one under one its own.
    assert tags["harness.verdict"] == " · ".join(
        f"{m}: {s['guard']['verdicts'][f'ft-mini vs gpt-4o ({m})']['verdict']}"
        for m in ("macro_f1", "net_monthly_value")
    )
    few = s["guard"]["verdicts"]["few-shot-mini"]["verdict"]
    assert children["few-shot-mini"].data.tags["harness.verdict"] == few
    for t in (*tags.values(), *base.values()):
        assert "None" not in t


def test_first_view_opens_on_the_guard_metric_readable(flagship):
    _, _, exp, _, children, _ = flagship
    view = json.loads(exp.tags[VIEW_TAG])
    cols = view["selectedColumns"]
    assert cols[:7] == [
        "tags.`harness.verdict`",
        "tags.`macro_f1`",
        "tags.`Δ macro_f1 vs gpt-4o`",
        "tags.`net/month vs gpt-4o`",
        "tags.`spent`",
        "tags.`would cost`",
        "params.`model`",
    ]
    assert "metrics.`accuracy`" not in cols  # every hypothesis is on macro_f1
    assert view["columnWidths"]["tags.`net/month vs gpt-4o`"] >= 250
    for col in cols[1:6]:
        assert col.split("`")[1] in children["ft-mini"].data.tags


def test_parent_run_opens_with_the_decision_and_shows_report_html(flagship, tmp_path):
    out, client, _, parent, _, _ = flagship
    from harness.decide.sections import decision_lines
    from harness.results import as_summary

    note = parent.data.tags["mlflow.note.content"]
    lines = decision_lines(as_summary(out["summary"]))
    assert len(lines) == 3 and note.startswith("\n".join(lines))
    assert note.splitlines()[0].startswith("- **hold `ft-mini`** — no worse than `gpt-4o`")
    files = {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert {"report.html", "report.md", "summary.json", "ledger.json"} <= files
    html = client.download_artifacts(parent.info.run_id, "report.html", str(tmp_path))
    assert Path(html).read_text(encoding="utf-8") == out["report.html"]
    total = sum(v["spent_usd"] for v in out["summary"]["variants"].values())
    assert parent.data.metrics["spent_usd"] == pytest.approx(total)
    assert parent.data.tags["spent"].startswith("$")


def test_per_example_table_compares_answers_run_by_run(flagship, tmp_path):
    out, client, _, _, children, root = flagship
    tables = {}
    for name in ("gpt-4o", "ft-mini"):
        r = children[name]
        assert json.loads(r.data.tags["mlflow.loggedArtifacts"]) == [
            {"path": TABLE_FILE, "type": "table"}
        ]
        path = client.download_artifacts(r.info.run_id, TABLE_FILE, str(tmp_path / name))
        tables[name] = pd.read_json(path, orient="split").set_index("id")
    base, ft = tables["gpt-4o"], tables["ft-mini"]
    assert list(base.index) == list(ft.index)  # one row per example, same examples
    assert (base["input"] == ft["input"]).all() and (base["expected"] == ft["expected"]).all()
    # scripted: gpt-4o is always right; the fine-tuned mini misses every 6th question.
    assert base["correct"].all()
    records = [json.loads(x) for x in (out["run_dir"] / "results" / "ft-mini.jsonl").open()]
    wrong = {r["id"] for r in records if r["scores"]["correct"] == 0}
    assert set(ft.index[~ft["correct"].astype(bool)]) == wrong and wrong
    for i in wrong:
        assert ft.loc[i, "parsed"] != ft.loc[i, "expected"]
        assert ft.loc[i, "output"] == f"✗ {ft.loc[i, 'parsed']}"
    right = next(i for i in ft.index if i not in wrong)
    assert ft.loc[right, "output"] == f"✓ {ft.loc[right, 'expected']}"
    # The evaluation view groups by the first column and compares the second, run by run.
    assert list(ft.columns[:2]) == ["input", "output"] and ft.index.name == "id"
    raw = {r["id"]: r["output"] for r in records}
    assert all(ft.loc[i, "raw_output"] == raw[i] for i in ft.index)  # the model's own text
