"""End-to-end guard scenarios: harness.run.pipeline.run_suite against the scripted OpenAI test server.

The server answers each question right or wrong by a fixed rule per model (question #i is right
when (37·i mod 100)/100 < the model's accuracy), so the gaps between variants are known and the
paired differences are exact: a variant's right answers include the baseline's.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import LABELS, intent_answer, write_suite

from harness.run.pipeline import run_suite

ACCURACY = {"fake-base": 0.5}


def scripted(accuracy: dict[str, float]):
    def answer(messages, body) -> str:
        right = intent_answer(messages, body)
        i = int(re.search(r"#(\d+)", messages[-1]["content"]).group(1))
        p = next(v for k, v in accuracy.items() if k in body["model"])
        if (37 * i % 100) / 100 < p:
            return right
        wrong = LABELS[(LABELS.index(json.loads(right)["intent"]) + 1) % len(LABELS)]
        return json.dumps({"intent": wrong})

    return answer


VARIANTS = """
  - name: zero-shot
    model: openai/fake-base
    pricing: {{input_per_1m: {base_price}, output_per_1m: {base_price}}}
  - name: ft
    kind: fine-tuned
    model: openai/{ft_model}
    base_model: openai/fake-small
    training: {{cost_usd: {training}}}
    pricing: {{input_per_1m: {ft_price}, output_per_1m: {ft_price}}}
"""

GUARD = """
baseline: zero-shot
guard:
  metric: accuracy
  test: {test}
  margin: {margin}
  max_iterations: 3
  budget_usd: 1000
volume: {{monthly_requests: 100000}}
"""


@pytest.fixture
def scenario(tmp_path, openai_server, fake_key, request):
    """run(ft_accuracy, ...) -> summary of one `harness run` of a guarded two-variant suite."""
    accuracy = dict(ACCURACY)
    server = openai_server(scripted(accuracy))
    name = re.sub(r"[^A-Za-z0-9]", "-", request.node.name)[:60]
    tracking = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"

    def run(
        ft_acc,
        *,
        n=60,
        ft_model="fake-ft-v1",
        margin=0.05,
        test="superiority",
        training=40.0,
        base_price=10.0,
        ft_price=1.0,
        **opts,
    ):
        accuracy[ft_model] = ft_acc
        variants = VARIANTS.format(
            ft_model=ft_model, training=training, base_price=base_price, ft_price=ft_price
        )
        extra = GUARD.format(test=test, margin=margin)
        path = write_suite(tmp_path, server.url, n=n, variants=variants, extra=extra)
        path.write_text(path.read_text().replace("name: test-suite", f"name: {name}"))
        outcome = run_suite(
            path,
            runs_dir=tmp_path / "runs",
            tracking_uri=tracking,
            show_progress=False,
            workers=0,
            **opts,
        )
        summary = json.loads((outcome.run_dir / "summary.json").read_text())
        assert summary["exit_code"] == outcome.exit_code
        summary["_tracking"] = tracking
        summary["_run_dir"] = outcome.run_dir
        return summary

    return run


def tracking_uri(summary):
    return summary["_tracking"]


def verdict(summary):
    return summary["guard"]["verdicts"]["ft"]


def test_clear_pass_exit_0(scenario):
    s = scenario(0.9)
    assert verdict(s)["verdict"] == "pass" and s["exit_code"] == 0
    assert verdict(s)["sentence"].startswith("ft: +")


def test_clear_miss_exit_1(scenario):
    s = scenario(0.5)  # same answers as the baseline: Δ = 0 exactly
    v = verdict(s)
    assert v["verdict"] == "fail" and s["exit_code"] == 1
    assert "target +5.0 ruled out — fail" in v["sentence"]


def test_small_set_inconclusive_with_required_n(scenario):
    s = scenario(0.7, n=12)
    v = verdict(s)
    assert v["verdict"] == "inconclusive" and s["exit_code"] == 1
    assert v["required_n"] > 12
    assert f"~{v['required_n']:,} test examples would decide" in v["sentence"]
    assert scenario(0.7, n=12, allow_inconclusive=True)["exit_code"] == 0


def test_four_iterations_abandon_with_summed_spend(scenario):
    summaries = [scenario(0.5, ft_model=f"fake-ft-v{i}", training=25.0) for i in range(1, 5)]
    v = verdict(summaries[-1])
    assert v["verdict"] == "abandon" and summaries[-1]["exit_code"] == 1
    led = v["ledger"]
    assert led["iterations"] == 4
    assert led["training_usd"] == pytest.approx(100.0)
    eval_spend = sum(s["variants"]["ft"]["cost_usd"] for s in summaries)
    assert eval_spend > 0 and led["eval_usd"] == pytest.approx(eval_spend, rel=1e-6)
    assert "without a pass" in v["sentence"] and "sunk" in v["sentence"]
    assert [verdict(s)["verdict"] for s in summaries[:2]] == ["fail", "fail"]
    # The earlier runs reached the ledger through MLflow (not only the local runs/ fallback).
    from harness.track.history import history

    assert len(history(summaries[-1]["suite"], tracking_uri(summaries[-1]))) == 4


def test_margin_lowered_after_fail_is_flagged(scenario):
    first = scenario(0.6, margin=0.2)
    assert verdict(first)["verdict"] == "fail"
    s = scenario(0.6, margin=0.02)
    moved = s["guard"]["moved_goalposts"]
    assert moved["changes"] == ["margin: 0.20 → 0.02"]
    assert "moved_goalposts" in verdict(s)["flags"] and s["exit_code"] == 1


def test_non_inferiority_cheap_model_passes_with_cost_ratio_and_break_even(scenario):
    s = scenario(0.5, test="non-inferiority", margin=0.05, base_price=10.0, ft_price=1.0)
    v = verdict(s)
    assert v["verdict"] == "pass" and s["exit_code"] == 0
    assert v["cost_ratio"] == pytest.approx(0.1, rel=1e-6)
    be = s["break_even"]["ft"]
    base_cpr = s["variants"]["zero-shot"]["cost_usd"] / s["variants"]["zero-shot"]["n_calls"]
    ft_cpr = s["variants"]["ft"]["cost_usd"] / s["variants"]["ft"]["n_calls"]
    assert be["break_even_requests"] == pytest.approx(40.0 / (base_cpr - ft_cpr))
    assert be["payback_months"] == pytest.approx(be["break_even_requests"] / 100_000)
    assert "at 0.10× the baseline's cost per request" in v["sentence"]
    # The report shows the verdict with its cost ratio, the break-even table and plot.
    report = (s["_run_dir"] / "report.md").read_text()
    assert "at 0.10× the baseline's cost per request" in report and "## Break-even" in report
    assert (s["_run_dir"] / "plots" / "break_even.png").exists()


def superiority_suite(tmp_path, url):
    """The guarded suite of the tests that drive the server themselves: 30 questions, +5 pts."""
    variants = VARIANTS.format(ft_model="fake-ft", training=10.0, base_price=10.0, ft_price=1.0)
    extra = GUARD.format(test="superiority", margin=0.05)
    return write_suite(tmp_path, url, n=30, variants=variants, extra=extra)


def test_cli_run_writes_junit_and_step_summary(tmp_path, openai_server, fake_key, monkeypatch):
    import xml.etree.ElementTree as ET

    from click.testing import CliRunner

    from harness.cli import main

    # ft right only where the baseline is: 18 of 30 pairs favour the baseline, none ft.
    server = openai_server(scripted({"fake-base": 0.9, "fake-ft": 0.3}))
    path = superiority_suite(tmp_path, server.url)
    step = tmp_path / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    junit = tmp_path / "out" / "junit.xml"
    args = ["run", str(path), "--runs-dir", str(tmp_path / "runs"), "--junit", str(junit)]
    args += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert (
        "FAIL: ft: −60.0 pts accuracy [−74.3, −37.4] vs zero-shot; target +5.0 ruled out — fail."
        in res.output
    )
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure.get("type") == "fail" and failure.get("message").startswith(
        "fail: ft: −60.0 pts accuracy"  # the verdict label first, then the sentence
    )
    assert "| ft | ❌ fail |" in step.read_text()


def test_provider_errors_above_max_error_rate_exit_3(tmp_path, openai_server, fake_key):
    # Two of 30 questions always get HTTP 400: 6.7% errors > max_error_rate 2%.
    server = openai_server(
        scripted({"fake-base": 0.5, "fake-ft": 0.9}), statuses={"(#4)": 400, "(#7)": 400}
    )
    path = superiority_suite(tmp_path, server.url)
    tracking = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    outcome = run_suite(
        path, runs_dir=tmp_path / "runs", tracking_uri=tracking, show_progress=False, workers=0
    )
    s = json.loads((outcome.run_dir / "summary.json").read_text())
    assert outcome.exit_code == 3 and s["exit_code"] == 3
    v = verdict(s)
    assert "error_rate" in v["flags"]
    assert v["sentence"].startswith(
        "ft: cannot be judged — 6.7% provider errors on zero-shot (max 2.0%)"
    )
