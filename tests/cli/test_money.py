"""Money at the level a user meets it (`harness run` against the test server): what the cache
may answer, what counts as spent, and costs priced from token counts with the current pricing.

Hand computation for the suites below (the test server counts whitespace-separated words):
system 'Answer as JSON {"intent": ...}.' is 5 tokens; the questions "Question: When will my card
arrive? (#0)", "Question: I lost my card, help (#1)" and "Question: What exchange rate do you
use? (#2)" are 7, 7 and 8, so the prompts are 12, 12 and 13 tokens (37 in all); every answer
'{"intent": "..."}' is 2 tokens (6 in all).
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import intent_answer, write_suite

from harness.cli import main


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and any relative output stay in the test's tmp_path."""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run_json(suite, runs, *args) -> dict:
    result = invoke("run", suite, "--runs-dir", runs, "--json", *args)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


# Per 1M tokens: the baseline at $1,000 in / $2,000 out, ft at a tenth of that.
PRICED = """
  - name: zero-shot
    model: openai/fake-base
    pricing: {input_per_1m: 1000, output_per_1m: 2000}
  - name: ft
    kind: fine-tuned
    model: openai/fake-ft
    base_model: openai/fake-small
    training: {cost_usd: 1.0}
    pricing: {input_per_1m: 100, output_per_1m: 200}
"""
UNPRICED = """
  - name: zero-shot
    model: openai/fake-base
  - name: ft
    kind: fine-tuned
    model: openai/fake-ft
    base_model: openai/fake-small
    training: {cost_usd: 1.0}
"""
GUARD = """
baseline: zero-shot
guard: {metric: accuracy, test: non-inferiority, margin: 0.05}
volume: {monthly_requests: 1000}
"""
BASE_USD = (37 * 1000 + 6 * 2000) / 1e6  # 0.049
FT_USD = (37 * 100 + 6 * 200) / 1e6  # 0.0049


def test_another_server_is_another_cache_entry(openai_server, fake_key, tmp_path):
    a, b = openai_server(intent_answer), openai_server(intent_answer)
    runs = tmp_path / "runs"
    first = run_json(write_suite(tmp_path, a.url, n=6), runs)
    assert a.requests == 12 and first["variants"]["zero-shot"]["cached_calls"] == 0
    # Every variant now points at server B: nothing may come from A's answers.
    second = run_json(write_suite(tmp_path, b.url, n=6), runs)
    assert b.requests == 12 and a.requests == 12
    assert [v["cached_calls"] for v in second["variants"].values()] == [0, 0]
    # Back on A: its answers are still cached.
    third = run_json(write_suite(tmp_path, a.url, n=6), runs)
    assert a.requests == 12 and [v["cached_calls"] for v in third["variants"].values()] == [6, 6]


def test_cached_rerun_spends_nothing_but_still_costs_per_request(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3, variants=PRICED, extra=GUARD)
    runs = tmp_path / "runs"
    first = run_json(suite, runs)
    base, ft = first["variants"]["zero-shot"], first["variants"]["ft"]
    assert base["spent_usd"] == pytest.approx(BASE_USD) == base["cost_usd"]
    assert ft["spent_usd"] == pytest.approx(FT_USD) == ft["cost_usd"]
    assert first["guard"]["verdicts"]["ft"]["ledger"]["eval_usd"] == pytest.approx(FT_USD)

    result = invoke("run", suite, "--runs-dir", runs)
    assert server.requests == 6  # everything came from the cache
    row = next(line for line in result.output.splitlines() if line.startswith("│ zero-shot"))
    assert [c.strip() for c in row.split("│")[-3:-1]] == ["$0", "$0.049"]  # spent, would cost
    again = run_json(suite, runs)
    base, ft = again["variants"]["zero-shot"], again["variants"]["ft"]
    assert (base["spent_usd"], ft["spent_usd"]) == (0.0, 0.0)
    assert base["cost_usd"] == pytest.approx(BASE_USD) and base["cached_calls"] == 3
    # Cost ratio and break-even still use what a request costs.
    v = again["guard"]["verdicts"]["ft"]
    assert v["cost_ratio"] == pytest.approx(0.1)
    assert again["break_even"]["ft"]["break_even_requests"] == pytest.approx(
        1.0 / ((BASE_USD - FT_USD) / 3)
    )
    # Three runs, one of them paid for ft's calls: the ledger counts that one only.
    assert v["ledger"]["runs"] == 3
    assert v["ledger"]["eval_usd"] == pytest.approx(FT_USD)
    assert v["ledger"]["spent_usd"] == pytest.approx(1.0 + FT_USD)


def test_pricing_added_later_prices_cached_answers(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    runs = tmp_path / "runs"
    first = run_json(write_suite(tmp_path, server.url, n=3, variants=UNPRICED, extra=GUARD), runs)
    assert first["variants"]["zero-shot"]["cost_usd"] is None  # no price anywhere: unknown
    assert first["break_even"] == {}
    # The warning said to add `pricing:`; the cached answers are priced from their tokens.
    again = run_json(write_suite(tmp_path, server.url, n=3, variants=PRICED, extra=GUARD), runs)
    assert server.requests == 6
    base = again["variants"]["zero-shot"]
    assert base["cached_calls"] == 3 and base["unpriced_calls"] == 0
    assert base["cost_usd"] == pytest.approx(BASE_USD) and base["spent_usd"] == 0.0
    assert again["variants"]["ft"]["cost_usd"] == pytest.approx(FT_USD)
    assert again["break_even"]["ft"]["break_even_requests"] == pytest.approx(
        1.0 / ((BASE_USD - FT_USD) / 3)
    )


def test_partial_costs_are_reported_with_their_count(openai_server, fake_key, tmp_path):
    # The provider reports no usage for the "lost card" question: that call has no price.
    server = openai_server(intent_answer, no_usage=("lost",))
    suite = write_suite(tmp_path, server.url, n=3, variants=PRICED, extra=GUARD)
    result = invoke("run", suite, "--runs-dir", tmp_path / "runs")
    s = json.loads(next((tmp_path / "runs" / "test-suite").glob("*/summary.json")).read_text())
    base, ft = s["variants"]["zero-shot"], s["variants"]["ft"]
    priced_base = ((12 + 13) * 1000 + 4 * 2000) / 1e6  # the two calls with usage
    priced_ft = ((12 + 13) * 100 + 4 * 200) / 1e6
    assert base["unpriced_calls"] == 1 and base["cost_usd"] == pytest.approx(priced_base)
    assert base["cost_per_request"] == pytest.approx(priced_base / 2)
    assert s["break_even"]["ft"]["break_even_requests"] == pytest.approx(
        1.0 / (priced_base / 2 - priced_ft / 2)
    )
    note = (
        "cost partial: 1 of 3 calls have no price — cost, cost ratio and break-even use the "
        "2 priced calls"
    )
    assert any(note in n for n in ft["notes"])
    assert "$0.033 (1 unpriced)" in result.output and note in result.output
    report = next((tmp_path / "runs" / "test-suite").glob("*/report.md")).read_text()
    assert "(partial: 1 unpriced)" in report and note in report


def test_no_cache_neither_reads_nor_writes_the_cache(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3, variants=PRICED, extra=GUARD)
    runs = tmp_path / "runs"
    run_json(suite, runs, "--no-cache")
    cache = runs / ".cache.sqlite"
    assert not cache.exists() or _rows(cache) == 0
    run_json(suite, runs)  # fills the cache
    assert _rows(cache) == 6
    s = run_json(suite, runs, "--no-cache")
    assert server.requests == 18 and s["variants"]["ft"]["cached_calls"] == 0
    assert s["variants"]["ft"]["spent_usd"] == pytest.approx(FT_USD)
    assert _rows(cache) == 6


def _rows(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def test_report_reprices_a_summary_written_with_unpriced_answers(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3, variants=PRICED, extra=GUARD)
    run_dir = tmp_path / "runs" / "test-suite" / run_json(suite, tmp_path / "runs")["run_id"]
    # As an older harness wrote it: cached answers without a price blanked the baseline's cost.
    path = run_dir / "summary.json"
    s = json.loads(path.read_text())
    s["variants"]["zero-shot"].update(cost_usd=None, cost_per_request=None)
    s["break_even"] = {}
    path.write_text(json.dumps(s))
    result = invoke("report", run_dir)
    assert result.exit_code == 0, result.output
    report = (run_dir / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| **zero-shot**"))
    assert "$0.049" in row  # 37 tokens in at $1,000/1M + 6 out at $2,000/1M
    be = next(line for line in report.splitlines() if line.startswith("| **ft** | $1.00 |"))
    assert f"{1.0 / ((BASE_USD - FT_USD) / 3):,.0f}" in be  # 68 requests
    assert "costs of zero-shot re-priced from their token counts" in report
