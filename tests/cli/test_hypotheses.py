"""Several hypotheses in one suite, and the decision in dollars, at the level a user meets them
(`harness run` / `harness plan` against the test server): the CLINC-style question — gpt-4o vs
few-shot mini vs fine-tuned mini — as one suite, three hypotheses and one run.

Hand computation (the test server counts whitespace-separated words as tokens): every prompt of
the zero-shot variants is system (5) + "Question: ..." (7, 7 or 8 for the three intents) tokens
and every answer 2 tokens, as in tests/cli/test_money.py.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from clinc_style import HYPOTHESES, VARIANTS, N, scripted
from conftest import intent_answer, write_suite

from harness.cli import main


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and any relative output stay in the test's tmp_path."""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _suite(tmp_path, server, extra=HYPOTHESES):
    return write_suite(tmp_path, server.url, n=N, variants=VARIANTS, extra=extra)


def _usd(x: float) -> str:
    return ("−" if x < 0 else "+") + f"${abs(x):,.0f}"


def _monthly(v: dict, wrong: int, n: int, training: float) -> float:
    cpr = v["cost_usd"] / v["n_calls"]
    return 2_000_000 * (cpr + wrong / n * 0.40) + training / 12


def test_three_hypotheses_one_run_in_dollars(openai_server, fake_key, tmp_path):
    server = openai_server(scripted)
    suite = _suite(tmp_path, server)
    runs = tmp_path / "runs"
    result = invoke("run", suite, "--runs-dir", runs, "--json")
    s = json.loads(result.stdout)
    assert server.requests == 3 * N
    v = s["variants"]
    # Misses by construction: few-shot mini every 4th (6 of 24), ft-mini every 6th (4 of 24).
    value = s["value"]["variants"]
    expected = {
        "gpt-4o": _monthly(v["gpt-4o"], 0, N, 0),
        "few-shot-mini": _monthly(v["few-shot-mini"], 6, N, 0),
        "ft-mini": _monthly(v["ft-mini"], 4, N, 1200),
    }
    for name, month in expected.items():
        assert value[name]["monthly_cost_usd"] == pytest.approx(month)
    assert value["ft-mini"]["errors_usd"] == pytest.approx(2_000_000 * 4 / 24 * 0.40)
    assert value["ft-mini"]["training_usd"] == pytest.approx(100.0)
    assert value["few-shot-mini"]["error_rate"] == pytest.approx(0.25)
    # The third hypothesis: ft-mini vs few-shot mini in dollars, paired over the same examples.
    net = s["comparisons"]["ft-mini vs few-shot-mini"]
    assert net["value"] == pytest.approx(expected["few-shot-mini"] - expected["ft-mini"])
    assert net["api_saving_usd"] == pytest.approx(
        2e6 * (v["few-shot-mini"]["cost_usd"] - v["ft-mini"]["cost_usd"]) / N
    )
    assert net["extra_errors_usd"] == pytest.approx(2e6 * (4 - 6) / 24 * 0.40)
    assert net["ci_low"] <= net["value"] <= net["ci_high"]

    verdicts = s["guard"]["verdicts"]
    assert list(verdicts) == ["ft-mini vs gpt-4o", "few-shot-mini", "ft-mini vs few-shot-mini"]
    for _key, verdict in verdicts.items():
        assert verdict["holm"]["m"] == 3
        assert "(Holm across 3 hypotheses: tested at one-sided α = " in verdict["sentence"]
    d = verdicts["ft-mini vs few-shot-mini"]["delta"]
    assert verdicts["ft-mini vs few-shot-mini"]["sentence"] == (
        "ft-mini vs few-shot-mini: costs $6.10/month more in API calls and saves $66,667 "
        f"[{_usd(-d['extra_errors_ci_high'])}, {_usd(-d['extra_errors_ci_low'])}]/month in errors "
        f"avoided, +$100/month amortised training; net {_usd(d['value'])} "
        f"[{_usd(d['ci_low'])}, {_usd(d['ci_high'])}]/month (95% paired CI); target +$0.00 "
        "not shown — inconclusive, a larger test set is needed to decide (Holm across 3 "
        "hypotheses: tested at one-sided α = 0.008333, p = "
        f"{verdicts['ft-mini vs few-shot-mini']['holm']['p_value']:.3g}). 1 iteration, $1,200 spent."
    )
    # One ledger per lineage: ft-mini is named twice and folded once.
    assert set(s["ledger_entry"]["variants"]) == {"gpt-4o", "few-shot-mini", "ft-mini"}
    assert s["ledger_entry"]["variants"]["ft-mini"]["metric"] == "accuracy"
    # The terminal shows the dollar sentences.
    shown = invoke("run", suite, "--runs-dir", runs).output
    assert "value: ft-mini vs gpt-4o: saves $" in shown
    assert "/month in extra errors" in shown
    report = next(runs.glob("test-suite/*/report.md")).read_text(encoding="utf-8")
    assert "## Value per month" in report


def test_correction_none_and_a_family_that_disagrees(openai_server, fake_key, tmp_path):
    server = openai_server(scripted)
    none = HYPOTHESES.replace("margin: 0.30}", "margin: 0.30, correction: none}").replace(
        "margin: 0}", "margin: 0, correction: none}"
    )
    s = json.loads(invoke("run", _suite(tmp_path, server, none), "--json").stdout)
    for verdict in s["guard"]["verdicts"].values():
        assert verdict["holm"]["correction"] == "none"
        assert verdict["holm"]["alpha"] == pytest.approx(0.025)
        assert "no correction across 3 hypotheses (correction: none)" in verdict["sentence"]
    mixed = HYPOTHESES.replace("margin: 0}", "margin: 0, correction: none}")
    result = invoke("run", _suite(tmp_path, server, mixed))
    assert result.exit_code == 2
    assert "guard[2].correction" in result.output
    assert "`correction` applies to the whole family of hypotheses" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "guard:\n  - {candidate: nope, metric: accuracy, margin: 0.1}\n",
            "unknown variant 'nope'",
        ),
        (
            "guard:\n  - {metric: accuracy, margin: 0.1}\n",
            "a hypothesis in a list names its `candidate`",
        ),
        (
            "guard:\n  - {candidate: ft-mini, baseline: ft-mini, metric: accuracy, margin: 0.1}\n",
            "the baseline cannot be guarded against itself",
        ),
        (
            "guard: {candidate: ft-mini, metric: net_monthly_value, margin: 0}\n",
            "net_monthly_value needs `value: {error_cost_usd: ...}`",
        ),
        (
            "volume: {monthly_requests: 10}\nvalue: {error_cost_usd: 1, per_class: {nope: 2}}\n"
            "labels: [card_arrival, lost_or_stolen_card, exchange_rate]\n",
            "unknown label 'nope'",
        ),
    ],
)
def test_bad_hypotheses_exit_2_with_the_key(openai_server, fake_key, tmp_path, extra, message):
    server = openai_server(scripted)
    suite = _suite(tmp_path, server, extra)
    if "labels: [" in extra:  # replace from-data with the list
        suite.write_text(suite.read_text().replace("labels: from-data\n", ""))
    result = invoke("run", suite)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert server.requests == 0


SEQUENTIAL = """
baseline: gpt-4o
guard:
  - {candidate: few-shot-mini, metric: accuracy, test: superiority, margin: 0.05, sequential: {looks: 4}}
  - {candidate: ft-mini, metric: accuracy, test: superiority, margin: 0.05, sequential: {looks: 4}}
"""


def bad_baseline(messages, body) -> str:
    """gpt-4o is right on every 3rd question only; the mini models always: a large effect."""
    right = intent_answer(messages, body)
    i = int(messages[-1]["content"].rsplit("(#", 1)[-1].split(")")[0])
    if body["model"] == "fake-4o" and i % 3:
        return json.dumps({"intent": "exchange_rate" if "card" in right else "card_arrival"})
    return right


def test_sequential_stops_calling_once_every_hypothesis_is_decided(
    openai_server, fake_key, tmp_path
):
    n = 160
    server = openai_server(bad_baseline)
    suite = write_suite(tmp_path, server.url, n=n, variants=VARIANTS, extra=SEQUENTIAL)
    result = invoke("run", suite, "--json")
    s = json.loads(result.stdout)
    look = s["sequential"]
    assert look["stopped_early"] and look["look"] < 4
    assert look["sizes"] == [40, 80, 120, 160]
    # Calls stop: the server saw only the looks that ran, three variants each.
    assert server.requests == 3 * look["sizes"][look["look"] - 1] == 3 * s["n_examples"]
    assert look["calls_skipped"] == 3 * (n - s["n_examples"])
    assert result.exit_code == 0
    for v in s["guard"]["verdicts"].values():
        assert v["verdict"] == "pass"
        assert f"Sequential: decided at look {look['look']} of 4" in v["sentence"]
    shown = invoke("run", suite).output  # cached now: the same looks, the same stop
    assert f"sequential: every hypothesis decided at look {look['look']} of 4" in shown


def one_in_five_wrong(messages, body) -> str:
    """Each model misses a different fifth of the questions: Δ = 0 with discordant pairs."""
    right = intent_answer(messages, body)
    i = int(messages[-1]["content"].rsplit("(#", 1)[-1].split(")")[0])
    if i % 5 == {"fake-4o": 0, "fake-mini": 1, "fake-ft": 2}[body["model"]]:
        return json.dumps({"intent": "exchange_rate" if "card" in right else "card_arrival"})
    return right


def test_sequential_without_an_effect_runs_every_look(openai_server, fake_key, tmp_path):
    server = openai_server(one_in_five_wrong)  # Δ = 0: never a pass, too noisy for an early fail
    suite = write_suite(tmp_path, server.url, n=40, variants=VARIANTS, extra=SEQUENTIAL)
    s = json.loads(invoke("run", suite, "--json").stdout)
    assert s["sequential"]["look"] == 4 and not s["sequential"]["stopped_early"]
    assert server.requests == 3 * 40
    assert s["sequential"]["alpha"] == pytest.approx(s["sequential"]["levels"][-1])


def test_variant_without_a_hypothesis_baseline_exits_2(openai_server, fake_key, tmp_path):
    """The third hypothesis compares ft-mini with few-shot-mini: selecting ft-mini and gpt-4o
    only would spend money on a run that cannot judge it."""
    server = openai_server(scripted)
    suite = _suite(tmp_path, server)
    result = invoke("run", suite, "--variant", "ft-mini", "--variant", "gpt-4o")
    assert result.exit_code == 2
    assert "--variant ft-mini: the guard judges it against the baseline 'few-shot-mini'" in (
        result.output
    )
    assert server.requests == 0
