"""CI outputs: JSON, JUnit XML parsed back, GitHub step summary appended."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from guard_fixtures import decided as decide_summary
from guard_fixtures import make_suite, make_summary, past_run

from harness.report.ci import append_step_summary, markdown, write_junit
from harness.report.value_section import value_lines


def decided(tmp_path, delta, history=(), **kw):
    suite = make_suite(tmp_path, **kw)
    return decide_summary(suite, make_summary(delta), list(history))


def test_junit_failure_carries_sentence(tmp_path):
    s = decided(tmp_path, (0.01, -0.01, 0.03))
    path = write_junit(s, tmp_path / "out" / "junit.xml")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "1" and root.get("failures") == "1"
    ts = root.find("testsuite")
    assert ts.get("name") == "guarded"
    case = ts.find("testcase")
    assert case.get("name") == "ft" and case.get("classname") == "harness.guarded"
    failure = case.find("failure")
    assert failure.get("type") == "fail"
    assert failure.get("message") == "fail: " + s["guard"]["verdicts"]["ft"]["sentence"]


def test_junit_pass_and_skipped_inconclusive(tmp_path):
    s = decided(tmp_path, (0.08, 0.06, 0.10))
    case = ET.fromstring(ET.tostring(_root(s, tmp_path))).find("testsuite/testcase")
    assert case.find("failure") is None and case.find("error") is None
    s["guard"]["verdicts"]["ft"]["verdict"] = "inconclusive"
    s["guard"]["allow_inconclusive"] = True
    root = _root(s, tmp_path)
    assert root.find("testsuite/testcase/skipped") is not None and root.get("skipped") == "1"


def test_junit_provider_errors_are_errors(tmp_path):
    suite = make_suite(tmp_path)
    s = decide_summary(suite, make_summary(base_errors=20), [])
    root = _root(s, tmp_path)
    assert (
        root.get("errors") == "1"
        and root.find("testsuite/testcase/error").get("type") == "provider_errors"
    )


def test_junit_moved_goalposts_pass_is_failure(tmp_path):
    s = decided(tmp_path, (0.03, 0.025, 0.035), [past_run("r1")], guard={"margin": 0.02})
    failure = _root(s, tmp_path).find("testsuite/testcase/failure")
    assert failure.get("type") == "moved_goalposts"
    # A flagged pass reads as flagged in every display, never as a plain pass.
    assert failure.get("message").startswith("pass (flagged: goalposts moved): ft: ")
    text = markdown(s)
    assert "| ft | 🚩 pass (flagged: goalposts moved) | +3.0 pts [+2.5, +3.5] |" in text
    assert "✅" not in text


def _root(s, tmp_path):
    return ET.parse(write_junit(s, tmp_path / "j.xml")).getroot()


def test_step_summary_appended_only_when_set(tmp_path):
    s = decided(tmp_path, (0.01, -0.01, 0.03))
    target = tmp_path / "step.md"
    target.write_text("earlier step\n")
    assert append_step_summary(s, env={}) is None
    append_step_summary(s, env={"GITHUB_STEP_SUMMARY": str(target)})
    text = target.read_text()
    assert text.startswith(
        "earlier step\n### harness: guarded (run run-now) — exit code 1 — the guard flagged a "
        "variant (fail, inconclusive, abandon or moved goalposts)\n"
    )
    assert "| ft | ❌ fail | +1.0 pts [−1.0, +3.0] |" in text
    assert (
        "- **ft**: ft: +1.0 pts macro-F1 [−1.0, +3.0] vs base; target +5.0 ruled out — fail."
        in text
    )


def test_markdown_without_guard():
    assert "No guard declared" in markdown(
        {"schema_version": 2, "suite": "x", "run_id": "r", "exit_code": 0, "guard": None}
    )


def test_abandoned_lineage_says_why_beside_its_dollars(tmp_path):
    """A lineage abandoned at its iteration limit, though its month in dollars is positive:
    the value line and the decision line say both, in words."""
    history = [past_run(f"r{i}", model=f"openai/ft:m{i}") for i in range(3)]
    s = decided(tmp_path, (0.01, -0.01, 0.03), history)
    assert s["guard"]["verdicts"]["ft"]["verdict"] == "abandon"
    s["value"] = {
        "error_cost_usd": 0.4,
        "per_class": None,
        "amortise_months": 12,
        "monthly_requests": 1_000_000,
        "variants": {},
        "vs_baseline": {
            "ft": {
                "value": 3081.0,
                "ci_low": 1200.0,
                "ci_high": 5000.0,
                "confidence": 0.95,
                "api_saving_usd": 3500.0,
                "extra_errors_usd": 419.0,
                "extra_errors_ci_low": 100.0,
                "extra_errors_ci_high": 700.0,
                "extra_training_usd": 0.0,
            }
        },
    }
    why = " — it would save money, but the verdict is abandon (4 of 3 iterations)"
    assert value_lines(s)[-2].endswith(
        "net +$3,081 \\[+$1,200, +$5,000\\]/month (95% paired CI)" + why
    )
    text = markdown(s)
    assert (
        "- **stop `ft`** — lineage abandoned (4 of 3 iterations) (abandon): macro-F1 +1.0 pts "
        "[−1.0, +3.0], lower bound needs ≥ +5.0 pts; +$3,081/month [+$1,200, +$5,000] net"
        + why
        + ".\n"
    ) in text
