"""Every surface a person reads, on the flagship suite's shape (`suites/clinc-banking.yaml`: a
`guard:` list on macro_f1 and in dollars, `value:`), run for real against the test server:
the terminal, summary.json, report.md/html, the PR comment, the step summary, JUnit and what
MLflow's first view shows."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from clinc_surfaces import SINGLE_GUARD, N, run, scripted, write
from conftest import FAKE_KEY
from openai_server import FakeOpenAI

from harness.rundir.reader import load_run
from harness.stats.numbers import money
from harness.stats.summary import primary_metric
from harness.track.fields import headline_metrics, parent_fields


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and any relative output stay in the test's tmp_path."""


@pytest.fixture(scope="module")
def flagship(tmp_path_factory):
    """Two runs of the flagship shape (the second has a history), read by several tests (a
    run takes seconds of CPU)."""
    root = tmp_path_factory.mktemp("flagship")
    with pytest.MonkeyPatch.context() as mp, FakeOpenAI(scripted) as server:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
        mp.setenv("OPENAI_API_KEY", FAKE_KEY)
        suite = write(root, server.url)
        first = run(root, suite)
        out = run(root, suite)  # the same suite again: a lineage with a history
        out["first"] = first
        if os.environ.get("HARNESS_DUMP_SURFACES"):  # for a person to read them
            for k in ("terminal", "report.md", "comment", "step"):
                print(f"===== {k}\n{out[k]}")
        return out


def test_list_guard_reads_each_hypothesis_everywhere(flagship):
    hyps = [
        "`ft-mini` vs `gpt-4o`: non-inferiority on `macro_f1`, margin 50.0 pts, confidence 95%",
        "`few-shot-mini` vs `gpt-4o`: non-inferiority on `macro_f1`, margin 50.0 pts, "
        "confidence 95%",
        "`ft-mini` vs `gpt-4o`: superiority on `net_monthly_value`, margin $0.00/month, "
        "confidence 95%",
    ]
    for surface in ("report.md", "report.html", "comment", "step"):
        text = flagship[surface]
        assert "None" not in text, surface
        if surface == "report.html":
            text = text.replace("<code>", "`").replace("</code>", "`")
        for h in hyps:
            assert h in text, (surface, h)
    s = flagship["summary"]
    assert s["schema_version"] == 2
    assert [h["key"] for h in s["hypotheses"]] == [
        "ft-mini vs gpt-4o (macro_f1)",
        "few-shot-mini",
        "ft-mini vs gpt-4o (net_monthly_value)",
    ]


def test_decision_lines_open_every_surface(flagship):
    s = flagship["summary"]
    v = s["guard"]["verdicts"]["few-shot-mini"]
    d = v["delta"]
    assert v["verdict"] == "pass"  # −24.2 pts [−43.7, −8.9]: within 50 pts
    net = s["value"]["vs_baseline"]["few-shot-mini"]
    usd = _usd_ci(net)
    line = (
        "- **switch to `few-shot-mini`** — no worse than `gpt-4o` (pass): macro-F1 "
        f"{_pts(d['value'])} pts [{_pts(d['ci_low'])}, {_pts(d['ci_high'])}], lower bound "
        f"needs ≥ −50.0 pts; {usd} net"
    )
    # 6 misses of 24 at $0.40 each outweigh the cheaper calls: the line says so in words.
    assert net["value"] < 0
    line += " — it passes on quality but costs more a month once errors are priced."
    md = flagship["report.md"]
    assert md.index("## Decision") < md.index("**Hypotheses**") < md.index("## Verdicts")
    assert line in md
    for surface in ("comment", "step"):
        text = flagship[surface]
        assert line in text, surface
        assert text.index(line) < text.index("| hypothesis | verdict |")


def test_pr_comment_rows_per_hypothesis_with_the_candidates_costs(flagship):
    s, comment = flagship["summary"], flagship["comment"]
    rows = {r.split(" | ")[0][2:]: r for r in comment.splitlines() if r.startswith("| ")}
    ft = rows["ft-mini vs gpt-4o (macro_f1)"]
    cpr = s["variants"]["ft-mini"]["cost_usd"] / N
    base = s["variants"]["gpt-4o"]["cost_usd"] / N
    assert f"| {money(cpr)} ({cpr / base:.2f}× {money(base)}) |" in ft
    # With `value:` the break-even counts the cost of errors: ft-mini (4 misses of 24) costs
    # more per request than the always-right gpt-4o, so there is none, as the value line says.
    assert s["break_even"] == {}
    assert "| none: no saving per request once errors are priced |" in ft
    assert "after 0 requests" not in comment and "0.0 months" not in comment
    few = rows["few-shot-mini"]
    assert "none needed: no training cost" in few


def test_mlflow_first_view_and_plot_use_the_guard_metric(flagship):
    s = flagship["summary"]
    assert headline_metrics(s)[:4] == [
        "macro_f1",
        "macro_f1_ci_low",
        "macro_f1_ci_high",
        "delta_macro_f1",
    ]
    assert "accuracy" not in headline_metrics(s)
    assert primary_metric(s) == "macro_f1"  # the report's cost/quality plot's axis
    run_files = load_run(flagship["run_dir"])
    params, metrics, tags = parent_fields(run_files)
    assert params["hypothesis.few-shot-mini.metric"] == "macro_f1"
    assert "ft-mini.delta_macro_f1" in metrics and "ft-mini.delta_accuracy" not in metrics
    note = tags["mlflow.note.content"]
    assert note.startswith("- **switch to `few-shot-mini`**") or note.startswith("- **")
    assert "None" not in note
    assert "macro-F1" in note.splitlines()[0]


def test_iteration_history_is_per_hypothesis_and_in_its_unit(flagship):
    md = flagship["report.md"]
    section = md[md.index("## Iteration history") :]
    s = flagship["summary"]
    money_v = s["guard"]["verdicts"]["ft-mini vs gpt-4o (net_monthly_value)"]
    head = "**ft-mini vs gpt-4o (net\\_monthly\\_value)** (net\\_monthly\\_value vs gpt-4o)"
    assert head in section
    dollars = section[section.index(head) :].split("\n\n")[1]
    # Both runs' rows of the dollar hypothesis are in dollars, with its own verdict.
    assert dollars.count("/month") == 2, dollars
    assert "pts" not in dollars
    assert dollars.count(f"| {money_v['verdict']} |") == 2
    few = section[section.index("**few-shot-mini**") :].split("\n\n")[1]
    assert few.count("pts") == 2 and few.count("| pass |") == 2
    # The first run's Δ of each hypothesis is its own, not the lineage's first hypothesis's.
    ft = section[section.index("**ft-mini vs gpt-4o (macro") :].split("\n\n")[1]
    d = s["guard"]["verdicts"]["ft-mini vs gpt-4o (macro_f1)"]["delta"]["value"]
    assert ft.count(f"{_pts(d)} pts") == 2


def test_all_failed_variant_is_not_valued_and_its_reasons_are_printed(
    openai_server, fake_key, tmp_path
):
    variants = """
  - name: gpt-4o
    model: openai/fake-4o
    pricing: {input_per_1m: 2.5, output_per_1m: 10}
  - name: o-mini
    model: openai/fake-o
    system: 'O-SERIES. Answer as JSON {"intent": ...}.'
    pricing: {input_per_1m: 1.1, output_per_1m: 4.4}
"""
    extra = """
baseline: gpt-4o
volume: {monthly_requests: 2000000}
value: {error_cost_usd: 0.40, amortise_months: 12}
guard: {metric: macro_f1, test: non-inferiority, margin: 0.05, applies_to: [o-mini]}
"""
    server = openai_server(scripted, statuses={"O-SERIES": 400})
    out = run(tmp_path, write(tmp_path, server.url, extra=extra, variants=variants), code=3)
    s = out["summary"]
    assert s["value"]["variants"]["o-mini"] is None
    assert s["value"]["vs_baseline"]["o-mini"] is None
    assert "24 of 24 calls failed" in s["value"]["not_valued"]["o-mini"]
    # A run that could not be judged is no iteration of the lineage.
    assert s["ledger_entry"]["variants"]["o-mini"]["judged"] is False
    assert s["guard"]["verdicts"]["o-mini"]["ledger"]["iterations"] == 0
    assert "value: o-mini vs" not in out["terminal"]
    assert "saves" not in out["report.md"].split("## Value per month")[1].split("##")[0]
    # The provider's own message reaches the terminal, not only `bad_request ×24`.
    assert "bad_request ×24; the provider said: “" in out["terminal"]
    assert "forced status 400" in out["terminal"]
    # No answered call, no cost figure: "–" wherever a cost per request / per 1k is read, never
    # $0 (the cheapest variant, a saving).
    o = s["variants"]["o-mini"]
    assert o["cost_per_request"] is None and o["metrics"]["cost_per_1k"]["value"] is None
    comparison = out["report.md"].split("## Comparison")[1].split("\n## ")[0]
    row = next(line for line in comparison.splitlines() if line.startswith("| **o-mini**"))
    header = next(line for line in comparison.splitlines() if line.startswith("| variant"))
    cells = dict(zip(_cells(header), _cells(row), strict=True))
    assert cells["cost_per_1k"] == "–" and cells["cost / 1k req"] == "–", row
    assert cells["would cost (USD)"] == "–", row
    assert cells["spent (USD)"] == "$0"  # what the run spent on it: nothing, truly
    pr_row = next(line for line in out["comment"].splitlines() if line.startswith("| o-mini |"))
    assert _cells(pr_row)[3] == "–", pr_row
    assert "0.00×" not in out["comment"] and "0.00×" not in out["report.md"]
    # The terminal's table says the same: nothing spent, no would-cost figure — not "unknown"
    # (which means "no price": o-mini has one).
    term = next(line for line in out["terminal"].splitlines() if line.startswith("│ o-mini"))
    assert [c.strip() for c in term.strip("│").split("│")][-2:] == ["$0", "–"], term


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_mlflow_ledger_json_has_each_hypothesis_own_rows(flagship, tmp_path):
    """ledger.json on the parent run: one row per hypothesis and counted run, with that
    hypothesis's own metric, Δ and verdict — not its lineage's (ft-mini has two)."""
    from mlflow import MlflowClient

    s, first = flagship["summary"], flagship["first"]["summary"]
    root = flagship["run_dir"].parents[2]
    client = MlflowClient(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(s["suite"])
    parent = client.search_runs(
        [exp.experiment_id],
        "tags.`harness.role` = 'suite'",
        order_by=["attributes.start_time DESC"],
    )[0]
    path = client.download_artifacts(parent.info.run_id, "ledger.json", str(tmp_path))
    table = json.loads(Path(path).read_text(encoding="utf-8"))
    rows = [dict(zip(table["columns"], r, strict=True)) for r in table["data"]]
    verdicts = s["guard"]["verdicts"]
    assert {r["hypothesis"] for r in rows} == set(verdicts)
    for key, v in verdicts.items():
        own = [r for r in rows if r["hypothesis"] == key]
        assert [r["run_id"] for r in own] == [first["run_id"], s["run_id"]], key
        assert {r["metric"] for r in own} == {v["hypothesis"]["metric"]}, own
        assert {r["variant"] for r in own} == {v["hypothesis"]["candidate"]}
        then = first["guard"]["verdicts"][key]
        assert [r["verdict"] for r in own] == [then["verdict"], v["verdict"]], own
        assert own[0]["delta"] == pytest.approx(then["delta"]["value"], abs=1e-6)
        assert own[1]["delta"] == pytest.approx(v["delta"]["value"])
    # The two hypotheses on ft-mini: one in points of macro-F1, one in dollars a month.
    ft = {r["metric"] for r in rows if r["variant"] == "ft-mini"}
    assert ft == {"macro_f1", "net_monthly_value"}


def test_records_carry_input_and_expected(flagship):
    lines = (flagship["run_dir"] / "results" / "gpt-4o.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["input"].startswith("When will my card arrive?") or "(#" in first["input"]
    assert first["expected"] in {"card_arrival", "lost_or_stolen_card", "exchange_rate"}
    assert all({"id", "input", "expected"} <= set(json.loads(x)) for x in lines)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    with pytest.MonkeyPatch.context() as mp, FakeOpenAI(scripted) as server:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
        mp.setenv("OPENAI_API_KEY", FAKE_KEY)
        return run(root, write(root, server.url, extra=SINGLE_GUARD))


def test_single_guard_reads_as_a_list_of_one(single):
    out = single
    assert [h["key"] for h in out["summary"]["hypotheses"]] == ["ft-mini"]
    line = "- `ft-mini` vs `gpt-4o`: non-inferiority on `macro_f1`, margin 30.0 pts"
    for surface in ("report.md", "comment", "step"):
        assert line in out[surface] and "None" not in out[surface], surface


def test_fingerprints_differ_between_suites(flagship, single):
    fa, fb = (re.search(r"fingerprint `(\w+)`", x["comment"]).group(1) for x in (flagship, single))
    assert fa != fb and len(fa) == len(fb) == 12


def _pts(x: float) -> str:
    return f"{x * 100:+.1f}".replace("-", "−")


def _usd_ci(d: dict) -> str:
    from harness.stats.numbers import dollars

    return (
        f"{dollars(d['value'], True)}/month "
        f"[{dollars(d['ci_low'], True)}, {dollars(d['ci_high'], True)}]"
    )
