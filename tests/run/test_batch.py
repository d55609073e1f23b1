"""`harness run --batch` against the test server's Files and Batch APIs: the same records as live
calls at half the price, resumed by batch id after kill -9, failures counted, wrong providers
refused before anything starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import FAKE_KEY, intent_answer, write_suite

from harness.errors import SuiteError
from harness.run.pipeline import run_suite

PRICED = """
  - name: zero-shot
    pricing: {input_per_1m: 1.0, output_per_1m: 2.0}
  - name: few-shot
    pricing: {input_per_1m: 1.0, output_per_1m: 2.0}
    few_shot: {k: 2, select: random, seed: 1}
    user: |-
      {% for ex in examples %}Q: {{ ex.text }} A: {{ ex.target }}
      {% endfor %}Question: {{ text }}
"""


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and any relative output stay in the test's tmp_path."""


def test_batch_run_equals_live_run_at_half_price(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer, batch_delay=0.2)
    suite = write_suite(tmp_path, server.url, n=12, variants=PRICED)
    live = run_suite(suite, runs_dir=tmp_path / "live", workers=0)
    assert server.requests == 24
    batch = run_suite(suite, runs_dir=tmp_path / "batch", batch=True, batch_poll_s=0.05)
    assert server.requests == 24  # no live call: both variants went in one batch
    assert server.batch_api.created == 1
    state = json.loads((batch.run_dir / "batch.json").read_text())
    assert [b["joined"] for b in state["batches"]] == [True]
    assert FAKE_KEY not in (batch.run_dir / "batch.json").read_text()
    for v in ("zero-shot", "few-shot"):
        by_id = {r["id"]: r for r in live.records[v]}
        recs = batch.records[v]
        assert sorted(r["id"] for r in recs) == sorted(by_id)
        for r in recs:
            assert (r["parsed"], r["scores"], r["tokens_in"], r["tokens_out"]) == (
                by_id[r["id"]]["parsed"],
                by_id[r["id"]]["scores"],
                by_id[r["id"]]["tokens_in"],
                by_id[r["id"]]["tokens_out"],
            )
            assert r["price_factor"] == 0.5 and r["latency_ms"] is None
            assert r["cost_usd"] == pytest.approx(
                0.5 * (r["tokens_in"] * 1.0 + r["tokens_out"] * 2.0) / 1e6
            )
        lv, bv = live.summary["variants"][v], batch.summary["variants"][v]
        assert bv["cost_usd"] == pytest.approx(lv["cost_usd"] / 2)
        assert bv["metrics"] == lv["metrics"]
    # Answers from a batch are cached like live ones: a re-run sends nothing at all.
    again = run_suite(suite, runs_dir=tmp_path / "batch", batch=True, batch_poll_s=0.05)
    assert server.batch_api.created == 1 and again.cache_hits == 24


def test_failed_batch_lines_are_error_records(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer, statuses={"#4)": 400}, batch_delay=0.1)
    suite = write_suite(tmp_path, server.url, n=6)
    out = run_suite(suite, runs_dir=tmp_path / "runs", batch=True, batch_poll_s=0.05)
    errors = [r for r in out.records["zero-shot"] if r["error"]]
    assert len(errors) == 1 and errors[0]["error"].startswith("bad_request: forced 400")
    assert out.summary["variants"]["zero-shot"]["n_errors"] == 1


def test_batch_refuses_a_provider_without_the_openai_batch_api(openai_server, tmp_path):
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3, model="anthropic/claude-3-haiku")
    with pytest.raises(SuiteError, match=r"--batch: variant 'zero-shot' uses anthropic/"):
        run_suite(suite, runs_dir=tmp_path / "runs", batch=True)
    assert not (tmp_path / "runs").exists()


def test_killed_batch_run_resumes_by_batch_id(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer, batch_delay=4.0)
    suite = write_suite(tmp_path, server.url, n=8)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(suite), "--runs-dir", str(runs)]
        + ["--batch", "--batch-poll", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "OPENAI_API_KEY": FAKE_KEY},
    )
    deadline = time.monotonic() + 60
    while not list(runs.glob("*/*/batch.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(runs.glob("*/*/batch.json")), proc.communicate(timeout=5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert server.batch_api.created == 1
    out = run_suite(suite, runs_dir=runs, resume="latest", batch=True, batch_poll_s=0.05)
    assert server.batch_api.created == 1  # polled the same batch, never paid for another
    assert server.requests == 0
    assert len(out.records["zero-shot"]) == 8 and all(
        r["error"] is None for r in out.records["zero-shot"]
    )
    assert out.summary["variants"]["few-shot"]["n_calls"] == 8


def test_a_resumed_batch_run_counts_its_own_answers_at_the_batch_price(
    openai_server, fake_key, tmp_path
):
    """A batch run killed while it wrote the batch's answers (each one is in the cache before
    results/) resumes with the rest from the cache as its own spend: at the half price it paid,
    not the list price."""
    server = openai_server(intent_answer, batch_delay=0.1)
    suite = write_suite(tmp_path, server.url, n=8, variants=PRICED)
    runs = tmp_path / "runs"
    full = run_suite(suite, runs_dir=runs, batch=True, batch_poll_s=0.05)
    spent = {v: full.summary["variants"][v]["spent_usd"] for v in ("zero-shot", "few-shot")}
    # The state a kill halfway through writing the answers leaves: half of them in results/.
    for v in ("zero-shot", "few-shot"):
        path = full.run_dir / "results" / f"{v}.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:4]))
    (full.run_dir / "summary.json").unlink()
    out = run_suite(suite, runs_dir=runs, resume="latest", batch=True, batch_poll_s=0.05)
    assert out.run_dir == full.run_dir and server.batch_api.created == 1
    for v in ("zero-shot", "few-shot"):
        recs = out.records[v]
        assert len(recs) == 8 and not any(r["cached"] for r in recs)
        assert all(r["price_factor"] == 0.5 for r in recs), [r.get("price_factor") for r in recs]
        assert out.summary["variants"][v]["spent_usd"] == pytest.approx(spent[v])
