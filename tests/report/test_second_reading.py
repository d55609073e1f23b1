"""A second reading of the surfaces: a pass under an amended protocol (#27) is not counted on
JUnit and in MLflow as it is in the decision lines; a run directory without its suite.yaml is
re-rendered, not a traceback; a candidate whose other hypothesis fails is not "switch to"."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from click.testing import CliRunner
from guard_fixtures import decided as decide_summary
from guard_fixtures import make_suite, make_summary
from rundir_fixture import make_run_dir

from harness.cli import main
from harness.decide.sections import decision_lines
from harness.report.ci import write_junit
from harness.results import as_summary
from harness.rundir.reader import load_run
from harness.track.fields import parent_fields


def _amended_pass(tmp_path):
    s = decide_summary(make_suite(tmp_path), make_summary((0.08, 0.06, 0.10)), [])
    v = s["guard"]["verdicts"]["ft"]
    assert v["verdict"] == "pass"
    v["flags"] = ["amended"]
    v["amended"] = True
    s["exit_code"] = 1
    return s


def test_junit_amended_pass_is_a_failure_not_a_pass(tmp_path):
    s = _amended_pass(tmp_path)
    root = ET.parse(write_junit(s, tmp_path / "junit.xml")).getroot()
    failure = root.find("testsuite/testcase/failure")
    assert root.get("failures") == "1"
    assert failure is not None and failure.get("type") == "amended"
    assert failure.get("message").startswith("pass (not counted: amended protocol): ft: ")


def test_mlflow_verdict_tags_and_description_say_not_counted(tmp_path):
    (tmp_path / "s").mkdir()
    verdicts = _amended_pass(tmp_path / "s")["guard"]["verdicts"]
    run = load_run(make_run_dir(tmp_path / "r", verdict="pass"))
    run.summary["guard"]["verdicts"] = verdicts
    _, _, tags = parent_fields(run)
    assert tags["harness.verdict.ft"] == "pass (not counted: amended protocol)"
    assert tags["harness.verdict"] == "ft: pass (not counted: amended protocol)"
    # The ledger reads the raw verdict back (moved goalposts look for a run that did not pass).
    assert json.loads(tags["harness.verdicts"]) == {"ft": "pass"}
    note = tags["mlflow.note.content"]
    assert "**not counted** — `ft` passed under an amended protocol" in note
    assert "- **ft** (pass (not counted: amended protocol)): " in note
    assert "(pass):" not in note


def test_report_of_a_run_without_its_suite_yaml_renders(tmp_path):
    path = make_run_dir(tmp_path)
    (path / "suite.yaml").unlink()
    res = CliRunner().invoke(main, ["report", str(path)])
    assert res.exit_code == 0 and res.exception is None, (res.output, res.exception)
    assert (path / "report.md").exists()


def test_switch_is_not_said_for_a_candidate_whose_other_hypothesis_fails():
    hyp = {"candidate": "ft", "baseline": "base", "confidence": 0.95}
    quality = {**hyp, "key": "q", "metric": "macro_f1", "test": "non-inferiority", "margin": 0.5}
    money = {**hyp, "key": "m", "metric": "net_monthly_value", "test": "superiority", "margin": 0}
    s = as_summary(
        {
            "schema_version": 2,
            "suite": "x",
            "baseline": "base",
            "hypotheses": [quality, money],
            "guard": {
                "verdicts": {
                    "q": {
                        "verdict": "pass",
                        "hypothesis": quality,
                        "delta": {"value": -0.1, "ci_low": -0.2, "ci_high": 0.0, "threshold": -0.5},
                    },
                    "m": {
                        "verdict": "fail",
                        "hypothesis": money,
                        "delta": {
                            "value": -100.0,
                            "ci_low": -200.0,
                            "ci_high": -50.0,
                            "threshold": 0.0,
                        },
                    },
                }
            },
        }
    )
    lines = decision_lines(s)
    assert not any("switch to" in line for line in lines), lines
    assert lines[0].startswith(
        "- **hold `ft`** — no worse than `base` on `macro_f1`, but its `net_monthly_value` "
        "hypothesis fails (pass): "
    ), lines[0]


def test_a_variant_with_no_answered_call_has_no_cost_per_request():
    from harness.decide.costs import cost_per_request
    from harness.report.decision_sections import costs_at_volume

    failed = {"cost_usd": 0.0, "n_calls": 24, "n_errors": 24, "unpriced_calls": 0}
    assert cost_per_request(failed) is None
    s = {
        "baseline": "gpt-4o",
        "variants": {"gpt-4o": {"cost_usd": 0.0012, "n_calls": 24}, "o-mini": failed},
    }
    rows = costs_at_volume(s, 2_000_000)
    assert "| **o-mini** | – | – | – |" in rows, rows


def test_cannot_judge_names_the_candidate():
    h = {
        "candidate": "o-mini",
        "baseline": "gpt-4o",
        "confidence": 0.95,
        "key": "o-mini",
        "metric": "macro_f1",
        "test": "non-inferiority",
        "margin": 0.05,
    }
    s = as_summary(
        {
            "schema_version": 2,
            "suite": "x",
            "baseline": "gpt-4o",
            "hypotheses": [h],
            "guard": {
                "verdicts": {
                    "o-mini": {"verdict": "inconclusive", "hypothesis": h, "flags": ["error_rate"]}
                }
            },
        }
    )
    assert decision_lines(s)[0].startswith(
        "- **cannot judge `o-mini`** — too many provider errors; fix them and rerun "
    ), decision_lines(s)


def test_worst_examples_do_not_deny_the_candidates_misses(tmp_path):
    from harness.report.render import render_report

    run = load_run(make_run_dir(tmp_path, variants={"base": 1.0, "ft": 0.5}))
    md = render_report(run)["md"].read_text()
    assert "No example scored below 1." not in md
    assert "No example of `base` scored below 1." in md


def test_terminal_verdicts_of_one_candidate_say_which_hypothesis(capsys):
    from pathlib import Path

    from harness.report.console import print_summary

    h = {
        "candidate": "o-mini",
        "baseline": "gpt-4o",
        "confidence": 0.95,
        "test": "superiority",
        "margin": 0,
    }
    sentence = "o-mini: cannot be judged — 100.0% provider errors on o-mini (max 2.0%)."
    verdicts = {
        f"o-mini vs gpt-4o ({m})": {
            "verdict": "inconclusive",
            "flags": ["error_rate"],
            "hypothesis": {**h, "metric": m, "key": f"o-mini vs gpt-4o ({m})"},
            "sentence": sentence,
        }
        for m in ("macro_f1", "net_monthly_value")
    }
    s = {
        "schema_version": 2,
        "suite": "x",
        "run_id": "r",
        "baseline": "gpt-4o",
        "variants": {},
        "guard": {"verdicts": verdicts},
    }
    print_summary(s, [], Path("runs/x/r"), notes={})
    text = capsys.readouterr().out
    assert f"INCONCLUSIVE (macro_f1): {sentence}" in text
    assert f"INCONCLUSIVE (net_monthly_value): {sentence}" in text
