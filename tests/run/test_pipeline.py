"""run_suite end to end against the local server: faults, resume after SIGKILL, secrets, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAKE_KEY, intent_answer, write_suite

from harness.errors import SuiteError
from harness.run.pipeline import run_suite


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and any relative output stay in the test's tmp_path."""


def expected_parsed(outcome) -> dict[str, str]:
    return {e.id: e.target for e in outcome.dataset.test}


def test_injected_429_and_500_lose_no_example(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer, rate_429=0.2, rate_500=0.05, retry_after=0.01, seed=3)
    suite = write_suite(tmp_path, server.url, n=40)
    outcome = run_suite(suite, runs_dir=tmp_path / "runs", concurrency=8, workers=0)
    assert server.outcomes["429"] > 0 and server.outcomes["500"] > 0
    for name in ("zero-shot", "few-shot"):
        records = outcome.records[name]
        assert len(records) == 40
        assert {r["id"] for r in records} == {e.id for e in outcome.dataset.test}
        assert all(r["error"] is None for r in records)
        # The deterministic "model" answers right, so every parsed answer is the target.
        truth = expected_parsed(outcome)
        assert all(r["parsed"] == truth[r["id"]] for r in records)
        assert all(r["scores"]["correct"] == 1.0 for r in records)
    assert server.outcomes["ok"] == 80
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["variants"]["zero-shot"]["n_calls"] == 40
    assert summary["variants"]["zero-shot"]["n_errors"] == 0


def test_worker_processes_give_the_same_records(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer, rate_429=0.1, retry_after=0.01, latency=0.01)
    suite = write_suite(tmp_path, server.url, n=30)
    outcome = run_suite(suite, runs_dir=tmp_path / "runs", concurrency=6, workers=2, no_cache=True)
    truth = expected_parsed(outcome)
    for name in ("zero-shot", "few-shot"):
        assert sorted(r["id"] for r in outcome.records[name]) == sorted(truth)
        assert all(
            r["parsed"] == truth[r["id"]] and r["error"] is None for r in outcome.records[name]
        )
    assert outcome.requests == server.requests


def test_cached_rerun_sends_nothing_and_marks_hits(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer, latency=0.02)
    suite = write_suite(tmp_path, server.url, n=10)
    first = run_suite(suite, runs_dir=tmp_path / "runs", workers=0)
    sent = server.requests
    second = run_suite(suite, runs_dir=tmp_path / "runs", workers=0)
    assert server.requests == sent == 20
    assert second.run_id != first.run_id and second.requests == 0
    by_id = {r["id"]: r for r in first.records["zero-shot"]}
    for r in second.records["zero-shot"]:
        assert r["cached"] is True
        assert r["latency_ms"] == by_id[r["id"]]["latency_ms"]
    # So the summary's latency figures describe the model, not the cache.
    first_zs, second_zs = (o.summary["variants"]["zero-shot"] for o in (first, second))
    assert first_zs["latency_p50_ms"] == second_zs["latency_p50_ms"] >= 20
    assert first_zs["latency_p95_ms"] == second_zs["latency_p95_ms"] >= first_zs["latency_p50_ms"]
    assert (first_zs["cached_calls"], second_zs["cached_calls"]) == (0, 10)
    third = run_suite(suite, runs_dir=tmp_path / "runs", workers=0, no_cache=True)
    assert server.requests == 40 and not any(r["cached"] for r in third.records["zero-shot"])


def test_no_api_key_or_auth_header_under_runs(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer, statuses={"#3)": 401})
    suite = write_suite(tmp_path, server.url, n=6)
    run_suite(suite, runs_dir=tmp_path / "runs", workers=0)
    # The key did reach the server, so it was really in play...
    assert any(FAKE_KEY in h.get("Authorization", "") for h in server.headers)
    # ...and appears in no file under runs/ (results, suite.yaml, summary, the sqlite cache).
    files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" for p in files) and any(
        p.name.startswith(".cache") for p in files
    )
    for p in files:
        data = p.read_bytes()
        assert FAKE_KEY.encode() not in data, p
        assert b"Bearer" not in data, p


def test_non_retryable_error_becomes_a_record_without_retry(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer, statuses={"(#4)": 400})
    suite = write_suite(tmp_path, server.url, n=6)
    outcome = run_suite(suite, runs_dir=tmp_path / "runs", workers=0, variants=["zero-shot"])
    bad = [r for r in outcome.records["zero-shot"] if r["error"]]
    assert len(bad) == 1
    assert bad[0]["error"].startswith("bad_request: ") and bad[0]["output"] is None
    assert bad[0]["scores"].get("correct") == 0.0
    assert sum(n for prompt, n in server.prompts.items() if "(#4)" in prompt) == 1
    # 1 of 6 failed: above the default max_error_rate (2%), so the run cannot be judged.
    assert outcome.exit_code == 3
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["variants"]["zero-shot"]["errors_by_reason"] == {"bad_request": 1}


def test_all_calls_failing_exits_3(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer, statuses={"Question": 404})
    suite = write_suite(tmp_path, server.url, n=3)
    outcome = run_suite(suite, runs_dir=tmp_path / "runs", workers=0)
    assert outcome.exit_code == 3


def test_unknown_variant_lists_the_names(tmp_path):
    suite = write_suite(tmp_path, "http://127.0.0.1:9/v1", n=3)
    with pytest.raises(SuiteError) as e:
        run_suite(suite, runs_dir=tmp_path / "runs", variants=["nope"])
    assert str(e.value) == "--variant: unknown variant 'nope' — choose from zero-shot, few-shot"
    assert not (tmp_path / "runs").exists()


def test_missing_credentials_stop_before_any_call(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    suite = write_suite(tmp_path, "http://127.0.0.1:9/v1", n=3)
    text = suite.read_text().replace("  api_base: http://127.0.0.1:9/v1\n", "")
    text = text.replace(
        "  - name: few-shot\n", "  - name: few-shot\n    api_base: http://127.0.0.1:9/v1\n"
    )
    suite.write_text(text)
    with pytest.raises(SuiteError) as e:
        run_suite(suite, runs_dir=tmp_path / "runs", workers=0)
    assert str(e.value) == "zero-shot needs OPENAI_API_KEY — set it, or run with --variant few-shot"


def _cli_run(suite: Path, runs: Path, *options: str) -> list[str]:
    """`harness run` as a separate process, so it can be killed or interrupted."""
    return [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        str(suite),
        "--runs-dir",
        str(runs),
        *options,
    ]


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    from harness._util.jsonl import read_valid_prefix

    return read_valid_prefix(path)[0]  # a torn last line is skipped


def test_sigkill_mid_run_then_resume_repeats_no_completed_call(openai_server, tmp_path):
    server = openai_server(intent_answer, latency=0.15)
    suite = write_suite(tmp_path, server.url, n=60)
    runs = tmp_path / "runs"
    cmd = _cli_run(suite, runs, "--concurrency", "4", "--workers", "2")
    env = dict(os.environ, OPENAI_API_KEY=FAKE_KEY)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    results = None
    while time.time() < deadline:
        found = list(runs.glob("test-suite/*/results/zero-shot.jsonl"))
        if found and len(_lines(found[0])) >= 10:
            results = found[0]
            break
        time.sleep(0.05)
    assert results is not None, proc.stderr.read() if proc.poll() is not None else "no progress"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # orphaned workers notice the dead parent and exit
    settled = server.requests
    time.sleep(0.5)
    assert server.requests == settled, "requests continued after the run was killed"

    run_dir = results.parent.parent
    done_before = {v: _lines(run_dir / "results" / f"{v}.jsonl") for v in ("zero-shot", "few-shot")}
    n_before = sum(len(x) for x in done_before.values())
    assert 10 <= n_before < 120

    os.environ["OPENAI_API_KEY"] = FAKE_KEY
    try:
        outcome = run_suite(suite, runs_dir=runs, resume="latest", workers=0, concurrency=8)
    finally:
        del os.environ["OPENAI_API_KEY"]
    assert outcome.run_id == run_dir.name
    truth = expected_parsed(outcome)
    for v in ("zero-shot", "few-shot"):
        records = outcome.records[v]
        assert sorted(r["id"] for r in records) == sorted(truth)  # complete, no duplicates
        assert all(r["parsed"] == truth[r["id"]] for r in records)
    # Every call completed before the kill was sent exactly once in total.
    prompts_by_variant = {}
    for v, recs in done_before.items():
        for r in recs:
            prompts_by_variant.setdefault(v, set()).add(r["id"])
    from harness.data.dataset import load_dataset
    from harness.run.pipeline import build_jobs
    from harness.suite import load_suite

    s = load_suite(suite)
    for job in build_jobs(s, load_dataset(s), s.variants):
        if job.example.id in prompts_by_variant.get(job.variant, ()):
            text = "\n".join(m["content"] for m in job.spec.messages)
            assert server.prompts[text] == 1, (job.variant, job.example.id)


def test_resume_of_unknown_run_is_exit_2(tmp_path):
    suite = write_suite(tmp_path, "http://127.0.0.1:9/v1", n=3)
    with pytest.raises(SuiteError, match="--resume: no run of suite 'test-suite'"):
        run_suite(suite, runs_dir=tmp_path / "runs", resume="latest")


def test_ctrl_c_stops_cleanly_and_prints_the_resume_command(openai_server, tmp_path):
    server = openai_server(intent_answer, latency=0.2)
    suite = write_suite(tmp_path, server.url, n=60)
    runs = tmp_path / "runs"
    cmd = _cli_run(suite, runs, "--concurrency", "2")
    env = dict(os.environ, OPENAI_API_KEY=FAKE_KEY)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and server.outcomes["ok"] < 6:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    run_id = next(runs.glob("test-suite/*")).name
    assert "Traceback" not in err
    assert f"Resume with: harness run {suite} --resume {run_id} --runs-dir {runs}" in err
    saved = sum(len(_lines(p)) for p in runs.glob("test-suite/*/results/*.jsonl"))
    # Answers that arrived before the signal are on disk, and the message counts them.
    assert saved >= 1 and f"{saved} results saved" in err


def test_repeats_are_separate_samples(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    extra = "\n  - name: sampled\n    repeats: 3\n    params: {temperature: 0.7}\n"
    suite = write_suite(tmp_path, server.url, n=4, variants=extra)
    outcome = run_suite(suite, runs_dir=tmp_path / "runs", workers=0)
    records = outcome.records["sampled"]
    assert sorted((r["id"], r["repeat"]) for r in records) == sorted(
        (e.id, k) for e in outcome.dataset.test for k in range(3)
    )
    assert server.requests == 12  # each repeat is its own call, never a cache hit of another
    again = run_suite(suite, runs_dir=tmp_path / "runs", workers=0)
    assert server.requests == 12 and all(r["cached"] for r in again.records["sampled"])


def test_rag_variant_records_what_it_retrieved(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cards.md").write_text("Cards arrive within 5 working days after you order them.\n")
    (docs / "fx.md").write_text("Our exchange rate is the interbank rate plus a small margin.\n")
    rag = """
  - name: rag
    kind: rag
    retrieval: {corpus: docs/*.md, method: bm25, k: 1}
    user: |-
      {% for c in context %}Context: {{ c.text }}
      {% endfor %}Question: {{ text }}
"""
    suite = write_suite(tmp_path, server.url, n=3, variants=rag)
    outcome = run_suite(suite, runs_dir=tmp_path / "runs", workers=0)
    by_text = {e.id: e.inputs["text"] for e in outcome.dataset.test}
    sources = {}
    for r in outcome.records["rag"]:
        assert r["error"] is None
        assert len(r["retrieved"]) <= 1  # BM25 drops chunks sharing no word with the question
        assert all(set(c) == {"id", "source", "score"} for c in r["retrieved"])
        sources[by_text[r["id"]]] = [c["source"].rsplit("/", 1)[-1] for c in r["retrieved"]]
    # The two questions that share words with a document get exactly that document.
    arrive = next(q for q in sources if "arrive" in q)
    rate = next(q for q in sources if "exchange rate" in q)
    assert sources[arrive] == ["cards.md"] and sources[rate] == ["fx.md"]
    assert any("Context: Cards arrive" in p for p in server.prompts)


def test_missing_key_for_several_variants_is_one_line_per_key(tmp_path, monkeypatch):
    from harness.calls.engine import check_credentials
    from harness.suite import load_suite

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / "t.csv").write_text("text,label\nhi,a\n")
    (tmp_path / "s.yaml").write_text(
        "name: k\ntask: classification\ndata: {test: t.csv, input: text, target: label}\n"
        "labels: from-data\nmetrics: [accuracy]\ndefaults: {user: '{{ text }}'}\n"
        "variants:\n  - {name: a, model: openai/gpt-4o-mini}\n  - {name: b, model: openai/gpt-4o}\n"
    )
    with pytest.raises(SuiteError) as e:
        check_credentials(load_suite(tmp_path / "s.yaml").variants)
    assert str(e.value) == "a and b need OPENAI_API_KEY — set it"
