"""Decision integrity at the CLI (issue 14): the sunk-cost record can't be steered around.

`harness run` against the scripted test server (tests/decide/test_guard_scenarios.py): each
fine-tuning iteration is a new model id, answered by its own accuracy.
"""

from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import write_suite
from test_guard_scenarios import VARIANTS, scripted

from harness.cli import main
from harness.stats.numbers import money

GUARD = """
baseline: zero-shot
guard:
  metric: accuracy
  test: non-inferiority
  margin: {margin}
  max_iterations: 3
volume: {{monthly_requests: 100000}}
"""


def story(tmp_path, openai_server):
    """run(model, margin, *flags) -> (exit code, output, summary) of one `harness run`."""
    accuracy = {"fake-base": 0.5}
    server = openai_server(scripted(accuracy))
    tracking = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"

    def run(model, margin, *flags, acc=0.45, n=60, name="test-suite"):
        accuracy[model] = acc
        variants = VARIANTS.format(ft_model=model, training=40.0, base_price=10.0, ft_price=1.0)
        path = write_suite(
            tmp_path, server.url, n=n, variants=variants, extra=GUARD.format(margin=margin)
        )
        path.write_text(path.read_text().replace("name: test-suite", f"name: {name}"))
        args = ["run", str(path), "--runs-dir", str(tmp_path / "runs"), "--tracking-uri", tracking]
        res = CliRunner().invoke(main, [*args, *flags])
        runs = sorted((tmp_path / "runs" / name).glob("*/summary.json"))
        summary = json.loads(runs[-1].read_text()) if runs else None
        return res.exit_code, res.output, summary

    return run, server


def verdict_line(output):
    return next(
        line
        for line in output.splitlines()
        if line.startswith(("PASS", "FAIL", "INCONCLUSIVE", "ABANDON"))
    )


def test_loosened_margin_pass_never_switches_abandon_off(tmp_path, openai_server, fake_key):
    run, _ = story(tmp_path, openai_server)
    code, out, s = run("fake-ft-v1", 0.03)
    assert code == 1 and verdict_line(out).startswith("INCONCLUSIVE: ft: ")
    code, out, s = run("fake-ft-v2", 0.20)
    assert code == 1
    line = verdict_line(out)
    assert line.startswith(
        "PASS — flagged: goalposts moved (margin 0.03 → 0.20); exit 1: a pass under a hypothesis "
        "weaker than the registered one does not count: ft: "
    )
    assert s["ledger_entry"]["variants"]["ft"]["honest_pass"] is False
    assert "rename" not in out  # no advice to reset the record
    report = (tmp_path / "runs" / "test-suite" / s["run_id"] / "report.md").read_text()
    assert "**This run's hypothesis** (weaker — it does not count for the ledger)" in report
    assert "- **ft — pass (flagged: goalposts moved)**: ft: " in report
    assert "**Hypothesis** (pre-registered)" not in report
    assert (
        "non-inferiority on `accuracy`, margin 0.03, confidence 0.95.\n\n**This run's hypothesis**"
        " (weaker — it does not count for the ledger): non-inferiority on `accuracy`, margin 0.2,"
        " confidence 0.95; changed: margin: 0.03 → 0.20." in report
    )
    code, out, s = run("fake-ft-v3", 0.03)
    assert code == 1 and verdict_line(out) == (
        "ABANDON: ft: −5.0 pts accuracy [−11.1, +1.3] vs zero-shot; no worse than −3.0 not shown "
        "— abandon, at 0.10× the baseline's cost per request: 3 of 3 iterations without a pass; "
        "$120 sunk ($120 training + $0.00258 evaluation), best so far −5.0 pts."
    )
    code, out, s = run("fake-ft-v4", 0.03, acc=0.5)  # even a clean result can't revive it
    v = s["guard"]["verdicts"]["ft"]
    assert code == 1 and v["verdict"] == "abandon" and v["ledger"]["passed_before"] is False
    assert verdict_line(out) == (
        "ABANDON: ft: +0.0 pts accuracy [−3.2, +3.2] vs zero-shot; no worse than −3.0 not shown — "
        "abandon, at 0.10× the baseline's cost per request: 4 of 3 iterations without a pass; "
        f"$160 sunk ($160 training + {money(v['ledger']['eval_usd'])} evaluation), best so far "
        "+0.0 pts."
    )
    assert round(v["ledger"]["eval_usd"], 4) == 0.0034


def test_smoke_run_stays_out_of_the_record(tmp_path, openai_server, fake_key):
    run, _ = story(tmp_path, openai_server)
    code, out, s = run("fake-ft-smoke", 0.20, "--limit", "20", acc=0.9)
    assert s["limit"] == 20 and s["ledger_entry"]["limit"] == 20 and s["n_examples"] == 20
    assert (
        "note: smoke run (--limit 20): a stratified subset of 20 test examples; not counted in the "
        "sunk-cost ledger (no iteration, no training cost, no hypothesis registered, no best so far)"
    ) in out
    assert (
        " Smoke run (--limit 20): not an iteration — no training charged, the hypothesis not "
        "registered, best so far unchanged."
    ) in verdict_line(out)
    # A stratified draw over the whole file, not its first 20 rows.
    records = (tmp_path / "runs" / "test-suite" / s["run_id"] / "results" / "ft.jsonl").read_text()
    questions = [json.loads(line)["id"] for line in records.splitlines()]
    code, out, first = run("fake-ft-v1", 0.03)
    led = first["guard"]["verdicts"]["ft"]["ledger"]
    assert led["iterations"] == 1 and led["models"] == ["openai/fake-ft-v1"]
    assert led["training_usd"] == 40.0 and led["best_delta"] < 0
    all_ids = [
        json.loads(line)["id"]
        for line in (tmp_path / "runs" / "test-suite" / first["run_id"] / "results" / "ft.jsonl")
        .read_text()
        .splitlines()
    ]
    assert set(questions) < set(all_ids) and questions != all_ids[:20]
    # The smoke run's margin 0.20 was never registered: going back to it moves the goalposts.
    code, out, s = run("fake-ft-v2", 0.20)
    assert s["guard"]["moved_goalposts"]["changes"] == ["margin: 0.03 → 0.20"] and code == 1


def test_guarded_variant_without_baseline_is_exit_2_before_any_call(
    tmp_path, openai_server, fake_key
):
    run, server = story(tmp_path, openai_server)
    code, out, s = run("fake-ft-v1", 0.03, "--variant", "ft")
    assert code == 2 and server.requests == 0 and s is None
    assert out == (
        "Error: --variant ft: the guard judges it against the baseline 'zero-shot', which is not "
        "selected — add --variant zero-shot (or run without --variant)\n"
    )


def test_provider_retries_are_counted_and_reported(tmp_path, openai_server, fake_key):
    from conftest import intent_answer

    server = openai_server(intent_answer, rate_429=0.2, rate_500=0.05, retry_after=0.01, seed=3)
    path = write_suite(tmp_path, server.url, n=20)
    args = ["run", str(path), "--runs-dir", str(tmp_path / "runs"), "--workers", "0"]
    res = CliRunner().invoke(main, [*args, "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert res.exit_code == 0, res.output
    (summary_path,) = (tmp_path / "runs" / "test-suite").glob("*/summary.json")
    variants = json.loads(summary_path.read_text())["variants"]
    retried = server.outcomes["429"] + server.outcomes["500"]
    assert retried > 0 and sum(v["retries"] for v in variants.values()) == retried
    for name, v in variants.items():
        if v["retries"]:
            assert (
                f"note: {name}: {v['retried_calls']} calls answered after retries "
                f"({v['retries']} retries of 429 / 5xx / timeouts)"
            ) in res.output


def test_rename_keeps_the_ledger_and_exclusions_are_visible(tmp_path, openai_server, fake_key):
    run, _ = story(tmp_path, openai_server)
    _, _, first = run("fake-ft-v1", 0.03)
    _, out, second = run("fake-ft-v2", 0.03, name="renamed-suite")
    led = second["guard"]["verdicts"]["ft"]["ledger"]
    assert led["iterations"] == 2 and led["models"] == ["openai/fake-ft-v1", "openai/fake-ft-v2"]
    assert first["lineage"] == second["lineage"]
    # MLflow alone (a CI machine without the old runs/) finds it too, under the old name.
    from harness.track.history import history

    tracking = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    past = history("renamed-suite", tracking, first["lineage"])
    assert [(r["run_id"], r["suite"]) for r in past] == [
        (first["run_id"], "test-suite"),
        (second["run_id"], "renamed-suite"),
    ]

    shown = CliRunner().invoke(
        main,
        [
            "ledger",
            str(tmp_path / "suite.yaml"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
        ],
    )
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == (
        f"ledger of renamed-suite (lineage {first['lineage']}: the test data's hash): 2 run(s)"
    )
    assert lines[1] == (
        f"  {first['run_id']}  ft  openai/fake-ft-v1  $40  Δ −5.0 pts  inconclusive "
        "[as suite test-suite]"
    )
    assert lines[2].startswith(f"  {second['run_id']}  ft  openai/fake-ft-v2  $40  Δ −5.0 pts  ")
    assert lines[3].startswith("ft: 2 iteration(s), $80 spent")

    args = ["ledger", "exclude", first["run_id"], "--runs-dir", str(tmp_path / "runs")]
    assert CliRunner().invoke(main, [*args, "--why", " "]).exit_code == 2
    bad = CliRunner().invoke(
        main, ["ledger", "exclude", "nope", "--why", "x", "--runs-dir", str(tmp_path / "runs")]
    )
    assert bad.exit_code == 2 and bad.output == (
        f"Error: no run 'nope' under {tmp_path / 'runs'}/ — `harness ledger SUITE.yaml` lists "
        "the run ids\n"
    )
    done = CliRunner().invoke(main, [*args, "--why", "wrong prompt template"])
    assert done.exit_code == 0, done.output
    _, out, third = run("fake-ft-v3", 0.03, name="renamed-suite")
    v = third["guard"]["verdicts"]["ft"]
    assert v["ledger"]["iterations"] == 3  # v1's iteration and spend stay (issue 27)
    assert [r["model"] for r in v["ledger"]["history"]] == [
        "openai/fake-ft-v2",
        "openai/fake-ft-v3",
    ]
    assert v["ledger"]["training_usd"] == 120.0
    assert (
        f" Run {first['run_id']} excluded from the ledger by hand: wrong prompt template."
        in verdict_line(out)
    )
