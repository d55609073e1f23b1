"""`harness compare`: paired deltas between two runs recomputed from results/*.jsonl; exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from rundir_fixture import make_run_dir
from scipy.stats import norm

from harness.cli import main
from harness.stats.compare import compare_runs


def _records_accuracy(run_dir, variant):
    from sklearn.metrics import accuracy_score

    from harness.rundir.reader import load_run

    run = load_run(run_dir)
    truth = [run.examples[r["id"]]["expected"] for r in run.records[variant]]
    pred = [r["parsed"] or "\x00" for r in run.records[variant]]
    return accuracy_score(truth, pred)


@pytest.fixture
def runs(tmp_path):
    good = make_run_dir(
        tmp_path, n=60, variants={"zero-shot": 0.5, "ft-mini": 0.95}, run_id="a", seed=1
    )
    same = make_run_dir(
        tmp_path, n=60, variants={"zero-shot": 0.5, "ft-mini": 0.95}, run_id="a2", seed=1
    )
    bad = make_run_dir(
        tmp_path, n=60, variants={"zero-shot": 0.5, "ft-mini": 0.3}, run_id="b", seed=2
    )
    return good, same, bad


def test_regression_detected_paired_and_matches_sklearn(runs):
    good, _, bad = runs
    r = compare_runs(good, bad, B=500)
    ft = r["variants"]["ft-mini"]
    assert ft["paired"] is True and ft["n_common"] == 60
    acc = ft["metrics"]["accuracy"]
    expected = _records_accuracy(bad, "ft-mini") - _records_accuracy(good, "ft-mini")
    assert acc["value"] == pytest.approx(expected)
    assert acc["ci_low"] <= acc["value"] <= acc["ci_high"] < 0
    assert "accuracy" in ft["regressed"] and "macro_f1" in ft["regressed"]
    assert r["exit_code"] == 1
    # The reverse direction is an improvement, not a regression.
    assert compare_runs(bad, good, B=500)["exit_code"] == 0


def test_identical_runs_zero_delta(runs):
    """Identical runs: Δ 0 with an interval that still has width — agreement on n examples
    bounds the difference, it does not make it exactly 0 (Newcombe for accuracy; for macro-F1
    the bootstrap's degenerate floor, the half-width n agreeing 0/1 pairs get)."""
    good, same, _ = runs
    r = compare_runs(good, same, B=200)
    for v in r["variants"].values():
        n = v["n_common"]
        acc = v["metrics"]["accuracy"]
        assert acc["value"] == pytest.approx(0) and acc["interval"] == "newcombe-paired"
        assert acc["ci_low"] < 0 < acc["ci_high"]
        f1 = v["metrics"]["macro_f1"]
        assert f1["value"] == pytest.approx(0) and f1["degenerate"] is True
        half = norm.ppf(0.975) ** 2 / (n + norm.ppf(0.975) ** 2)
        assert (f1["ci_low"], f1["ci_high"]) == pytest.approx((-half, half))
    assert r["exit_code"] == 0


def test_tolerance_absorbs_a_small_drop(runs):
    good, _, bad = runs
    r = compare_runs(good, bad, B=500)
    worst = r["variants"]["ft-mini"]["metrics"]["accuracy"]["ci_high"]
    assert (
        compare_runs(good, bad, tolerance=-worst + 0.01, B=500)["variants"]["ft-mini"]["metrics"][
            "accuracy"
        ]["regressed"]
        is False
    )


def test_unpaired_when_examples_differ(tmp_path):
    a = make_run_dir(tmp_path / "x", n=30, variants={"zero-shot": 0.5, "ft-mini": 0.9}, run_id="a")
    b = make_run_dir(tmp_path / "y", n=45, variants={"zero-shot": 0.5, "ft-mini": 0.9}, run_id="b")
    r = compare_runs(a, b, B=300)
    ft = r["variants"]["ft-mini"]
    assert ft["paired"] is False and ft["n_a"] == 30 and ft["n_b"] == 45
    acc = ft["metrics"]["accuracy"]
    assert acc["ci_low"] < acc["value"] < acc["ci_high"]


def test_cli_exit_codes(runs, tmp_path):
    good, same, bad = runs
    cli = CliRunner()
    res = cli.invoke(main, ["compare", str(good), str(bad)])
    assert res.exit_code == 1, res.output
    assert (
        "REGRESSED" in res.output
        and "regression beyond tolerance 0 — ft-mini: accuracy, macro_f1" in res.output
    )
    res = cli.invoke(main, ["compare", str(good), str(same), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["exit_code"] == 0
    other = make_run_dir(tmp_path / "o", n=10, suite="other-suite", run_id="c")
    res = cli.invoke(main, ["compare", str(good), str(other)])
    assert res.exit_code == 2
    assert (
        "is suite 'quickstart' but" in res.output
        and "compare two runs of the same suite" in res.output
    )
    res = cli.invoke(main, ["compare", str(good), str(tmp_path / "missing")])
    assert res.exit_code == 2 and "run directory not found" in res.output


def test_paired_macro_f1_when_runs_predict_different_classes(runs):
    """A class only one run predicts adds per-class columns; the runs still pair by example."""
    from harness.rundir.reader import load_run
    from harness.score import registry as M
    from harness.score.table import make_table
    from harness.stats import bootstrap as S

    good, _, bad = runs
    path = bad / "results" / "ft-mini.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    answered = next(r for r in recs if r["error"] is None)
    answered["parsed"] = "a_class_nobody_else_predicts"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))

    tables = []
    for run_dir in (good, bad):
        run = load_run(run_dir)
        targets = {k: v["expected"] for k, v in run.examples.items()}
        tables.append(make_table(run.records["ft-mini"], targets, run.labels))
    ra, rb = (M.compute("macro_f1", t) for t in tables)
    assert ra.stats.shape[1] != rb.stats.shape[1]
    ref = S.paired_bootstrap(ra.stats, ra.combine, rb.stats, rb.combine, B=500)

    ft = compare_runs(good, bad, B=500)["variants"]["ft-mini"]
    assert ft["paired"] is True
    row = ft["metrics"]["macro_f1"]
    assert (row["ci_low"], row["ci_high"], row["p_value"]) == pytest.approx(
        (ref["ci_low"], ref["ci_high"], ref["p_value"])
    )


def test_bless_then_compare_uses_the_blessed_run(runs, tmp_path):
    good, same, bad = runs
    cli = CliRunner()
    res = cli.invoke(main, ["compare", str(bad)])
    assert res.exit_code == 2
    assert res.output == (
        f"Error: no blessed run for {bad.parent} — bless one with `harness bless "
        f"{bad.parent}/<run-id>`, or compare two runs: `harness compare RUN_A RUN_B`\n"
    )
    res = cli.invoke(main, ["bless", str(good)])
    assert (res.exit_code, res.output) == (
        0,
        "blessed a of suite quickstart: `harness compare RUN` now compares RUN against it\n",
    )
    entry = json.loads((good.parent / "blessed.json").read_text())
    assert entry["run_dir"] == "a" and entry["suite_hash"] == "0123456789abcdef"
    # One run given: it is B, the blessed run is A — the same result as naming both.
    res = cli.invoke(main, ["compare", str(bad), "--json"])
    assert res.exit_code == 1
    assert res.stderr == "comparing with the blessed run a\n"
    assert json.loads(res.stdout) == compare_runs(good, bad)
    assert "Warning" not in res.stderr  # same suite and data: nothing to warn about


def test_compare_warns_when_the_blessed_run_is_older_than_suite_or_data(runs):
    good, same, _ = runs
    cli = CliRunner()
    assert cli.invoke(main, ["bless", str(good)]).exit_code == 0
    summary = json.loads((same / "summary.json").read_text())
    summary["suite_hash"] = "edited-suite"
    summary["data_hashes"] = {"data/test.csv": "e" * 64}
    (same / "summary.json").write_text(json.dumps(summary))
    res = cli.invoke(main, ["compare", str(same)])
    assert res.exit_code == 0
    assert res.stderr.splitlines()[1] == (
        "Warning: the blessed run a is older than the suite and the data (changed since it "
        "ran) — a difference may come from that change, not the model; bless a newer run "
        "with `harness bless RUN_DIR`"
    )


def test_bless_refuses_smoke_runs_and_missing_runs(runs, tmp_path):
    good, _, _ = runs
    summary = json.loads((good / "summary.json").read_text())
    summary["limit"] = 5
    (good / "summary.json").write_text(json.dumps(summary))
    res = CliRunner().invoke(main, ["bless", str(good)])
    assert res.exit_code == 2 and "is a smoke run (--limit 5)" in res.output
    res = CliRunner().invoke(main, ["bless", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "summary.json not found" in res.output
    assert not (good.parent / "blessed.json").exists()
